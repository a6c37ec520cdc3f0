"""The root lifecycle API: ``@traced``, ``span()``, ``fail()``, ``set_output()``, sanitizing.

Written against opentelemetry-api. May import: ``_core`` (attribute names and
conversation ids) and ``_settings``.
"""
