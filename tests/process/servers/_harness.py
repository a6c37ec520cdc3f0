"""Run a real server under the real ``opentelemetry-instrument``, exporting to the receiver.

:func:`launch` starts the command in its own process group (the server's master
and workers), with OTLP/gRPC pointed at the embedded receiver
(``tests.process._launch``); :func:`wait_ready` polls ``/health`` (excluded from
tracing) with a deadline. The :class:`Server` fires requests from client
threads, sends SIGTERM to the master, measures the time until it exits and
kills the whole process group at the end; :func:`sigterm` does the SIGTERM and
collects what a test asserts on.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from tests.process._launch import BIN, INSTRUMENT, ProcessGroup, free_port, otel_environment, start
from tests.receiver import OtlpReceiver, ReceivedSpan

HERE = Path(__file__).parent

GRACEFUL_S = 4
"""gunicorn ``--graceful-timeout``, uvicorn ``--timeout-graceful-shutdown``."""
SLOW_S = 30
"""How long a slow handler runs: far longer than any test."""
DRAIN_S = 1.5
"""A request that completes inside the graceful window after SIGTERM."""


CONFIGURATORS = [
    pytest.param("configurator", id="distro-configurator-selected"),
    pytest.param("", id="package-just-installed"),
]
"""``OTEL_PYTHON_CONFIGURATOR``: the distro's selected, or unset (``opentelemetry-instrument``
takes the first configurator it finds); the post-instrument hook attaches either way."""

SERVER_KIND = 2
"""OTLP ``SpanKind`` of a SERVER span."""


@dataclass
class Reply:
    """What a client thread got: an HTTP status, or the name of the exception raised."""

    path: str
    status: int | None = None
    error: str | None = None


@dataclass(kw_only=True)
class Server(ProcessGroup):
    """A process group started by :func:`launch`."""

    what: ClassVar[str] = "server"

    port: int
    threads: list[threading.Thread] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    sigterm_at: float | None = None
    exited_at: float | None = None

    def get(self, path: str, timeout: float = 10) -> Reply:
        reply = Reply(path)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            reply.status = response.status
        except (OSError, http.client.HTTPException) as error:
            reply.error = type(error).__name__
        finally:
            connection.close()
        return reply

    def fire(self, path: str, timeout: float = 15) -> None:
        """Send ``GET path`` from a new client thread; its reply lands in :attr:`replies`."""

        def send() -> None:
            self.replies.append(self.get(path, timeout))

        thread = threading.Thread(target=send, name=f"client {path}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def quick(self, count: int) -> None:
        """``count`` concurrent quick requests from client threads, each answered 200."""
        replies: list[Reply] = []
        clients = [
            threading.Thread(target=lambda: replies.append(self.get("/quick")), daemon=True)
            for _ in range(count)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(15)
        statuses = [reply.status for reply in replies]
        assert statuses == [200] * count, (replies, self.output())

    def wait_for_markers(self, count: int, timeout: float = 10) -> list[str]:
        """Wait until ``count`` slow handlers are running; return their markers."""
        return self._wait_for_files(self.markers, count, timeout, "slow handlers did not start")

    def wait_for_workers(self, count: int, timeout: float = 15) -> list[str]:
        """Wait until ``count`` workers said they are ready (``$SERVERS_READY_DIR``)."""
        return self._wait_for_files(self.ready, count, timeout, "workers were not ready")

    def _wait_for_files(self, directory: Path, count: int, timeout: float, what: str) -> list[str]:
        self._wait(lambda: len(list(directory.iterdir())) >= count, timeout, f"{count} {what}")
        return sorted(path.name for path in directory.iterdir())

    def wait_for_output(self, text: str, timeout: float = 15) -> None:
        """Wait until the process has printed a line ``text`` (its output goes to :attr:`log`)."""

        def printed() -> bool:
            return text in self.log.read_text(errors="replace").splitlines()

        self._wait(printed, timeout, f"the process did not print {text!r}")

    def terminate(self) -> None:
        """SIGTERM to the master (the process started), as Kubernetes or systemd sends it."""
        self.sigterm_at = time.monotonic()
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        try:
            returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit {timeout} s after SIGTERM: {self.output()}")
        self.exited_at = time.monotonic()
        for thread in self.threads:
            thread.join(5)
        return returncode

    @property
    def sigterm_to_exit(self) -> float:
        assert self.sigterm_at is not None
        assert self.exited_at is not None
        return self.exited_at - self.sigterm_at

    def spans(self) -> tuple[ReceivedSpan, ...]:
        """The spans received. Call it after the process exited: the receiver stores a batch
        before it acknowledges it, so every batch the process exported is there."""
        assert self.process.poll() is not None, "the process has not exited yet"
        return self.receiver.spans()


StartServer = Callable[[Sequence[str], str], "Server"]
"""The ``start_server`` fixture: ``start_server(command, configurator)`` -> a ready server."""


def launch(
    receiver: OtlpReceiver,
    directory: Path,
    command: Sequence[str],
    configurator: str,
    endpoint: str | None = None,
) -> Server:
    """Start ``opentelemetry-instrument COMMAND`` (``{port}`` replaced), exporting to the receiver.

    ``endpoint`` sends OTLP elsewhere (a collector in front of the receiver). The
    caller must :meth:`Server.kill` the server whatever happens (the
    ``start_server`` fixture does).
    """
    env = otel_environment(
        "servers-test",
        endpoint or receiver.grpc_endpoint,
        200,
        OTEL_PYTHON_EXCLUDED_URLS="health",
    )
    if configurator:
        env["OTEL_PYTHON_CONFIGURATOR"] = configurator
    port = free_port()
    argv = [str(INSTRUMENT), *(part.format(port=port) for part in command)]
    return start(Server, receiver, directory, argv, cwd=HERE, env=env, folders="SERVERS", port=port)


def gunicorn(*options: str) -> list[str]:
    """gunicorn with ``options``, sync workers and :data:`GRACEFUL_S`, serving ``flask_app``.

    On ``{port}``, configured by ``gunicorn_conf.py`` (workers say they are ready).
    """
    return [
        str(BIN / "gunicorn"),
        *options,
        "--worker-class",
        "sync",
        "--graceful-timeout",
        str(GRACEFUL_S),
        "--bind",
        "127.0.0.1:{port}",
        "--chdir",
        str(HERE),
        "-c",  # not --config, which opentelemetry-instrument takes for its own --configurator
        str(HERE / "gunicorn_conf.py"),
        "--log-level",
        "info",
        "flask_app:app",
    ]


def wait_ready(server: Server, timeout: float = 15) -> Server:
    """Poll ``GET /health`` (not traced) until it answers 200, with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}: {server.output()}")
        if server.get("/health", timeout=1).status == 200:
            return server
        time.sleep(0.1)
    pytest.fail(f"the server did not answer /health within {timeout} s: {server.output()}")


def server_spans(spans: Sequence[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.kind == SERVER_KIND and span.name == name]


def describe(spans: Sequence[ReceivedSpan]) -> str:
    """One line per span, for assertion messages."""
    return "\n".join(
        f"{span.name} kind={span.kind} {span.status_code} "
        f"error.type={span.attributes.get('error.type')} "
        f"finalized_by={span.attributes.get('otel_lifecycle.finalized_by')} "
        f"span_id={span.span_id} {span.duration_ms:.0f} ms"
        for span in spans
    )


def sigterm(server: Server, note: str = "") -> tuple[int, tuple[ReceivedSpan, ...], str]:
    """SIGTERM to the master; once it exited, its status, the spans and a report for assertions.

    The report: the spans, the client threads' replies, ``note``, the server's output.
    """
    server.terminate()
    returncode = server.wait_exit(GRACEFUL_S + 6)
    spans = server.spans()
    return (
        returncode,
        spans,
        f"\n{describe(spans)}\nreplies: {server.replies}{note}{server.output()}",
    )


def assert_no_duplicates(spans: Sequence[ReceivedSpan]) -> None:
    ids = [span.span_id for span in spans]
    assert len(ids) == len(set(ids)), f"a span arrived more than once:\n{describe(spans)}"


def assert_ended_by_app(spans: Sequence[ReceivedSpan], count: int, what: str) -> None:
    """``count`` SERVER spans, each as the instrumentation ended it (not ERROR)."""
    assert len(spans) == count, f"{what}: expected {count} spans, got {len(spans)}"
    for span in spans:
        assert span.status_code in ("UNSET", "OK"), f"{what} marked {span.status_code}"
        assert "otel_lifecycle.finalized_by" not in span.attributes, what


def assert_sigterm(spans: Sequence[ReceivedSpan], count: int, what: str) -> None:
    """``count`` SERVER spans, each ERROR with ``error.type == "SIGTERM"``."""
    assert len(spans) == count, f"{what}: expected {count} spans, got {len(spans)}"
    for span in spans:
        assert span.status_code == "ERROR", f"{what} arrived {span.status_code}"
        assert span.attributes.get("error.type") == "SIGTERM", what


def assert_a_drained_request_is_not_an_error(server: Server, returncode: int) -> None:
    """A request that completes during the drain after SIGTERM arrives as the app ended it."""
    server.quick(1)
    server.fire(f"/slow?seconds={DRAIN_S}")
    server.wait_for_markers(1)
    exited, spans, report = sigterm(server)
    assert [reply.status for reply in server.replies] == [200], report
    assert_no_duplicates(spans)
    assert_ended_by_app(server_spans(spans, "GET /quick"), 1, "quick request" + report)
    assert_ended_by_app(server_spans(spans, "GET /slow"), 1, "drained request" + report)
    assert exited == returncode, report
    assert server.sigterm_to_exit < GRACEFUL_S, report
