"""Run a call that may hang (an exporter, a flush) within a time budget."""

from __future__ import annotations

from typing import Callable

from otel_lifecycle._core.threads import background


def call_within(function: Callable[[], object], timeout: float, name: str) -> bool:
    """Run ``function`` in a daemon thread and wait at most ``timeout`` seconds.

    Returns True if it finished in time and returned a truthy value or None. A
    call that overruns keeps running in its daemon thread; it never holds up the
    caller (or the interpreter's exit) past the budget.
    """
    outcome: list[object] = []

    def run() -> None:
        outcome.append(function())

    worker = background(run, name)
    worker.start()
    worker.join(max(timeout, 0.0))
    return bool(outcome) and outcome[0] is not False
