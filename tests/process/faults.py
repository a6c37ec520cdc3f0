"""Drive ``tests/apps/fault_app.py``: a plan of faults, signals sent at its moments, the outcome.

A :class:`Plan` says what the app's exporter does at each export call, how many
spans it ends and leaves open, how it finishes, and which signals to send when:
each :class:`Step` waits for a line of the app (``ready``, or the next ``export
N start``), then for its delay, then sends its signal. :func:`run` returns what
arrived at the receiver, by span id, with the span ids the app started.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from tests._paths import APPS, ROOT
from tests.receiver import OtlpReceiver, ReceivedSpan

APP = APPS / "fault_app.py"
STARTUP = 30.0
"""Seconds the app may take to import and get ready."""
GRACE = 1.0
"""Seconds past ``shutdown_timeout`` a process may take to end after its last fault."""


@dataclass(frozen=True)
class Step:
    """Once the app prints a line starting with ``after``, wait ``delay`` s; send ``signum``."""

    after: str
    signum: int
    delay: float = 0.0


@dataclass(frozen=True)
class Plan:
    """What the app does; the keys of its JSON are the app's (``fault_app.py``)."""

    transport: str = "grpc"
    shutdown_timeout: float = 2.0
    exports: tuple[str, ...] = ()
    slow: float = 0.6
    hang_shutdown: bool = False
    ended: int = 1
    queued: int = 1
    open: int = 1
    finish: str = "wait"
    journal: str | None = None
    delegate: str = "stage"
    app_handler: bool = False
    hold_locks: bool = False
    lock_journal: bool = False
    """Hold the journal's write lock from ``ready`` on, as a sibling process writing to it."""
    steps: tuple[Step, ...] = field(default=(), compare=False)

    def argument(self, endpoint: str) -> str:
        plan = asdict(self)
        del plan["steps"], plan["lock_journal"]
        return json.dumps({**plan, "endpoint": endpoint})


@dataclass
class Outcome:
    returncode: int
    elapsed: float
    """Seconds from the last signal (or from ``ready`` without one) to the exit."""
    started: dict[str, str]
    """Span name -> span id (hex), as the app printed them."""
    arrived: dict[str, ReceivedSpan]
    """Span name -> the span the receiver got (each checked to arrive at most once)."""
    stdout: str
    stderr: str

    def reasons(self) -> dict[str, tuple[str, object]]:
        """Span name -> (status, ``error.type``) of what arrived."""
        return {
            name: (span.status_code, span.attributes.get("error.type"))
            for name, span in self.arrived.items()
        }


def run(plan: Plan, receiver: OtlpReceiver, *, allowed: float) -> Outcome:
    """Run the app under ``plan``; fail if it still runs ``allowed`` s after its last signal."""
    endpoint = receiver.grpc_endpoint if plan.transport == "grpc" else receiver.http_endpoint
    process = subprocess.Popen(
        [sys.executable, str(APP), plan.argument(endpoint)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OTEL_BSP_SCHEDULE_DELAY": "600000"},
    )
    stack = contextlib.ExitStack()
    lines: queue.Queue[str] = queue.Queue()
    stdout: list[str] = []
    stderr: list[str] = []
    readers = [
        threading.Thread(target=_read, args=(process.stdout, stdout, lines), daemon=True),
        threading.Thread(target=_read, args=(process.stderr, stderr, None), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        _expect(lines, "ready", STARTUP)
        if plan.lock_journal:
            assert plan.journal is not None
            holder = stack.enter_context(contextlib.closing(sqlite3.connect(plan.journal)))
            holder.execute("BEGIN IMMEDIATE")
        for step in plan.steps:
            if step.after != "ready":
                _expect(lines, step.after, STARTUP)
            if step.delay:
                time.sleep(step.delay)  # the moment the plan chose for this signal
            if process.poll() is None:
                process.send_signal(step.signum)
        last = time.monotonic()
        try:
            process.wait(allowed)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            for reader in readers:
                reader.join(5)
            raise AssertionError(
                f"still running {allowed}s after the last fault; killed\n{''.join(stderr)}"
            ) from None
        elapsed = time.monotonic() - last
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stack.close()
    for reader in readers:
        reader.join(5)
    spans = receiver.spans()
    by_id = Counter(span.span_id for span in spans)
    twice = sorted(span_id for span_id, count in by_id.items() if count > 1)
    assert twice == [], f"exported more than once: {twice}\n{''.join(stderr)}"
    started = {line.split()[1]: line.split()[2] for line in stdout if line.startswith("started ")}
    return Outcome(
        process.returncode,
        elapsed,
        started,
        {span.name: span for span in spans},
        "".join(stdout),
        "".join(stderr),
    )


def _read(stream: object, into: list[str], lines: queue.Queue[str] | None) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line)
        if lines is not None:
            lines.put(line)


def _expect(lines: queue.Queue[str], prefix: str, timeout: float) -> None:
    """Consume the app's lines until one starts with ``prefix``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise AssertionError(f"no line {prefix!r} within {timeout}s") from None
        if line.startswith(prefix):
            return
