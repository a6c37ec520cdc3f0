"""Tests of ``otel_lifecycle._settings``: every ``OTEL_LIFECYCLE_*`` variable."""
