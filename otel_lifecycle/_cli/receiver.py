"""The demo's embedded OTLP/gRPC trace receiver, on loopback.

:class:`OtlpReceiver` runs a real OTLP/gRPC server on ``127.0.0.1`` with an OS-chosen
port and decodes every ``ExportTraceServiceRequest`` it receives into
:class:`ReceivedSpan` objects. The test suite extends it (an HTTP endpoint, a hanging
mode, waiting for spans) in ``tests/receiver.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import grpc  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

__all__ = ["OtlpReceiver", "ReceivedEvent", "ReceivedSpan", "decode_request"]

_logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_GRPC_STOP_GRACE_S = 0.5


@dataclass(frozen=True)
class ReceivedEvent:
    """A span event as received over OTLP."""

    name: str
    attributes: Mapping[str, object]


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as received over OTLP, decoded into plain Python values.

    ``kind`` is the OTLP ``Span.SpanKind`` number (1 = internal, 2 = server, ...), ids are
    lowercase hex, ``transport`` is ``"grpc"`` or ``"http"``.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str
    status_message: str
    attributes: Mapping[str, object]
    events: tuple[ReceivedEvent, ...]
    resource: Mapping[str, object]
    scope_name: str
    transport: str

    @property
    def duration_ms(self) -> float:
        """Span duration in milliseconds."""
        return (self.end_time_unix_nano - self.start_time_unix_nano) / 1e6


def _decode_value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(_decode_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return _decode_attributes(value.kvlist_value.values)
    return cast(object, getattr(value, kind))


def _decode_attributes(attributes: Iterable[KeyValue]) -> dict[str, object]:
    return {kv.key: _decode_value(kv.value) for kv in attributes}


def decode_request(request: ExportTraceServiceRequest, transport: str) -> list[ReceivedSpan]:
    """Decode every span of an OTLP trace export request, tagging each with ``transport``."""
    decoded: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = _decode_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            decoded.extend(
                ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() or None,
                    name=span.name,
                    kind=span.kind,
                    start_time_unix_nano=span.start_time_unix_nano,
                    end_time_unix_nano=span.end_time_unix_nano,
                    status_code=Status.StatusCode.Name(span.status.code).removeprefix(
                        "STATUS_CODE_"
                    ),
                    status_message=span.status.message,
                    attributes=_decode_attributes(span.attributes),
                    events=tuple(
                        ReceivedEvent(event.name, _decode_attributes(event.attributes))
                        for event in span.events
                    ),
                    resource=resource,
                    scope_name=scope_spans.scope.name,
                    transport=transport,
                )
                for span in scope_spans.spans
            )
    return decoded


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802
        self, request: ExportTraceServiceRequest, context: Any
    ) -> ExportTraceServiceResponse:
        if not self._receiver._accept(request, "grpc"):
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details("receiver stopped")
        return ExportTraceServiceResponse()


class OtlpReceiver:
    """An in-process OTLP/gRPC trace receiver on loopback.

    Use as ``with OtlpReceiver() as receiver: ...`` or call :meth:`start` / :meth:`stop`.
    A request's spans are stored before it is answered: once an exporter's ``export()``
    has returned, they are in :meth:`spans`.
    """

    def __init__(self) -> None:
        """Create a stopped receiver."""
        self._lock = threading.Lock()
        self._received: list[ReceivedSpan] = []
        self._lifecycle_lock = threading.Lock()
        self._stopped = False
        self._executor: futures.ThreadPoolExecutor | None = None
        self._grpc_server: Any = None
        self._grpc_port = 0

    def start(self) -> OtlpReceiver:
        """Start the server (no-op if already running); a stopped receiver cannot restart."""
        with self._lifecycle_lock:
            if self._stopped:
                raise RuntimeError("OtlpReceiver cannot be restarted after stop()")
            if self._grpc_server is not None:
                return self
            self._executor = futures.ThreadPoolExecutor(8, thread_name_prefix="otlp-receiver-grpc")
            self._grpc_server = grpc.server(self._executor)
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
                _TraceService(self), self._grpc_server
            )
            self._grpc_port = self._grpc_server.add_insecure_port(f"{_HOST}:0")
            self._grpc_server.start()
        _logger.debug("OTLP receiver listening: grpc=%s", self.grpc_endpoint)
        return self

    def stop(self) -> None:
        """Stop the server; safe to call more than once."""
        with self._lifecycle_lock:
            if self._stopped:
                return
            self._stopped = True
            if self._grpc_server is not None:
                self._grpc_server.stop(_GRPC_STOP_GRACE_S).wait()
            if self._executor is not None:
                self._executor.shutdown(wait=False)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def grpc_endpoint(self) -> str:
        """Endpoint for the gRPC ``OTLPSpanExporter(endpoint=..., insecure=True)``."""
        if not self._grpc_port:
            raise RuntimeError("OtlpReceiver is not started")
        return f"http://{_HOST}:{self._grpc_port}"

    def spans(self) -> tuple[ReceivedSpan, ...]:
        """Snapshot of all spans received so far, in arrival order."""
        with self._lock:
            return tuple(self._received)

    def clear(self) -> None:
        """Forget all spans received so far (the demo's second run starts empty)."""
        with self._lock:
            self._received.clear()

    def _accept(self, request: ExportTraceServiceRequest, transport: str) -> bool:
        """Store a request's spans; False refuses the request."""
        spans = decode_request(request, transport)
        with self._lock:
            self._received.extend(spans)
        return True
