"""Run a real Celery worker or pool app under the real ``opentelemetry-instrument``.

:func:`start_redis` starts a real ``redis-server`` on a free loopback port (the
broker). :func:`launch` starts a command in its own process group with OTLP/gRPC
pointed at the embedded receiver (``tests.process._launch``) and the export
tick pinned far beyond any test (:data:`SCHEDULE_DELAY_MS`), so every span that
arrives was exported by an exit path, never by the timer: where the tick falls
decides nothing. A :class:`Worker` waits on files the app writes and on the
receiver, each with a deadline, never on a sleep.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.process._launch import INSTRUMENT, ProcessGroup, free_port, otel_environment, start
from tests.receiver import OtlpReceiver, ReceivedSpan

HERE = Path(__file__).parent

SCHEDULE_DELAY_MS = 60_000
"""``OTEL_BSP_SCHEDULE_DELAY`` of the apps: no export tick within a test."""

REDIS_MISSING = (
    "redis-server is not installed, and the Celery tests need a real broker: "
    "apt-get update && apt-get install -y redis-server (Debian, Ubuntu; CI's .ci/run does it), "
    "or brew install redis (macOS)"
)


def start_redis(directory: Path, timeout: float = 10) -> tuple[subprocess.Popen[bytes], str]:
    """A ``redis-server`` on 127.0.0.1 that keeps nothing on disk; returns it and its URL.

    Fails the test, saying how to install it, when ``redis-server`` is missing.
    """
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(REDIS_MISSING)
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / "redis.log"
    command = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "no", "--dir", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as c:
            c.sendall(b"PING\r\n")
            if c.recv(16).startswith(b"+PONG"):
                return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    stop(process)
    pytest.fail(f"redis-server did not answer PING: {log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class Worker(ProcessGroup):
    """A process group started by :func:`launch`."""

    def wait_ready(self, timeout: float = 20) -> Worker:
        """Wait until the app wrote ``ready`` (a Celery worker: ``worker_ready``)."""
        self._wait((self.ready / "ready").exists, timeout, "the app was not ready")
        return self

    def wait_for_markers(self, count: int, timeout: float = 15) -> list[str]:
        """Wait until ``count`` tasks are running; their markers, ``<label>-<pid>``."""
        self._wait(lambda: len(list(self.markers.iterdir())) >= count, timeout, "tasks not running")
        return sorted(path.name for path in self.markers.iterdir())

    def send_signal(self, signum: int) -> None:
        """``signum`` to the process started (Celery's main process)."""
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the app did not exit within {timeout} s: {self.output()}")

    def wait_for_spans(self, names: Sequence[str], timeout: float = 15) -> tuple[ReceivedSpan, ...]:
        """Wait until the receiver holds at least the spans named, counting repeats."""

        def arrived(spans: tuple[ReceivedSpan, ...]) -> bool:
            received = [span.name for span in spans]
            return all(received.count(name) >= names.count(name) for name in set(names))

        if not self.receiver.wait_for(arrived, timeout):
            spans = self.receiver.spans()
            pytest.fail(f"spans {sorted(names)} did not arrive:\n{describe(spans)}{self.output()}")
        return self.receiver.spans()

    def received(self) -> tuple[tuple[ReceivedSpan, ...], str]:
        """The spans received, and a report of them and of the app's output (for assertions)."""
        spans = self.receiver.spans()
        return spans, f"\n{describe(spans)}{self.output()}"


def launch(
    receiver: OtlpReceiver, directory: Path, command: Sequence[str], env: dict[str, str]
) -> Worker:
    """Start ``opentelemetry-instrument COMMAND`` in this folder, exporting to the receiver.

    ``env`` adds to the environment. The caller must :meth:`Worker.kill` it
    whatever happens (the ``start_worker`` fixture does).
    """
    environment = otel_environment("workers-test", receiver.grpc_endpoint, SCHEDULE_DELAY_MS)
    return start(
        Worker,
        receiver,
        directory,
        [str(INSTRUMENT), *command],
        cwd=HERE,
        env={**environment, **env},
        folders="WORKERS",
    )


def describe(spans: Sequence[ReceivedSpan]) -> str:
    """One line per span, for assertion messages."""
    return "\n".join(
        f"{span.name} {span.status_code} error.type={span.attributes.get('error.type')} "
        f"finalized_by={span.attributes.get('otel_lifecycle.finalized_by')} "
        f"span_id={span.span_id} parent={span.parent_span_id}"
        for span in spans
    )


def assert_once_each(spans: Sequence[ReceivedSpan]) -> None:
    ids = [span.span_id for span in spans]
    assert len(ids) == len(set(ids)), f"a span arrived more than once:\n{describe(spans)}"


def named(spans: Sequence[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


def assert_ended_by_app(spans: Sequence[ReceivedSpan], report: str) -> None:
    """Each span as the application (or the instrumentation) ended it."""
    for span in spans:
        assert span.status_code in ("UNSET", "OK"), f"{span.name} {span.status_code}{report}"
        assert "otel_lifecycle.finalized_by" not in span.attributes, report


def assert_finalized(spans: Sequence[ReceivedSpan], error_type: str, report: str) -> None:
    """Each span ERROR with ``error_type``, ended by the processor."""
    for span in spans:
        assert span.status_code == "ERROR", f"{span.name} {span.status_code}{report}"
        assert span.attributes.get("error.type") == error_type, report
        assert span.attributes.get("otel_lifecycle.finalized_by") == "signal", report
