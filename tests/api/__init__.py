"""Tests of ``otel_lifecycle._api``: ``@traced``, ``span()``, ``fail()``, ``set_output()``."""
