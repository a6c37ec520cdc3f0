"""Tests of ``otel_lifecycle._cli``: the command, the demo and the embedded OTLP receiver."""
