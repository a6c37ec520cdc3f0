"""What the server and worker harnesses share: a command under ``opentelemetry-instrument``.

:func:`start` runs it in a process group of its own with OTLP/gRPC pointed at
the embedded receiver (:func:`otel_environment`), two folders its app writes
files into (markers of running work, readiness) and its output in a log. A
:class:`ProcessGroup` waits with a deadline, never on a sleep alone, and kills
the whole group at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from tests.receiver import OtlpReceiver

BIN = Path(sys.executable).parent
INSTRUMENT = BIN / "opentelemetry-instrument"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def otel_environment(
    service: str, endpoint: str, schedule_delay_ms: int, **extra: str
) -> dict[str, str]:
    """This environment without its ``OTEL_*``, then traces (only) over OTLP/gRPC to ``endpoint``.

    ``schedule_delay_ms`` is the export tick (``OTEL_BSP_SCHEDULE_DELAY``);
    ``extra`` adds to the variables set.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_BSP_SCHEDULE_DELAY=str(schedule_delay_ms),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


@dataclass
class ProcessGroup:
    """A process group started by :func:`start`."""

    process: subprocess.Popen[bytes]
    markers: Path
    ready: Path
    log: Path
    receiver: OtlpReceiver

    what: ClassVar[str] = "app"
    """What runs, for the heading of :meth:`output`."""

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``done`` until it is true; fail the test at ``timeout`` or if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"{what} within {timeout} s: {self.output()}")

    def output(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"\n--- {self.what} output (last 3000 chars) ---\n" + text[-3000:]

    def kill(self) -> None:
        """SIGKILL the whole process group: the process started and any child it left behind."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


Group = TypeVar("Group", bound=ProcessGroup)


def start(
    kind: type[Group],
    receiver: OtlpReceiver,
    directory: Path,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    folders: str,
    **fields: Any,
) -> Group:
    """Start ``argv`` in ``cwd``, in a process group of its own, with ``env``; a ``kind`` of it.

    The receiver is cleared first. ``directory`` (new) holds the log and two new
    folders, named to the app by ``$<folders>_MARKER_DIR`` and
    ``$<folders>_READY_DIR``. ``fields`` are the rest of ``kind``'s. The caller
    must :meth:`ProcessGroup.kill` the group whatever happens.
    """
    receiver.clear()
    directory.mkdir(parents=True)
    markers = directory / "markers"
    markers.mkdir()
    ready = directory / "ready"
    ready.mkdir()
    log = directory / "output.log"
    folder_env = {f"{folders}_MARKER_DIR": str(markers), f"{folders}_READY_DIR": str(ready)}
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**env, **folder_env},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return kind(process=process, markers=markers, ready=ready, log=log, receiver=receiver, **fields)
