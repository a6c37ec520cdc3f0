"""gunicorn ``-w 1 --timeout 2`` (a sync worker) + Flask: a request stuck past the worker timeout.

The master SIGABRTs a worker that has not checked in for ``--timeout`` seconds
(and SIGKILLs it on a later check if it is still there). The worker's
``handle_abort`` runs the ``worker_abort`` hook and ``sys.exit(1)``: the
``SystemExit`` unwinds the request (the client gets gunicorn's 500), and the
Flask instrumentation ends its SERVER span UNSET, as if it had succeeded. With
otel_lifecycle it arrives once, ERROR with ``error.type="worker_timeout"``; the
worker then exits normally, its exit hooks export it, and the master starts
another worker.
"""

from __future__ import annotations

import pytest

from ._harness import (
    CONFIGURATORS,
    SLOW_S,
    StartServer,
    assert_ended_by_app,
    assert_no_duplicates,
    gunicorn,
    server_spans,
    sigterm,
)

TIMEOUT_S = 2
"""gunicorn ``--timeout``: the master aborts a worker stuck in a request this long."""

GUNICORN = gunicorn("--workers", "1", "--timeout", str(TIMEOUT_S))

pytestmark = pytest.mark.timeout(40)


@pytest.mark.parametrize("configurator", CONFIGURATORS)
def test_a_request_cut_by_the_worker_timeout_arrives_as_worker_timeout(
    start_server: StartServer, configurator: str
) -> None:
    server = start_server(GUNICORN, configurator)
    [first] = server.wait_for_workers(1)
    server.quick(1)
    server.fire(f"/slow?seconds={SLOW_S}")
    server.wait_for_markers(1)
    aborted = server.receiver.wait_for(lambda spans: bool(server_spans(spans, "GET /slow")), 15)
    replacement = server.wait_for_workers(2)  # the master started another worker
    _, spans, report = sigterm(server, f"\nworkers: {replacement}")

    assert aborted, report
    log = server.log.read_text(errors="replace")
    assert f"WORKER TIMEOUT (pid:{first.removeprefix('ready-')})" in log, report
    assert_no_duplicates(spans)
    assert_ended_by_app(server_spans(spans, "GET /quick"), 1, "quick request" + report)
    [slow] = server_spans(spans, "GET /slow")
    assert slow.status_code == "ERROR", report
    assert slow.attributes.get("error.type") == "worker_timeout", report
    assert [reply.status for reply in server.replies] != [200], report
