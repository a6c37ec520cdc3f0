"""Tests of ``otel_lifecycle._setup``: ``configure()`` and ``opentelemetry-instrument``."""
