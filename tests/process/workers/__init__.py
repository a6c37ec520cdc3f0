"""Real task queues and worker pools under the real ``opentelemetry-instrument``.

Celery prefork workers on a real ``redis-server`` broker, and the standard
library's process pools, exporting to the embedded OTLP receiver; integrations
of ``otel_lifecycle._process.celery`` and of the process hooks. The apps in
this folder run with this folder as their working directory.
"""
