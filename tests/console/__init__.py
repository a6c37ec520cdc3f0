"""Tests of ``otel_lifecycle._console``: the console tree exporter."""
