"""The root lifecycle API: ``@traced``, ``span()``, ``fail()``, ``set_output()``, sanitizing.

Written against opentelemetry-api. May import: ``_core`` (attribute names,
conversation ids, and ``finalize.fail_span`` to give a span ERROR) and ``_settings``.
"""
