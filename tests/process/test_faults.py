"""Faults at exit, one case each: a wedged exporter, a second signal, a signal during the exit hook.

Real subprocesses (``tests/apps/fault_app.py``), real signals, real OTLP to the
embedded receiver; what arrived is checked by span id (``tests/process/faults``).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.process.faults import GRACE, Plan, Step, run
from tests.receiver import OtlpReceiver

ALLOWED = 15.0
"""Seconds after its last fault before a process that does not end is killed (and fails)."""

UNTOUCHED = ("UNSET", None)
SIGTERMED = ("ERROR", "SIGTERM")
SHUT_DOWN = ("ERROR", "shutdown")
ENDED_BEFORE = {
    "ended.0": UNTOUCHED,
    "ended.0.child": UNTOUCHED,
    "ended.1": UNTOUCHED,
    "ended.1.child": UNTOUCHED,
}


def every_span(open_ending: tuple[str, str | None]) -> dict[str, tuple[str, str | None]]:
    """The reasons when every span of a one-round plan arrives: the open ones ``open_ending``."""
    return {
        "ended.0": UNTOUCHED,
        "ended.0.child": UNTOUCHED,
        "queued.0": UNTOUCHED,
        "queued.0.child": UNTOUCHED,
        "open.0": open_ending,
        "open.0.child": open_ending,
    }


LEFT_IN_THE_EXPORTER = ("queued.0", "queued.0.child", "open.0", "open.0.child")

WEDGED = Plan(exports=("ok", "hang"), hang_shutdown=True, ended=2)
"""Export call 1 and ``shutdown()`` block forever, as with a collector that hangs."""
SLOW = Plan(exports=("slow",) * 6, slow=0.6)
"""Every export takes 0.6 s, then succeeds."""


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_wedged_exporter_at_sigterm_the_process_still_dies_by_sigterm_in_time(
    receiver: OtlpReceiver, transport: str
) -> None:
    plan = Plan(
        **{**WEDGED.__dict__, "transport": transport, "steps": (Step("ready", signal.SIGTERM),)}
    )
    outcome = run(plan, receiver, allowed=ALLOWED)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert outcome.elapsed <= plan.shutdown_timeout + GRACE, outcome.stderr
    assert outcome.reasons() == ENDED_BEFORE
    for name in LEFT_IN_THE_EXPORTER:  # not exported: each named in the log, by span id
        assert outcome.started[name] in outcome.stderr, (name, outcome.stderr)


def test_a_wedged_exporter_when_main_returns_the_process_exits_in_time(
    receiver: OtlpReceiver,
) -> None:
    plan = Plan(**{**WEDGED.__dict__, "finish": "return"})
    outcome = run(plan, receiver, allowed=ALLOWED)
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.elapsed <= plan.shutdown_timeout + GRACE, outcome.stderr
    assert outcome.reasons() == ENDED_BEFORE
    assert "Exception ignored" not in outcome.stderr
    for name in LEFT_IN_THE_EXPORTER:
        assert outcome.started[name] in outcome.stderr, (name, outcome.stderr)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_does_not_cut_short_the_work_of_the_first_sigterm(
    receiver: OtlpReceiver, second: signal.Signals
) -> None:
    """systemd signals the whole unit, then the main process forwards; people press Ctrl-C."""
    # "export N start" is printed before the export's 0.6 s: sent on that line, the second
    # signal lands while the first one's handler waits for the export.
    steps = (Step("ready", signal.SIGTERM), Step("export", second))
    plan = Plan(**{**SLOW.__dict__, "steps": steps})
    outcome = run(plan, receiver, allowed=ALLOWED)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert outcome.reasons() == every_span(SIGTERMED)
    assert {name: span.span_id for name, span in outcome.arrived.items()} == outcome.started


def test_sigterm_during_the_exit_hook_lets_it_finish_then_the_process_dies_by_it(
    receiver: OtlpReceiver,
) -> None:
    plan = Plan(**{**SLOW.__dict__, "finish": "return", "steps": (Step("export", signal.SIGTERM),)})
    outcome = run(plan, receiver, allowed=ALLOWED)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert outcome.elapsed <= plan.shutdown_timeout + GRACE, outcome.stderr
    assert outcome.reasons() == every_span(SHUT_DOWN)
    assert "Exception ignored" not in outcome.stderr


@pytest.mark.parametrize("finish", ["return", "signal"])
def test_a_journal_locked_by_another_process_does_not_keep_finalized_spans_from_the_exporter(
    receiver: OtlpReceiver, tmp_path: Path, finish: str
) -> None:
    """A sibling worker or ``otel-lifecycle recover`` holds the journal's write lock."""
    steps = (Step("ready", signal.SIGTERM),) if finish == "signal" else ()
    plan = Plan(
        finish="wait" if steps else "return",
        journal=str(tmp_path / "journal.sqlite"),
        lock_journal=True,
        steps=steps,
    )
    outcome = run(plan, receiver, allowed=ALLOWED)
    assert outcome.returncode == (-signal.SIGTERM if steps else 0), outcome.stderr
    assert outcome.elapsed <= plan.shutdown_timeout + GRACE, outcome.stderr
    ending = SIGTERMED if steps else SHUT_DOWN
    assert outcome.reasons() == every_span(ending)


@pytest.mark.parametrize(
    ("delegate", "app_handler"),
    [("stage", False), ("batch", False), ("stage", True), ("batch", True)],
    ids=["stage-dies", "batch-processor-dies", "stage-app-handler", "batch-processor-app-handler"],
)
def test_a_signal_handler_waits_for_no_lock_the_interrupted_thread_holds(
    receiver: OtlpReceiver, tmp_path: Path, delegate: str, app_handler: bool
) -> None:
    """The app's main thread holds every lock reachable from the processor (its journal, its
    export path, a delegate ``BatchSpanProcessor``'s) when SIGTERM arrives."""
    plan = Plan(
        journal=str(tmp_path / "journal.sqlite"),
        delegate=delegate,
        app_handler=app_handler,
        hold_locks=True,
        steps=(Step("ready", signal.SIGTERM),),
    )
    outcome = run(plan, receiver, allowed=ALLOWED)
    assert outcome.returncode == (0 if app_handler else -signal.SIGTERM), outcome.stderr
    # With the app's handler, the signal's flush and the exit's shutdown each have the budget.
    budgets = 2 if app_handler else 1
    assert outcome.elapsed <= budgets * plan.shutdown_timeout + GRACE, outcome.stderr
    if delegate == "stage":  # nothing the export needs is held: everything arrives
        assert outcome.reasons() == every_span(SIGTERMED)
    else:  # the batch processor's own export lock is held: only what it exported before
        assert outcome.reasons() == {"ended.0": UNTOUCHED, "ended.0.child": UNTOUCHED}
