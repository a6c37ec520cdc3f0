"""Celery prefork workers (``-c 2``) with the crash journal (``OTEL_LIFECYCLE_JOURNAL``).

Every process of the worker (the main process and each child it forks) journals
its open spans into the test's file and, every heartbeat (2 s; a new child also
at its start), adopts the rows of owners that are gone and exports them as
``process_crash``. A child SIGKILLed as the OOM killer would (no handler, no
exit path) so has its task's spans recovered by the worker that keeps running,
within seconds, with no restart and no CLI.

Unlike ``test_celery.py``, the export tick is short here (:data:`SCHEDULE_DELAY_MS`):
a recoverer queues what it adopted for the next tick, and nothing else would
export it before the worker stops. What the tick can export besides is only what
already ended, so it changes nothing the tests assert: a span cut by a SIGKILL
was open, and leaves only through the journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.process._journal import (
    PROCESS_CRASH,
    Recovery,
    assert_journal_empty,
    assert_recovered,
    describe_journal,
    journaled,
    owners,
)

from ._harness import Worker, assert_ended_by_app, describe, named
from .conftest import StartApp
from .test_celery import STUCK_S, marker_pid, send, stop_warm, task_spans, worker_command

pytestmark = pytest.mark.timeout(60)

SCHEDULE_DELAY_MS = 250
"""``OTEL_BSP_SCHEDULE_DELAY``: a recoverer exports what it adopted at its next tick."""
RECOVERY_S = 10
"""A killed child's spans arrive within this long of the SIGKILL."""
QUICK_TASKS = 20
JOURNALED_S = 0.3
"""A ``slow`` task this long is open across at least one of the journal writer's 0.1 s rounds."""
RECYCLED_TASKS = 10


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def start_worker(start_app: StartApp, broker: str, queue: str, journal: Path) -> Any:
    """``start_worker(*options)``: a prefork worker journaling into ``journal``, ready."""

    def start(*options: str) -> Worker:
        env = {
            "CELERY_BROKER_URL": broker,
            "CELERY_QUEUE": queue,
            "OTEL_LIFECYCLE_JOURNAL": str(journal),
            "OTEL_BSP_SCHEDULE_DELAY": str(SCHEDULE_DELAY_MS),
        }
        return start_app(worker_command(*options), env).wait_ready()

    return start


def test_a_child_killed_mid_task_has_its_spans_recovered_by_the_running_worker(
    start_worker: Any, producer: Any, queue: str, journal: Path
) -> None:
    """SIGKILL, as the OOM killer sends it: the child runs nothing more, not even a handler.

    The worker's other processes find its owner gone at their next heartbeat
    (or, for the child that replaces it, at its start) and export both spans.
    """
    worker: Worker = start_worker()
    send(producer, queue, "slow", STUCK_S, "oom")
    [marker] = worker.wait_for_markers(1)
    pid = marker_pid(marker)
    held = journaled(journal, worker, task_spans("slow"), pid)
    before = {owner.pid for owner in owners(journal)}  # the main process and both children
    recovery = Recovery.sigkill(pid)
    ids = {row.span_id for row in held}
    arrived = recovery.wait(worker.receiver, journal, ids, RECOVERY_S)
    spans, report = worker.received()
    report += describe_journal(journal)

    assert arrived, f"not within {RECOVERY_S} s of the SIGKILL{report}"
    assert worker.process.poll() is None, report  # recovered by the worker that still runs
    recovered = assert_recovered([span for span in spans if span.span_id in ids], recovery, report)
    [run] = named(recovered, "run/tasks_app.slow")
    [work] = named(recovered, "slow.work")
    assert work.parent_span_id == run.span_id, report
    adopters = recovery.adopter_pids()
    print(
        f"\ncelery SIGKILL of child {pid}: spans arrived {recovery.delay:.3f} s after it; "
        f"adopted by {who(adopters, worker.process.pid, before)}"
    )

    send(producer, queue, "quick", 1)  # the worker still consumes
    worker.wait_for_spans(task_spans("quick"))
    spans, report = stop_warm(worker, "slow", 1)  # every span once, by span id
    assert {span.span_id for span in named(spans, "run/tasks_app.slow")} == {run.span_id}, report
    assert {span.span_id for span in named(spans, "slow.work")} == {work.span_id}, report
    assert_ended_by_app(named(spans, "run/tasks_app.quick") + named(spans, "quick.work"), report)
    assert_journal_empty(journal, report)


def who(adopters: set[int], main: int, before: set[int]) -> str:
    """The adopters seen, each as the main process, a sibling child or a new child."""
    if not adopters:
        return "(not seen: the rows left between two looks)"
    names = {
        pid: "the main process"
        if pid == main
        else f"sibling child {pid}"
        if pid in before
        else f"new child {pid}"
        for pid in adopters
    }
    return ", ".join(sorted(names.values()))


def test_children_recycled_after_each_task_leave_no_false_crash(
    start_worker: Any, producer: Any, queue: str, journal: Path
) -> None:
    """``--max-tasks-per-child 1``: each child ``os._exit``s just after its task.

    Its spans ended and were exported by the exit flush: none may come back as
    ``process_crash`` from a row left behind, and none may be left in the journal.
    """
    worker = start_worker("--max-tasks-per-child", "1")
    for number in range(QUICK_TASKS):
        send(producer, queue, "quick", number)
    worker.wait_for_spans(task_spans("quick", QUICK_TASKS), timeout=30)
    spans, report = stop_warm(worker, "quick", QUICK_TASKS)

    assert len(spans) == 2 * QUICK_TASKS, report
    assert not [span for span in spans if span.attributes.get("error.type") == PROCESS_CRASH], (
        report
    )
    assert_ended_by_app(spans, report)
    assert_journal_empty(journal, report)


def test_recycled_children_whose_spans_were_journaled_leave_no_false_crash(
    start_worker: Any, producer: Any, queue: str, journal: Path
) -> None:
    """As above, with tasks long enough that each span's row was written: the exit flush
    exports the span, and its row must leave before the ``os._exit``."""
    worker = start_worker("--max-tasks-per-child", "1")
    for number in range(RECYCLED_TASKS):
        send(producer, queue, "slow", JOURNALED_S, f"recycled{number}")
    worker.wait_for_spans(task_spans("slow", RECYCLED_TASKS), timeout=30)
    spans, report = stop_warm(worker, "slow", RECYCLED_TASKS)

    assert len(spans) == 2 * RECYCLED_TASKS, report
    assert_ended_by_app(spans, report)
    assert_journal_empty(journal, report)


def test_a_hard_time_limit_with_the_journal_arrives_once(
    start_worker: Any, producer: Any, queue: str, journal: Path
) -> None:
    """billiard SIGTERMs the child at the limit, then SIGKILLs it about 0.1 s later.

    The child's handler exports both spans as ``TimeLimitExceeded`` and lets their
    rows go; had the SIGKILL come first, the worker would recover them as
    ``process_crash``. Either way, once each.
    """
    worker = start_worker()
    send(producer, queue, "limited", "limited")
    [marker] = worker.wait_for_markers(1)
    journaled(journal, worker, task_spans("limited"), marker_pid(marker))
    worker.wait_for_spans(task_spans("limited"))
    spans, report = stop_warm(worker, "limited", 1)
    report += describe_journal(journal)

    assert len(spans) == 2, report
    for span in spans:
        assert span.status_code == "ERROR", report
        assert span.attributes.get("error.type") in ("TimeLimitExceeded", PROCESS_CRASH), report
    print(f"\ncelery hard time limit with the journal:\n{describe(spans)}")
    assert "Hard time limit (1s) exceeded" in worker.output(), report
    assert_journal_empty(journal, report)
