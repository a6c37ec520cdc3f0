"""Real servers (gunicorn, uvicorn) under the real ``opentelemetry-instrument``.

Integrations of ``otel_lifecycle._process.servers``: the apps in this folder are
run by the servers with this folder as their working directory.
"""
