"""Settings: every environment variable this package reads, its default, and argument checks.

The only reader of ``os.environ`` for ``OTEL_LIFECYCLE_*`` (the standard
``OTEL_*`` variables are read by the SDK, through its own helpers where the
export stage needs them). May import: the standard library and OpenTelemetry.
"""
