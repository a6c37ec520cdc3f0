"""``otel-lifecycle demo``: the same open spans, exported by the plain SDK and by otel_lifecycle.

Both runs send OTLP/gRPC to an embedded receiver on 127.0.0.1; the output shows
what a backend would receive from each.
"""

from __future__ import annotations

from typing import Callable

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_lifecycle._conversation import conversation
from otel_lifecycle._processor import LifecycleSpanProcessor
from otel_lifecycle._receiver import OtlpReceiver
from otel_lifecycle._tree import render_trees


def _workload(make_processor: Callable[[OTLPSpanExporter], SpanProcessor], endpoint: str) -> None:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "demo-agent"}), shutdown_on_exit=False
    )
    provider.add_span_processor(make_processor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("otel_lifecycle.demo")
    with conversation("conv-42"):
        root = tracer.start_span("agent.run", attributes={"input.value": "What is 6 x 7?"})
        context = trace.set_span_in_context(root)
        tracer.start_span("llm.call", context=context).end()
        tracer.start_span("tool.calculator", context=context)
    provider.shutdown()


def run_demo(print_line: Callable[[str], None] = print) -> int:
    """Run both exports and print what the receiver got; return the exit status."""
    runs: list[tuple[str, Callable[[OTLPSpanExporter], SpanProcessor]]] = [
        ("plain SDK (BatchSpanProcessor)", BatchSpanProcessor),
        ("otel_lifecycle (LifecycleSpanProcessor)", LifecycleSpanProcessor),
    ]
    with OtlpReceiver() as receiver:
        for title, make_processor in runs:
            receiver.clear()
            _workload(make_processor, receiver.grpc_endpoint)
            print_line(f"== {title}: {len(receiver.spans())} spans received")
            for line in render_trees(receiver.spans()):
                print_line(line)
    return 0
