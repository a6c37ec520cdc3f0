"""Tests of ``otel_lifecycle._core``: export stage, conversation ids, metrics, summary line."""
