"""Finalized spans reach a real OTLP receiver on 127.0.0.1, over gRPC and HTTP."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from otel_lifecycle import LifecycleSpanProcessor, conversation
from tests.receiver import OtlpReceiver


def make_exporter(transport: str, receiver: OtlpReceiver) -> SpanExporter:
    if transport == "grpc":
        return GrpcExporter(endpoint=receiver.grpc_endpoint, insecure=True)
    return HttpExporter(endpoint=receiver.http_endpoint)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_open_spans_arrive_finalized_exactly_once(transport: str) -> None:
    with OtlpReceiver() as receiver:
        processor = LifecycleSpanProcessor(make_exporter(transport, receiver))
        provider = TracerProvider(
            resource=Resource.create({"service.name": "svc"}), shutdown_on_exit=False
        )
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("scope")
        with conversation("conv-7"):
            root = tracer.start_span("agent.run", attributes={"input.value": "hello"})
        context = trace.set_span_in_context(root)
        tracer.start_span("llm.call", context=context).end()
        tracer.start_span("tool.search", context=context)

        provider.shutdown()
        root.end()

        spans = {span.name: span for span in receiver.spans()}
        assert len(receiver.spans()) == 3
        assert set(spans) == {"agent.run", "llm.call", "tool.search"}
        assert {span.transport for span in spans.values()} == {transport}
        for name in ("agent.run", "tool.search"):
            span = spans[name]
            assert span.status_code == "ERROR"
            assert span.status_message == "span not ended before tracer provider shutdown"
            assert span.attributes["error.type"] == "shutdown"
            assert span.attributes["otel_lifecycle.finalized_by"] == "shutdown"
            assert span.attributes["gen_ai.conversation.id"] == "conv-7"
        assert spans["agent.run"].attributes["input.value"] == "hello"
        assert spans["agent.run"].parent_span_id is None
        assert spans["tool.search"].parent_span_id == spans["agent.run"].span_id
        assert spans["llm.call"].status_code == "UNSET"
        assert spans["agent.run"].resource["service.name"] == "svc"
        assert spans["agent.run"].scope_name == "scope"


def test_snapshot_marker_arrives_while_the_root_runs() -> None:
    with OtlpReceiver() as receiver:
        processor = LifecycleSpanProcessor(make_exporter("grpc", receiver))
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        root = provider.get_tracer("scope").start_span("agent.run", attributes={"session.id": "s"})
        assert processor.force_flush()
        (marker,) = receiver.spans()
        assert marker.name == "agent.run"
        assert marker.parent_span_id == trace.format_span_id(root.get_span_context().span_id)
        assert marker.attributes["otel_lifecycle.state"] == "in_progress"
        assert marker.attributes["gen_ai.conversation.id"] == "s"
        root.end()
        provider.shutdown()
        assert [span.name for span in receiver.spans()] == ["agent.run", "agent.run"]
        assert receiver.spans()[1].span_id == trace.format_span_id(root.get_span_context().span_id)


def test_shutdown_returns_within_budget_when_the_collector_hangs() -> None:
    with OtlpReceiver(hang=True) as receiver:
        processor = LifecycleSpanProcessor(
            GrpcExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=30),
            shutdown_timeout=0.2,
        )
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        provider.get_tracer("scope").start_span("open")
        provider.shutdown()
        assert dict(processor.stats().finalized) == {"shutdown": 1}
        assert receiver.spans() == ()
