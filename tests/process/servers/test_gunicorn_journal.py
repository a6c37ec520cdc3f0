"""gunicorn ``-w 1`` (a sync worker) + Flask with the crash journal: a worker SIGKILLed mid-request.

The master and every worker it forks journal into the test's file
(``OTEL_LIFECYCLE_JOURNAL``). A worker killed as the OOM killer would (SIGKILL:
no handler, no exit hook) leaves its open SERVER span in the journal; the
master (at its next heartbeat, every 2 s) or the worker it starts in its place
(at its start) finds the owner gone, adopts the row and exports the span as
``process_crash`` at its next export tick (200 ms here, as for every server
test). No restart of the master, no CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.process._journal import (
    Recovery,
    assert_recovered,
    describe_journal,
    journaled,
    owners,
    rows,
)
from tests.process._launch import INSTRUMENT, free_port, otel_environment, start
from tests.receiver import OtlpReceiver

from ._harness import (
    HERE,
    SLOW_S,
    Server,
    assert_ended_by_app,
    assert_no_duplicates,
    gunicorn,
    server_spans,
    sigterm,
    wait_ready,
)

GUNICORN = gunicorn("--workers", "1")
"""The default ``--timeout`` (30 s): the master does not abort the stuck worker itself."""
SCHEDULE_DELAY_MS = 200
"""``OTEL_BSP_SCHEDULE_DELAY``, as ``_harness.launch`` sets it."""
RECOVERY_S = 10
"""The killed worker's span arrives within this long of the SIGKILL."""

pytestmark = pytest.mark.timeout(40)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def start_journaled(
    receiver: OtlpReceiver, tmp_path: Path, journal: Path
) -> Iterator[Callable[[Sequence[str]], Server]]:
    """``start_journaled(command)``: as ``start_server(command, "configurator")`` (the
    distro's configurator), journaling into ``journal``; its process group killed after."""
    started: list[Server] = []

    def launch(command: Sequence[str]) -> Server:
        env = otel_environment(
            "servers-test",
            receiver.grpc_endpoint,
            SCHEDULE_DELAY_MS,
            OTEL_PYTHON_EXCLUDED_URLS="health",
            OTEL_PYTHON_CONFIGURATOR="configurator",
            OTEL_LIFECYCLE_JOURNAL=str(journal),
        )
        port = free_port()
        argv = [str(INSTRUMENT), *(part.format(port=port) for part in command)]
        directory = tmp_path / f"server-{len(started)}"
        server = start(
            Server, receiver, directory, argv, cwd=HERE, env=env, folders="SERVERS", port=port
        )
        started.append(server)
        return wait_ready(server)

    yield launch
    for server in started:
        server.kill()


def test_a_worker_killed_mid_request_has_its_span_recovered_by_the_master_or_its_replacement(
    start_journaled: Callable[[Sequence[str]], Server], receiver: OtlpReceiver, journal: Path
) -> None:
    server = start_journaled(GUNICORN)
    [ready] = server.wait_for_workers(1)
    pid = int(ready.removeprefix("ready-"))
    server.quick(1)
    # exported before the kill: an ended span waiting for the export tick dies with the worker
    assert receiver.wait_for(lambda spans: bool(server_spans(spans, "GET /quick")), 10), (
        server.output()
    )
    server.fire(f"/slow?seconds={SLOW_S}")
    server.wait_for_markers(1)
    journaled(journal, server, ["GET /slow"], pid)
    held = [row for row in rows(journal) if row.pid == pid]  # every span the worker has open
    recovery = Recovery.sigkill(pid)
    ids = {row.span_id for row in held}
    arrived = recovery.wait(receiver, journal, ids, RECOVERY_S)
    master_ran = server.process.poll() is None  # through the recovery: no restart
    workers = server.wait_for_workers(2)  # the master started another worker
    returncode, spans, report = sigterm(server, f"\nworkers: {workers}")
    report = describe_journal(journal) + report  # once every process has exited

    assert arrived, f"not within {RECOVERY_S} s of the SIGKILL{report}"
    assert master_ran, report
    assert returncode == 0, report
    assert f"Worker (pid:{pid}) was sent SIGKILL!" in server.log.read_text(errors="replace"), report
    assert_no_duplicates(spans)
    assert_ended_by_app(server_spans(spans, "GET /quick"), 1, "quick request" + report)
    recovered = [span for span in spans if span.span_id in ids]
    assert len(recovered) == len(ids), report
    assert_recovered(recovered, recovery, report)
    [slow] = server_spans(recovered, "GET /slow")
    assert server_spans(spans, "GET /slow") == [slow], report
    assert [reply.status for reply in server.replies] == [None], report  # the connection died
    assert rows(journal) == [], report
    assert owners(journal) == [], report
    replacement = {int(name.removeprefix("ready-")) for name in workers} - {pid}
    print(
        f"\ngunicorn SIGKILL of worker {pid}: {len(recovered)} span(s) arrived "
        f"{recovery.delay:.3f} s after it; adopted by "
        f"{who(recovery.adopter_pids(), server.process.pid, replacement)}"
    )


def who(adopters: set[int], master: int, replacement: set[int]) -> str:
    """The adopters seen, each as the master or the worker that replaced the killed one."""
    if not adopters:
        return "(not seen: the row left between two looks)"
    return ", ".join(
        "the master"
        if pid == master
        else f"the replacement worker {pid}"
        if pid in replacement
        else f"process {pid}"
        for pid in sorted(adopters)
    )
