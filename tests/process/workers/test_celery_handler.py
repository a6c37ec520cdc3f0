"""``otel_lifecycle._process.celery`` in this process: the table of reasons and the child's handler.

The real workers (``test_celery.py``) show the outcome, the table crossing from
the main process to its children included; these pin what a real worker cannot
time: a slot read only by its own pid, and a terminate signal that arrives while
the exit flush runs, which waits for the flush instead of cutting it short.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType

import pytest

from otel_lifecycle._core.finalize import (
    CELERY_COLD_SHUTDOWN,
    CELERY_REVOKED,
    CELERY_TIME_LIMIT,
    SIGTERM,
    Reason,
)
from otel_lifecycle._process import celery


@pytest.mark.parametrize("reason", [CELERY_TIME_LIMIT, CELERY_REVOKED, CELERY_COLD_SHUTDOWN])
def test_a_reason_is_read_once_and_only_by_its_pid(reason: Reason) -> None:
    table = celery.Terminations()
    table.record(4242, reason)
    assert table.take(4242 + 1024) is None  # the same slot, another process
    assert table.take(4242) is reason
    assert table.take(4242) is None


def test_a_new_child_forgets_what_was_written_for_an_earlier_process_with_its_pid() -> None:
    table = celery.Terminations()
    table.record(4242, CELERY_REVOKED)
    table.forget(4242 + 1024)  # another pid in the same slot leaves it alone
    table.forget(4242)
    assert table.take(4242) is None


class _Processor:
    """A live processor as the hooks see it (``_core.active.Lifecycle``), recording calls."""

    _handles_signals = True
    _drain_timeout = None

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.during_shutdown: list[Callable[[], None]] = []

    def _die_of_signal(self, reason: Reason) -> None:
        self.calls.append(f"die:{reason.error_type}")

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        for action in self.during_shutdown:
            action()


@pytest.fixture
def processor(monkeypatch: pytest.MonkeyPatch) -> _Processor:
    """The only live processor the module sees, and a fresh state, for the test."""
    processor = _Processor()
    monkeypatch.setattr(celery, "live", lambda: [processor])
    monkeypatch.setattr(celery, "_state", celery._State(terminations=celery.Terminations()))
    return processor


def test_a_terminated_child_finalizes_with_the_reason_said_then_chains(
    processor: _Processor,
) -> None:
    chained: list[int] = []
    assert celery._state.terminations is not None
    celery._state.terminations.record(os.getpid(), CELERY_REVOKED)

    def billiard(signum: int, frame: FrameType | None) -> None:
        chained.append(signum)
        processor.calls.append("billiard")

    celery._terminated(signal.SIGTERM, None, billiard)
    assert processor.calls == ["die:TaskRevokedError", "billiard"]
    assert chained == [signal.SIGTERM]


def test_a_terminate_signal_without_a_reason_is_sigterm(processor: _Processor) -> None:
    celery._terminated(signal.SIGTERM, None, lambda signum, frame: None)
    assert processor.calls == [f"die:{SIGTERM.error_type}"]


def test_a_terminate_signal_during_the_exit_flush_waits_for_it(processor: _Processor) -> None:
    def billiard(signum: int, frame: FrameType | None) -> None:
        processor.calls.append("billiard")
        raise SystemExit(-(256 - signum))

    processor.during_shutdown.append(lambda: celery._terminated(signal.SIGTERM, None, billiard))
    with pytest.raises(SystemExit):
        celery._on_worker_process_shutdown(pid=os.getpid(), exitcode=0)
    assert processor.calls == ["shutdown", "billiard"]
    assert celery._state.deferred is None
    assert not celery._state.busy
