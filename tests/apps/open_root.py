"""An app that ends one child, leaves its root open and exits normally.

Run under ``opentelemetry-instrument``; it prints how many lifecycle processors the
global provider ended up with, so a test can check it never gets two.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_lifecycle._setup.instrument import lifecycle_processors

tracer = trace.get_tracer("tests.apps.open_root")
root = tracer.start_span("app.root", attributes={"session.id": "conv-7"})
tracer.start_span("app.child", context=trace.set_span_in_context(root)).end()
provider = trace.get_tracer_provider()
assert isinstance(provider, TracerProvider), type(provider)
print(f"lifecycle_processors={len(lifecycle_processors(provider))}", flush=True)
