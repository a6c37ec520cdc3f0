"""Celery prefork workers (``-c 2``) and the Celery instrumentation, under opentelemetry-instrument.

A prefork child leaves through billiard's ``os._exit``: no exit hook runs, and
with the export tick pinned beyond the test (``_harness.SCHEDULE_DELAY_MS``)
every span that arrives was exported by ``otel_lifecycle._process.celery``: by
the flush in ``worker_process_shutdown`` (recycling, warm shutdown), or by the
handler that finalizes a child the main process terminates (hard time limit,
``revoke(terminate=True)``, cold shutdown, a SIGTERM from anyone else).
Each task's spans are ``run/<task>`` (the instrumentation's) and ``<task>.work``
(the task's own, inside it).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.process._journal import assert_journal_empty
from tests.process._launch import BIN
from tests.receiver import ReceivedSpan

from ._harness import Worker, assert_ended_by_app, assert_finalized, assert_once_each, named
from .conftest import StartApp

pytestmark = pytest.mark.timeout(60)

CONCURRENCY = 2
QUICK_TASKS = 10
SLOW_S = 1.0
"""A task that ends during the warm shutdown."""
STUCK_S = 30.0
"""A task that runs longer than any test."""


def worker_command(*options: str) -> list[str]:
    """``celery worker`` with the prefork pool of ``CONCURRENCY`` children, consuming tasks_app."""
    return [
        str(BIN / "celery"),
        "-A",
        "tasks_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(CONCURRENCY),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "info",
        *options,
    ]


@pytest.fixture(params=[pytest.param(False, id="no-journal")])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | None]:
    """The crash journal of the worker, if the test is parametrized with one (``True``).

    With one, every process retires or is adopted: nothing is left in it after the test.
    """
    if not request.param:
        yield None
        return
    path = tmp_path / "journal.db"
    yield path
    assert_journal_empty(path)


JOURNAL_TOO = pytest.mark.parametrize(
    "journal",
    [pytest.param(False, id="no-journal"), pytest.param(True, id="journal")],
    indirect=True,
)
"""The test, without and with a crash journal: the outcome is the same."""


@pytest.fixture
def start_worker(start_app: StartApp, broker: str, queue: str, journal: Path | None) -> Any:
    """``start_worker(*options)``: a Celery prefork worker consuming the test's queue, ready."""

    def start(*options: str) -> Worker:
        env = {"CELERY_BROKER_URL": broker, "CELERY_QUEUE": queue}
        if journal is not None:
            env["OTEL_LIFECYCLE_JOURNAL"] = str(journal)
        return start_app(worker_command(*options), env).wait_ready()

    return start


def send(producer: Any, queue: str, task: str, *args: object) -> str:
    """Send ``tasks_app.<task>(*args)`` to the test's queue; its task id."""
    result = producer.send_task(f"tasks_app.{task}", args=args, queue=queue)
    return str(result.id)


def assert_tasks(spans: Sequence[Any], task: str, count: int, report: str) -> None:
    """``count`` ``run/tasks_app.<task>`` spans, each the parent of one ``<task>.work`` span."""
    runs = named(spans, f"run/tasks_app.{task}")
    works = named(spans, f"{task}.work")
    assert len(runs) == count, report
    assert len(works) == count, report
    assert sorted(work.parent_span_id or "" for work in works) == sorted(
        run.span_id for run in runs
    ), report


def marker_pid(marker: str) -> int:
    """The pid of the child that runs a task, from its marker ``<label>-<pid>``."""
    return int(marker.rpartition("-")[2])


def every_child_busy(start_worker: Any, producer: Any, queue: str, seconds: float) -> Worker:
    """A worker started, each of its children running a ``slow`` task of ``seconds``."""
    worker: Worker = start_worker()
    for label in ("a", "b"):  # one for each of the CONCURRENCY children
        send(producer, queue, "slow", seconds, label)
    worker.wait_for_markers(CONCURRENCY)
    return worker


def task_spans(task: str, count: int = 1) -> list[str]:
    """The span names of ``count`` ``task`` tasks: ``run/tasks_app.<task>``, ``<task>.work``."""
    return [f"run/tasks_app.{task}", f"{task}.work"] * count


def received_once(worker: Worker, task: str, count: int) -> tuple[tuple[ReceivedSpan, ...], str]:
    """The spans received, each once, those of ``count`` ``task`` tasks among them; and a report."""
    spans, report = worker.received()
    assert_once_each(spans)
    assert_tasks(spans, task, count, report)
    return spans, report


def stop_warm(worker: Worker, task: str, count: int) -> tuple[tuple[ReceivedSpan, ...], str]:
    """SIGTERM to the main process: Celery's warm shutdown, the idle children exit.

    Then what :func:`received_once` returns.
    """
    worker.send_signal(signal.SIGTERM)
    assert worker.wait_exit(20) == 0, worker.output()
    return received_once(worker, task, count)


def test_children_recycled_after_each_task_export_every_span(
    start_worker: Any, producer: Any, queue: str
) -> None:
    """``--max-tasks-per-child 1``: each child ``os._exit``s milliseconds after its one task."""
    worker = start_worker("--max-tasks-per-child", "1")
    for number in range(QUICK_TASKS):
        send(producer, queue, "quick", number)
    worker.wait_for_spans(task_spans("quick", QUICK_TASKS), timeout=30)
    spans, report = stop_warm(worker, "quick", QUICK_TASKS)

    assert_ended_by_app(spans, report)


@JOURNAL_TOO
def test_a_warm_shutdown_exports_the_tasks_it_lets_finish(
    start_worker: Any, producer: Any, queue: str
) -> None:
    worker = every_child_busy(start_worker, producer, queue, SLOW_S)
    spans, report = stop_warm(worker, "slow", CONCURRENCY)

    assert_ended_by_app(spans, report)


def test_a_hard_time_limit_ends_the_task_as_time_limit_exceeded(
    start_worker: Any, producer: Any, queue: str
) -> None:
    """billiard SIGTERMs the child at the limit and SIGKILLs it about 0.1 s later.

    Both spans must have left before the SIGKILL (the child waits a second in
    ``_do_exit`` after the SIGTERM, so it is always killed).
    """
    worker = start_worker()
    send(producer, queue, "limited", "limited")
    worker.wait_for_markers(1)
    worker.wait_for_spans(task_spans("limited"))
    spans, report = stop_warm(worker, "limited", 1)

    assert_finalized(spans, "TimeLimitExceeded", report)
    assert "Hard time limit (1s) exceeded" in worker.output(), report


@JOURNAL_TOO
def test_a_cold_shutdown_ends_the_running_tasks_as_cold_shutdown(
    start_worker: Any, producer: Any, queue: str
) -> None:
    """SIGQUIT to the main process: Celery cancels the running tasks, SIGTERMing their children."""
    worker = every_child_busy(start_worker, producer, queue, STUCK_S)
    worker.send_signal(signal.SIGQUIT)
    worker.wait_exit(20)
    spans, report = received_once(worker, "slow", CONCURRENCY)

    assert_finalized(spans, "cold_shutdown", report)


@JOURNAL_TOO
def test_revoke_with_terminate_ends_the_task_as_task_revoked_error(
    start_worker: Any, producer: Any, queue: str
) -> None:
    worker = start_worker()
    task_id = send(producer, queue, "slow", STUCK_S, "revoked")
    worker.wait_for_markers(1)
    producer.control.revoke(task_id, terminate=True)
    worker.wait_for_spans(task_spans("slow"))
    spans, report = stop_warm(worker, "slow", 1)

    assert_finalized(spans, "TaskRevokedError", report)


@JOURNAL_TOO
def test_a_child_terminated_by_anyone_else_ends_its_task_as_sigterm(
    start_worker: Any, producer: Any, queue: str
) -> None:
    """A SIGTERM the main process did not send (an operator, systemd's control-group kill)."""
    worker = start_worker()
    send(producer, queue, "slow", STUCK_S, "killed")
    [marker] = worker.wait_for_markers(1)
    os.kill(marker_pid(marker), signal.SIGTERM)
    worker.wait_for_spans(task_spans("slow"))
    spans, report = stop_warm(worker, "slow", 1)

    assert_finalized(spans, "SIGTERM", report)
