"""uvicorn + FastAPI, under ``opentelemetry-instrument``.

SIGTERM: uvicorn stops accepting, waits ``--timeout-graceful-shutdown`` seconds
for the running requests, cancels the ones left, runs the lifespan shutdown,
restores the previous signal handlers and raises SIGTERM again, so the process
dies by SIGTERM. The ASGI instrumentation ends a cancelled request's span UNSET,
without an exception event; it must arrive ERROR with ``error.type="SIGTERM"``
(ended by the instrumentation after the lifecycle marked it, or finalized by the
lifecycle processor with ``otel_lifecycle.finalized_by="signal"``).
"""

from __future__ import annotations

import signal

import pytest

from tests.process._launch import BIN

from ._harness import (
    CONFIGURATORS,
    GRACEFUL_S,
    HERE,
    SLOW_S,
    StartServer,
    assert_a_drained_request_is_not_an_error,
    assert_ended_by_app,
    assert_no_duplicates,
    assert_sigterm,
    server_spans,
    sigterm,
)

UVICORN = [
    str(BIN / "uvicorn"),
    "fastapi_app:app",
    "--app-dir",
    str(HERE),
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
    "--timeout-graceful-shutdown",
    str(GRACEFUL_S),
    "--log-level",
    "info",
]

pytestmark = pytest.mark.timeout(40)


@pytest.mark.parametrize("configurator", CONFIGURATORS)
def test_requests_running_at_sigterm_arrive_once_as_sigterm(
    start_server: StartServer, configurator: str
) -> None:
    server = start_server(UVICORN, configurator)
    server.quick(5)
    for _ in range(3):
        server.fire(f"/slow?seconds={SLOW_S}")
    running = server.wait_for_markers(3)
    returncode, spans, report = sigterm(server, f"\nrunning at SIGTERM: {running}")

    assert_no_duplicates(spans)
    assert_ended_by_app(server_spans(spans, "GET /quick"), 5, "quick requests" + report)
    assert_sigterm(server_spans(spans, "GET /slow"), 3, "slow requests" + report)
    # uvicorn re-raises the SIGTERM it captured once it has shut down.
    assert returncode == -signal.SIGTERM, report
    assert server.sigterm_to_exit < GRACEFUL_S + 3, report


@pytest.mark.parametrize("configurator", CONFIGURATORS)
def test_a_request_that_completes_during_the_drain_is_not_an_error(
    start_server: StartServer, configurator: str
) -> None:
    """A request that ends during the drain is exported as the app ended it."""
    assert_a_drained_request_is_not_an_error(start_server(UVICORN, configurator), -signal.SIGTERM)
