"""Tests for the embedded OTLP receiver, driven by the real OpenTelemetry SDK exporters."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otel_lifecycle._cli.receiver import ReceivedEvent, decode_request
from tests.receiver import OtlpReceiver

TIMEOUT = 10.0


def _make_exporter(
    receiver: OtlpReceiver, transport: str, timeout: float = TIMEOUT
) -> SpanExporter:
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=timeout)
    if transport == "http-gzip":
        return HttpSpanExporter(
            endpoint=receiver.http_endpoint, timeout=timeout, compression=Compression.Gzip
        )
    return HttpSpanExporter(endpoint=receiver.http_endpoint, timeout=timeout)


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _finished_span() -> ReadableSpan:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.get_tracer("hang-test").start_span("lost").end()
    provider.shutdown()
    (span,) = memory.get_finished_spans()
    return span


def test_endpoints(receiver: OtlpReceiver) -> None:
    assert receiver.grpc_endpoint.startswith("http://127.0.0.1:")
    assert receiver.http_base_endpoint.startswith("http://127.0.0.1:")
    assert receiver.http_endpoint == receiver.http_base_endpoint + "/v1/traces"
    assert receiver.grpc_endpoint != receiver.http_base_endpoint


@pytest.mark.parametrize("transport", ["grpc", "http", "http-gzip"])
def test_round_trip_decodes_sdk_spans(receiver: OtlpReceiver, transport: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "receiver-test"}))
    provider.add_span_processor(SimpleSpanProcessor(_make_exporter(receiver, transport)))
    tracer = provider.get_tracer("receiver.tests")
    try:
        parent = tracer.start_span("parent", start_time=1_000_000_000)
        parent.set_attributes(
            {"s": "text", "i": 7, "f": 1.5, "b": True, "list": ["a", "b"], "ints": [1, 2]}
        )
        child = tracer.start_span(
            "child",
            context=set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes={"child.attr": "x"},
            start_time=1_100_000_000,
        )
        child.add_event("checkpoint", {"step": 2}, timestamp=1_150_000_000)
        child.set_status(Status(StatusCode.ERROR, "boom"))
        child.end(end_time=1_200_000_000)
        parent.end(end_time=1_250_000_000)
    finally:
        provider.shutdown()

    wire = "grpc" if transport == "grpc" else "http"
    received_child, received_parent = receiver.spans()
    parent_ctx, child_ctx = parent.get_span_context(), child.get_span_context()

    assert received_parent.trace_id == format(parent_ctx.trace_id, "032x")
    assert received_parent.span_id == format(parent_ctx.span_id, "016x")
    assert received_parent.parent_span_id is None
    assert received_parent.name == "parent"
    assert received_parent.kind == 1
    assert received_parent.status_code == "UNSET"
    assert received_parent.status_message == ""
    assert received_parent.attributes == {
        "s": "text",
        "i": 7,
        "f": 1.5,
        "b": True,
        "list": ("a", "b"),
        "ints": (1, 2),
    }
    assert received_parent.events == ()
    assert received_parent.start_time_unix_nano == 1_000_000_000
    assert received_parent.end_time_unix_nano == 1_250_000_000
    assert received_parent.duration_ms == 250.0

    assert received_child.trace_id == received_parent.trace_id
    assert received_child.span_id == format(child_ctx.span_id, "016x")
    assert received_child.parent_span_id == received_parent.span_id
    assert received_child.name == "child"
    assert received_child.kind == 3
    assert received_child.status_code == "ERROR"
    assert received_child.status_message == "boom"
    assert received_child.attributes == {"child.attr": "x"}
    assert received_child.events == (ReceivedEvent("checkpoint", {"step": 2}),)
    assert received_child.duration_ms == 100.0

    for span in (received_child, received_parent):
        assert span.resource["service.name"] == "receiver-test"
        assert span.resource["telemetry.sdk.language"] == "python"
        assert span.scope_name == "receiver.tests"
        assert span.transport == wire


def test_decode_request_handles_all_value_kinds() -> None:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "manual"
    span = scope_spans.spans.add(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), name="manual-span", kind=2
    )
    span.status.code = 1
    nested = AnyValue()
    nested.kvlist_value.values.append(KeyValue(key="inner", value=AnyValue(int_value=3)))
    mixed = AnyValue()
    mixed.array_value.values.extend([AnyValue(bool_value=False), AnyValue(double_value=0.25)])
    span.attributes.extend(
        [
            KeyValue(key="bytes", value=AnyValue(bytes_value=b"\x00\x01")),
            KeyValue(key="kv", value=nested),
            KeyValue(key="mixed", value=mixed),
            KeyValue(key="empty", value=AnyValue()),
        ]
    )

    (decoded,) = decode_request(request, "grpc")

    assert decoded.trace_id == "000102030405060708090a0b0c0d0e0f"
    assert decoded.span_id == "0001020304050607"
    assert decoded.parent_span_id is None
    assert decoded.kind == 2
    assert decoded.status_code == "OK"
    assert decoded.attributes == {
        "bytes": b"\x00\x01",
        "kv": {"inner": 3},
        "mixed": (False, 0.25),
        "empty": None,
    }
    assert decoded.resource == {"service.name": "svc"}
    assert decoded.scope_name == "manual"
    assert decoded.transport == "grpc"


def test_wait_for_times_out_quickly(receiver: OtlpReceiver) -> None:
    started = time.monotonic()
    assert receiver.wait_for(lambda spans: len(spans) > 0, timeout=0.05) is False
    assert time.monotonic() - started < 2.0
    assert receiver.wait_for(lambda spans: spans == (), timeout=0.0) is True


def test_clear_and_snapshot(receiver: OtlpReceiver) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_make_exporter(receiver, "http")))
    try:
        provider.get_tracer("t").start_span("one").end()
        snapshot = receiver.spans()
        receiver.clear()
        assert receiver.spans() == ()
        assert [span.name for span in snapshot] == ["one"]
        provider.get_tracer("t").start_span("two").end()
        assert [span.name for span in receiver.spans()] == ["two"]
    finally:
        provider.shutdown()


def test_http_rejects_unknown_path_and_bad_requests(receiver: OtlpReceiver) -> None:
    base = receiver.http_base_endpoint
    assert _post(base + "/v1/metrics", b"", "application/x-protobuf") == 404
    assert _post(receiver.http_endpoint, b"{}", "application/json") == 415
    assert _post(receiver.http_endpoint, b"\xff\xff\xff", "application/x-protobuf") == 400
    assert _post(receiver.http_endpoint, b"", "application/x-protobuf") == 200
    assert receiver.spans() == ()


def test_lifecycle_is_idempotent() -> None:
    receiver = OtlpReceiver()
    with pytest.raises(RuntimeError):
        _ = receiver.grpc_endpoint
    assert receiver.start() is receiver
    assert receiver.start() is receiver
    receiver.stop()
    receiver.stop()
    with pytest.raises(RuntimeError):
        receiver.start()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_hang_mode_makes_exporters_time_out(transport: str) -> None:
    receiver = OtlpReceiver(hang=True).start()
    exporter = _make_exporter(receiver, transport, timeout=0.5)
    try:
        started = time.monotonic()
        assert exporter.export([_finished_span()]) is SpanExportResult.FAILURE
        assert time.monotonic() - started < 5.0
    finally:
        started = time.monotonic()
        receiver.stop()
        stop_seconds = time.monotonic() - started
        exporter.shutdown()
    assert stop_seconds < 3.0
    assert receiver.spans() == ()
