"""Bounded calls reuse their threads, and deadlines run on the processor's injected clock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._core import bounded
from otel_lifecycle._core.bounded import MAX_THREADS, BoundedCaller
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.delegate import DelegatePath
from tests.processor.test_dropin import RecordingProcessor

BUDGET = 10.0
"""Seconds a call that does finish is given: far more than it needs."""
OVERRUN = 0.05
"""Seconds a call that hangs is given: the test waits this long for each such call."""


def bounded_threads() -> int:
    return sum(thread.name == "otel_lifecycle.bounded" for thread in threading.enumerate())


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that hung calls wait for; set at the end so their threads return to the pool."""
    event = threading.Event()
    yield event
    event.set()


def test_calls_one_after_another_share_one_thread() -> None:
    """Twenty calls in a row run on one thread, started for the first."""
    caller = BoundedCaller()
    before = bounded_threads()
    idents: list[int] = []

    results = [caller.call_within(lambda: idents.append(threading.get_ident()), BUDGET)]
    results += [
        caller.call_within(lambda: idents.append(threading.get_ident()), BUDGET) for _ in range(19)
    ]

    assert results == [True] * 20
    assert len(set(idents)) == 1
    assert threading.get_ident() not in idents
    assert bounded_threads() == before + 1


def test_a_hung_call_times_out_and_the_next_call_gets_another_thread(
    release: threading.Event,
) -> None:
    """The hung call keeps its thread; later calls run on a second one, reused."""
    caller = BoundedCaller()
    before = bounded_threads()

    assert caller.call_within(release.wait, OVERRUN) is False
    assert [caller.call_within(lambda: None, BUDGET) for _ in range(5)] == [True] * 5

    assert bounded_threads() == before + 2


def test_once_every_thread_hangs_a_call_fails_at_once_without_a_new_thread(
    release: threading.Event,
) -> None:
    """With MAX_THREADS calls hung, another call returns False and is never run."""
    caller = BoundedCaller()
    before = bounded_threads()
    for _ in range(MAX_THREADS):
        assert caller.call_within(release.wait, OVERRUN) is False
    ran: list[bool] = []

    assert caller.call_within(lambda: ran.append(True), BUDGET) is False

    assert ran == []
    assert bounded_threads() == before + MAX_THREADS


def test_a_call_that_raises_or_returns_false_is_false_and_the_thread_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising call is logged and counts as False; one returning False is False."""
    caller = BoundedCaller()

    def fail() -> None:
        raise RuntimeError("delegate broke")

    assert caller.call_within(fail, BUDGET) is False
    assert caller.call_within(lambda: False, BUDGET) is False
    assert caller.call_within(lambda: "flushed", BUDGET) is True
    assert "a bounded call failed" in caplog.text


def refuse_new_threads(*args: object) -> threading.Thread:
    """What Python 3.12+ does once the interpreter finalizes, as in ``atexit`` hooks."""
    raise RuntimeError("can't create new thread at interpreter shutdown")


def test_a_reserved_thread_serves_a_call_once_no_thread_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caller = BoundedCaller()
    caller.reserve()
    monkeypatch.setattr(bounded, "background", refuse_new_threads)
    ran: list[bool] = []
    assert caller.call_within(lambda: ran.append(True), BUDGET) is True
    assert ran == [True]


def test_a_call_that_cannot_start_a_thread_fails_at_once_and_the_pool_recovers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caller = BoundedCaller()
    with monkeypatch.context() as patched:
        patched.setattr(bounded, "background", refuse_new_threads)
        assert caller.call_within(lambda: None, BUDGET) is False
    assert "no thread for a bounded call" in caplog.text
    assert [caller.call_within(lambda: None, BUDGET) for _ in range(MAX_THREADS + 1)] == [True] * (
        MAX_THREADS + 1
    )


def test_a_delegate_path_reserves_the_thread_its_shutdown_runs_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At interpreter exit the delegate's shutdown runs on the thread reserved when it was made."""
    monkeypatch.setattr(bounded, "CALLER", BoundedCaller())
    delegate = RecordingProcessor()
    path = DelegatePath(delegate)
    monkeypatch.setattr(bounded, "background", refuse_new_threads)
    assert path.shutdown(BUDGET) is True
    assert [call[0] for call in delegate.calls] == ["shutdown"]


FORKED = """
import os
from otel_lifecycle._core.bounded import call_within

assert call_within(lambda: None, 5)  # the parent's pool has a thread now
pid = os.fork()
if pid == 0:
    os._exit(0 if call_within(lambda: "done", 5) else 1)
_, status = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_a_forked_child_gets_a_thread_of_its_own() -> None:
    """The parent's pool thread did not survive the fork: the child's first call starts one."""
    completed = subprocess.run(
        [sys.executable, "-c", FORKED], capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_a_deadline_counts_down_on_its_clock() -> None:
    """remaining() reads the clock it was given, and is never negative."""
    now = [100.0]
    deadline = Deadline(lambda: now[0], 5.0)

    assert deadline.remaining() == 5.0
    now[0] = 103.5
    assert deadline.remaining() == 1.5
    now[0] = 200.0
    assert deadline.remaining() == 0.0


def test_flush_budget_is_measured_on_the_injected_clock() -> None:
    """A clock that jumps a minute per read leaves force_flush no budget for the delegate."""
    ticks = iter(range(0, 60 * 1_000_000, 60))
    delegate = RecordingProcessor()
    processor = LifecycleSpanProcessor(
        delegate, clock=lambda: float(next(ticks)), handle_signals=False
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)

    assert processor.force_flush(30_000) is False
    assert delegate.named("force_flush") == []

    provider.shutdown()


def test_flush_budget_with_the_default_clock_reaches_the_delegate() -> None:
    """The same flush with the real clock gives the delegate the budget, in milliseconds."""
    delegate = RecordingProcessor()
    processor = LifecycleSpanProcessor(delegate, handle_signals=False)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)

    assert processor.force_flush(30_000) is True
    ((_, args, kwargs),) = delegate.flushes
    assert kwargs == {}
    assert 29_000 < args[0] <= 30_000

    provider.shutdown()
