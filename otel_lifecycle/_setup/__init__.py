"""Setup: ``configure()``, exporters from the environment, ``opentelemetry-instrument``s hooks.

May import everything but ``_cli``.
"""
