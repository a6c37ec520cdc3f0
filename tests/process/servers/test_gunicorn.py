"""gunicorn ``--preload -w 2`` (sync workers) + Flask, under ``opentelemetry-instrument``.

SIGTERM to the master: it closes the listeners, sends SIGTERM to each worker and
SIGKILLs the workers still alive ``--graceful-timeout`` seconds later. A sync
worker keeps running its request after SIGTERM, so a request longer than the
graceful timeout dies with the worker: its SERVER span must still arrive, once,
ERROR with ``error.type="SIGTERM"``, before the SIGKILL (no journal involved).
"""

from __future__ import annotations

import pytest

from ._harness import (
    CONFIGURATORS,
    GRACEFUL_S,
    SLOW_S,
    Server,
    StartServer,
    assert_a_drained_request_is_not_an_error,
    assert_ended_by_app,
    assert_no_duplicates,
    assert_sigterm,
    gunicorn,
    server_spans,
    sigterm,
)

WORKERS = 2

GUNICORN = gunicorn("--preload", "--workers", str(WORKERS))

pytestmark = pytest.mark.timeout(40)


def started(start_server: StartServer, configurator: str) -> Server:
    """gunicorn, answering, with every worker ready (see ``gunicorn_conf.py``)."""
    server = start_server(GUNICORN, configurator)
    server.wait_for_workers(WORKERS)
    return server


@pytest.mark.parametrize("configurator", CONFIGURATORS)
def test_requests_running_at_sigterm_arrive_once_as_sigterm(
    start_server: StartServer, configurator: str
) -> None:
    server = started(start_server, configurator)
    server.quick(5)
    for _ in range(3):
        server.fire(f"/slow?seconds={SLOW_S}")
    # A sync worker runs one request at a time: two run, the third waits in the backlog.
    running = server.wait_for_markers(WORKERS)
    returncode, spans, report = sigterm(server, f"\nrunning at SIGTERM: {running}")

    assert_no_duplicates(spans)
    assert_ended_by_app(server_spans(spans, "GET /quick"), 5, "quick requests" + report)
    assert_sigterm(server_spans(spans, "GET /slow"), len(running), "slow requests" + report)
    assert returncode == 0, report  # the master's own exit status after a graceful stop
    assert server.sigterm_to_exit < GRACEFUL_S + 3, report


@pytest.mark.parametrize("configurator", CONFIGURATORS)
def test_a_request_that_completes_during_the_drain_is_not_an_error(
    start_server: StartServer, configurator: str
) -> None:
    """A request that ends during the drain is exported as the app ended it."""
    assert_a_drained_request_is_not_an_error(started(start_server, configurator), 0)
