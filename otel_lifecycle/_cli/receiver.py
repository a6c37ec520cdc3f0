"""Embedded OTLP trace receiver for loopback use in tests and demos.

:class:`OtlpReceiver` runs a real OTLP/gRPC server and a real OTLP/HTTP (protobuf) server on
``127.0.0.1`` with OS-chosen ports, decodes every ``ExportTraceServiceRequest`` it receives into
:class:`ReceivedSpan` objects and lets callers block until the spans they expect have arrived.
"""

from __future__ import annotations

import gzip
import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

import grpc  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
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
_TRACES_PATH = "/v1/traces"
_PROTOBUF = "application/x-protobuf"
_GRPC_STOP_GRACE_S = 0.5
_HTTP_POLL_INTERVAL_S = 0.05


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


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: OtlpReceiver) -> None:
        super().__init__((_HOST, 0), _HttpHandler)
        self.receiver = receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        _logger.debug("OTLP/HTTP request from %s failed", client_address, exc_info=True)


class _HttpHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path.partition("?")[0] != _TRACES_PATH:
            self._reply(404, b"not found", "text/plain")
            return
        if self.headers.get("Content-Type", "").partition(";")[0].strip() != _PROTOBUF:
            self._reply(415, b"only application/x-protobuf is supported", "text/plain")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            request.ParseFromString(body)
        except (OSError, EOFError, zlib.error, DecodeError):
            self._reply(400, b"malformed request body", "text/plain")
            return
        if cast(_HttpServer, self.server).receiver._accept(request, "http"):
            self._reply(200, ExportTraceServiceResponse().SerializeToString(), _PROTOBUF)
        else:
            self._reply(503, b"receiver stopped", "text/plain")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("%s " + format, self.address_string(), *args)


class OtlpReceiver:
    """An in-process OTLP trace receiver speaking gRPC and HTTP/protobuf on loopback.

    Use as ``with OtlpReceiver() as receiver: ...`` or call :meth:`start` / :meth:`stop`.
    A request's spans are stored before it is answered: once an exporter's ``export()``
    has returned, they are in :meth:`spans`. :meth:`wait_for` is for spans that arrive on
    another schedule (a collector forwarding them).
    With ``hang=True`` every request blocks until :meth:`stop` and is then rejected without
    being stored, simulating a hanging collector so that exporters run into their timeouts.
    """

    def __init__(self, *, hang: bool = False) -> None:
        """Create a stopped receiver; ``hang`` enables the hanging-collector failure mode."""
        self._hang = hang
        self._released = threading.Event()
        self._condition = threading.Condition()
        self._received: list[ReceivedSpan] = []
        self._lifecycle_lock = threading.Lock()
        self._stopped = False
        self._executor: futures.ThreadPoolExecutor | None = None
        self._grpc_server: Any = None
        self._grpc_port = 0
        self._http_server: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None

    def start(self) -> OtlpReceiver:
        """Start both servers (no-op if already running); a stopped receiver cannot restart."""
        with self._lifecycle_lock:
            if self._stopped:
                raise RuntimeError("OtlpReceiver cannot be restarted after stop()")
            if self._http_server is not None:
                return self
            self._executor = futures.ThreadPoolExecutor(8, thread_name_prefix="otlp-receiver-grpc")
            self._grpc_server = grpc.server(self._executor)
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
                _TraceService(self), self._grpc_server
            )
            self._grpc_port = self._grpc_server.add_insecure_port(f"{_HOST}:0")
            self._grpc_server.start()
            self._http_server = _HttpServer(self)
            self._http_thread = threading.Thread(
                target=self._http_server.serve_forever,
                args=(_HTTP_POLL_INTERVAL_S,),
                name="otlp-receiver-http",
                daemon=True,
            )
            self._http_thread.start()
        _logger.debug(
            "OTLP receiver listening: grpc=%s http=%s", self.grpc_endpoint, self.http_endpoint
        )
        return self

    def stop(self) -> None:
        """Stop both servers and release hanging requests; safe to call more than once."""
        with self._lifecycle_lock:
            if self._stopped:
                return
            self._stopped = True
            self._released.set()
            if self._grpc_server is not None:
                self._grpc_server.stop(_GRPC_STOP_GRACE_S).wait()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            if self._http_server is not None:
                self._http_server.shutdown()
                self._http_server.server_close()
            if self._http_thread is not None:
                self._http_thread.join()

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

    @property
    def http_base_endpoint(self) -> str:
        """Base URL in the style of ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        if self._http_server is None:
            raise RuntimeError("OtlpReceiver is not started")
        return f"http://{_HOST}:{self._http_server.server_address[1]}"

    @property
    def http_endpoint(self) -> str:
        """Full traces URL for the HTTP ``OTLPSpanExporter(endpoint=...)``."""
        return self.http_base_endpoint + _TRACES_PATH

    def spans(self) -> tuple[ReceivedSpan, ...]:
        """Snapshot of all spans received so far, in arrival order."""
        with self._condition:
            return tuple(self._received)

    def clear(self) -> None:
        """Forget all spans received so far."""
        with self._condition:
            self._received.clear()

    def wait_for(
        self, predicate: Callable[[tuple[ReceivedSpan, ...]], bool], timeout: float
    ) -> bool:
        """Block until ``predicate(spans)`` is true; return False if ``timeout`` elapses first."""
        with self._condition:
            return self._condition.wait_for(lambda: predicate(tuple(self._received)), timeout)

    def _accept(self, request: ExportTraceServiceRequest, transport: str) -> bool:
        """Store a request's spans; in hang mode block until stop() and store nothing."""
        if self._hang:
            self._released.wait()
            return False
        spans = decode_request(request, transport)
        with self._condition:
            self._received.extend(spans)
            self._condition.notify_all()
        return True
