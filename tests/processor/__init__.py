"""Tests of ``otel_lifecycle._processor``: ``LifecycleSpanProcessor`` in-process and over OTLP."""
