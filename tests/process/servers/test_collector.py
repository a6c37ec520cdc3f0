"""Through a real collector: ``rotel`` (an OpenTelemetry collector shipped on PyPI).

The app runs under ``opentelemetry-instrument`` and exports OTLP/gRPC to a rotel
agent on loopback, whose OTLP/gRPC exporter forwards to the embedded receiver.
The root the app still runs at SIGTERM must arrive through the collector,
finalized. Skipped unless the ``rotel`` package is installed, or ``ROTEL_AGENT``
names its ``rotel-agent`` binary.

The agent embeds Python: it links ``libpython3.X.so`` of the interpreter its
wheel was built for, and the dynamic loader finds that library only where the
system keeps its own (a pyenv or venv interpreter keeps it in its ``LIBDIR``).
The agent is started with that directory on ``LD_LIBRARY_PATH``, so this test
runs on every Python of the matrix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process._launch import free_port
from tests.receiver import OtlpReceiver

from ._harness import CONFIGURATORS, HERE, describe, launch

pytestmark = pytest.mark.timeout(40)

ROOTS = {"traced.done", "traced.cancelled", "traced.running"}


def rotel_agent() -> Path | None:
    if os.environ.get("ROTEL_AGENT"):
        return Path(os.environ["ROTEL_AGENT"])
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        return None
    agent = Path(spec.origin).parent / "rotel-agent"
    return agent if agent.exists() else None


def library_path() -> str:
    """``LD_LIBRARY_PATH`` with this interpreter's ``libpython`` directory first."""
    directories = [str(sysconfig.get_config_var("LIBDIR"))]
    if os.environ.get("LD_LIBRARY_PATH"):
        directories.append(os.environ["LD_LIBRARY_PATH"])
    return os.pathsep.join(directories)


@pytest.fixture
def collector(receiver: OtlpReceiver, tmp_path: Path) -> Iterator[str]:
    """A rotel agent forwarding to the receiver; yields its OTLP/gRPC endpoint."""
    agent = rotel_agent()
    if agent is None:
        pytest.skip("rotel is not installed (pip install rotel) and ROTEL_AGENT is not set")
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "rotel.log"
    command = [
        str(agent),
        "start",
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint",
        f"127.0.0.1:{http_port}",
        "--exporter",
        "otlp",
        "--otlp-exporter-endpoint",
        receiver.grpc_endpoint,
        "--otlp-exporter-protocol",
        "grpc",
        "--pid-file",
        str(tmp_path / "rotel.pid"),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LD_LIBRARY_PATH": library_path()},
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", grpc_port), 0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"rotel did not start: {log.read_text(errors='replace')}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{grpc_port}"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        if process.poll() is None:
            process.kill()
            process.wait(5)


@pytest.mark.parametrize("configurator", CONFIGURATORS)
def test_a_root_running_at_sigterm_arrives_finalized_through_rotel(
    receiver: OtlpReceiver, collector: str, tmp_path: Path, configurator: str
) -> None:
    app = launch(
        receiver,
        tmp_path / "app",
        [sys.executable, str(HERE / "traced_app.py")],
        configurator,
        endpoint=collector,
    )
    try:
        app.wait_for_output("traced-app-ready")
        app.terminate()
        returncode = app.wait_exit(10)
        # The collector forwards on its own schedule, after the app has exited.
        arrived = receiver.wait_for(lambda spans: {span.name for span in spans} >= ROOTS, 10)
        spans = receiver.spans()
    finally:
        app.kill()
    report = f"\n{describe(spans)}{app.output()}"

    assert arrived, report
    [running] = [span for span in spans if span.name == "traced.running"]
    assert running.status_code == "ERROR", report
    assert running.attributes.get("error.type") == "SIGTERM", report
    assert running.attributes.get("otel_lifecycle.finalized_by") == "signal", report
    assert running.resource.get("service.name") == "servers-test", report
    assert returncode == -signal.SIGTERM, report
