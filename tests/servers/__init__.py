"""Real servers (gunicorn, uvicorn) under the real ``opentelemetry-instrument``.

A package so that this folder's ``conftest.py`` and modules do not clash by name
with those of ``tests/``.
"""
