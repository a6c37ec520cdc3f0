"""The receiver the tests use: the demo's OTLP/gRPC receiver, plus what only tests need.

An OTLP/HTTP (protobuf) endpoint on loopback, a hanging mode (every request
blocks until ``stop()`` and is then refused, as a collector that hangs), and
``wait_for()`` for spans that arrive on another schedule (a collector
forwarding them).
"""

from __future__ import annotations

import gzip
import logging
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otel_lifecycle._cli import receiver as demo_receiver
from otel_lifecycle._cli.receiver import _HOST, ReceivedSpan

__all__ = ["OtlpReceiver", "ReceivedSpan"]

_logger = logging.getLogger(__name__)

_TRACES_PATH = "/v1/traces"
_PROTOBUF = "application/x-protobuf"
_HTTP_POLL_INTERVAL_S = 0.05


class OtlpReceiver(demo_receiver.OtlpReceiver):
    """OTLP over gRPC and HTTP/protobuf on loopback; ``hang=True`` for a hanging collector."""

    def __init__(self, *, hang: bool = False) -> None:
        super().__init__()
        self._hang = hang
        self._released = threading.Event()
        self._arrived = threading.Condition()
        self._http_server: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None

    def start(self) -> OtlpReceiver:
        """Start the gRPC and the HTTP server."""
        super().start()
        if self._http_server is None:
            self._http_server = _HttpServer(self)
            self._http_thread = threading.Thread(
                target=self._http_server.serve_forever,
                args=(_HTTP_POLL_INTERVAL_S,),
                name="otlp-receiver-http",
                daemon=True,
            )
            self._http_thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, then stop both servers; safe to call more than once."""
        self._released.set()
        super().stop()
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None
        if self._http_thread is not None:
            self._http_thread.join()
            self._http_thread = None

    def __enter__(self) -> OtlpReceiver:
        return self.start()

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

    def wait_for(
        self, predicate: Callable[[tuple[ReceivedSpan, ...]], bool], timeout: float
    ) -> bool:
        """Block until ``predicate(spans)`` is true; False if ``timeout`` elapses first."""
        with self._arrived:
            return self._arrived.wait_for(lambda: predicate(self.spans()), timeout)

    def _accept(self, request: ExportTraceServiceRequest, transport: str) -> bool:
        """Store a request's spans and wake waiters; in hang mode block until stop(), refuse."""
        if self._hang:
            self._released.wait()
            return False
        accepted = super()._accept(request, transport)
        with self._arrived:
            self._arrived.notify_all()
        return accepted


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
