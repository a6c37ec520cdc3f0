"""Drive ``tests/apps/fault_app.py``: a plan of faults, signals sent at its moments, the outcome.

A :class:`Plan` says what the app's exporter does at each export call, how many
spans it ends and leaves open, how it finishes, and which signals to send when:
each :class:`Step` waits for a line of the app (``ready``, or the next ``export
N start``), then for its delay, then sends its signal. :func:`run` returns what
arrived at the receiver, by span id, with the span ids the app started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    setup: str = "direct"
    threads: int = 0
    fork: bool = False
    flush_timeout_millis: int = 30_000
    lock_journal: bool = False
    """Hold the journal's write lock from ``ready`` on, as a sibling process writing to it."""
    remove_journal: bool = False
    """Remove the journal's files at ``ready``, as an operator cleaning up would."""
    steps: tuple[Step, ...] = field(default=(), compare=False)

    def argument(self, endpoint: str) -> str:
        plan = asdict(self)
        del plan["steps"], plan["lock_journal"], plan["remove_journal"]
        return json.dumps({**plan, "endpoint": endpoint})


@dataclass
class Outcome:
    returncode: int
    elapsed: float
    """Seconds from the last signal (or from ``ready`` without one) to the exit."""
    started: dict[str, str]
    """Span name -> span id (hex), as the app printed them (but those it started before
    ``attach()``, which went through the plain SDK's batch processor)."""
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
    lines: queue.Queue[str | None] = queue.Queue()
    stdout: list[str] = []
    stderr: list[str] = []
    readers = [
        threading.Thread(target=_read, args=(process.stdout, stdout, lines), daemon=True),
        threading.Thread(target=_read, args=(process.stderr, stderr, None), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        assert _expect(lines, "ready", STARTUP), f"no 'ready' within {STARTUP}s"
        if plan.lock_journal:
            assert plan.journal is not None
            holder = stack.enter_context(contextlib.closing(sqlite3.connect(plan.journal)))
            holder.execute("BEGIN IMMEDIATE")
        if plan.remove_journal:
            assert plan.journal is not None
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(plan.journal + suffix).unlink(missing_ok=True)
        for step in plan.steps:
            if step.after != "ready":
                # A moment that does not come (no export any more) passes after a while.
                _expect(lines, step.after, 2 * plan.shutdown_timeout)
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
    attached = stdout.index("attached\n") if "attached\n" in stdout else 0
    plain = {line.split()[1] for line in stdout[:attached] if line.startswith("started ")}
    return Outcome(
        process.returncode,
        elapsed,
        {name: span_id for name, span_id in started.items() if name not in plain},
        {span.name: span for span in spans},
        "".join(stdout),
        "".join(stderr),
    )


def _read(stream: object, into: list[str], lines: queue.Queue[str | None] | None) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line)
        if lines is not None:
            lines.put(line)
    if lines is not None:
        lines.put(None)  # the app closed its output: it is gone


def _expect(lines: queue.Queue[str | None], prefix: str, timeout: float) -> bool:
    """Consume the app's lines until one starts with ``prefix``; False if none came in time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            return False
        if line is None:
            lines.put(None)
            return False
        if line.startswith(prefix):
            return True


# The seeded fault injection: a random plan per seed, and the invariants every run must keep.

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXPORT_FAULTS = ("ok", "ok", "ok", "ok", "slow", "hang", "raise", "failure")
BUDGET = 1.0
"""The ``shutdown_timeout`` of a harness run."""
SHOWN = 5
"""Violations printed per seed, at most."""


def random_plan(seed: int, journal: Path) -> Plan:
    """The plan of ``seed``: exporter faults, 0 to 3 signals, how the app ends, and more.

    A run always ends: an app that waits for a signal gets at least one.
    """
    rng = random.Random(seed)
    finish = rng.choice(("wait", "wait", "return", "exit"))
    steps = tuple(
        Step(
            rng.choice(("ready", "export")),
            rng.choice(SIGNALS),
            round(rng.uniform(0.0, 0.4), 3),
        )
        for _ in range(rng.choice((0, 1, 1, 2, 3)) or (1 if finish == "wait" else 0))
    )
    if finish == "wait" and steps[0].after == "export":  # the first one must come for sure
        steps = (Step("ready", steps[0].signum, steps[0].delay), *steps[1:])
    with_journal = rng.random() < 0.3
    setup = rng.choice(("direct", "direct", "attach"))
    hold_locks = rng.random() < 0.2
    return Plan(
        transport=rng.choice(("grpc", "http")),
        shutdown_timeout=BUDGET,
        exports=tuple(rng.choice(EXPORT_FAULTS) for _ in range(rng.randint(0, 6))),
        slow=round(rng.uniform(0.05, 0.6), 3),
        hang_shutdown=rng.random() < 0.3,
        ended=rng.randint(0, 3),
        queued=rng.randint(0, 3),
        open=rng.randint(0, 3),
        finish=finish,
        journal=str(journal) if with_journal else None,
        lock_journal=with_journal and rng.random() < 0.5,
        remove_journal=with_journal and rng.random() < 0.3,
        delegate="stage" if setup == "attach" else rng.choice(("stage", "stage", "batch")),
        app_handler=rng.random() < 0.25,
        hold_locks=hold_locks,
        setup=setup,
        # The main thread holding the processor's locks for good would block threads in
        # them, as no interrupted code can: each fault is drawn on its own.
        threads=0 if hold_locks else rng.choice((0, 0, 1, 2)),
        fork=rng.random() < 0.2,
        flush_timeout_millis=500,
        steps=steps,
    )


def violations(plan: Plan, outcome: Outcome) -> list[str]:
    """What broke the contract in a run; empty when it kept it.

    Every span the app started was exported exactly once (``run`` checks "at most")
    or is named, by span id, in what the process logged; the process ended within
    its budget (twice the budget when the app's own SIGTERM handler lets it go on
    to an ordinary exit after the signal's work); nothing was "Exception ignored".
    """
    found: list[str] = []
    arrived = {span.span_id for span in outcome.arrived.values()}
    for name, span_id in outcome.started.items():
        if span_id not in arrived and span_id not in outcome.stderr and not _delegates_loss(plan):
            found.append(f"{name} {span_id}: neither exported nor logged")
    budgets = 2 if plan.app_handler else 1
    if outcome.elapsed > budgets * plan.shutdown_timeout + GRACE:
        found.append(f"ended {outcome.elapsed:.2f}s after its last fault")
    ignored = _ignored_exceptions(outcome.stderr)
    if signal.SIGINT in {step.signum for step in plan.steps}:
        # A SIGINT landing in another atexit callback after the processors were done is
        # reported by Python itself, as without the package: not a failure of ours.
        ignored = [name for name in ignored if name != "KeyboardInterrupt"]
    if ignored:
        found.append(f"'Exception ignored' in its output: {', '.join(ignored)}")
    return found


def _ignored_exceptions(stderr: str) -> list[str]:
    """The exception type of each "Exception ignored" report in ``stderr``."""
    names: list[str] = []
    for report in stderr.split("Exception ignored")[1:]:
        lines = [line for line in report.splitlines()[1:] if line and not line[0].isspace()]
        exception = next((line for line in lines if not line.startswith("Traceback")), "?")
        names.append(exception.split(":")[0])
    return names


def _delegates_loss(plan: Plan) -> bool:
    """A delegate span processor loses spans by its own rules when its exporter fails.

    The SDK's ``BatchSpanProcessor`` drops a batch whose export failed, and what it
    still holds when its shutdown runs out of time (its export lock held, with
    ``hold_locks``), logging no span ids. The processor handed it every span once
    (``run`` checks none arrived twice).
    """
    failing = plan.hang_shutdown or any(fault != "ok" for fault in plan.exports)
    return plan.delegate == "batch" and (failing or plan.hold_locks)


def describe(plan: Plan) -> str:
    """The faults of a plan, in one line."""
    signals = ", ".join(
        f"{signal.Signals(step.signum).name}@{step.after}+{step.delay}s" for step in plan.steps
    )
    return (
        f"exports={list(plan.exports)} hang_shutdown={plan.hang_shutdown} finish={plan.finish} "
        f"signals=[{signals}] journal={'locked' if plan.lock_journal else ''}"
        f"{'removed' if plan.remove_journal else ''}{'on' if plan.journal else 'off'} "
        f"setup={plan.setup} delegate={plan.delegate} app_handler={plan.app_handler} "
        f"hold_locks={plan.hold_locks} threads={plan.threads} fork={plan.fork}"
    )


def run_seed(seed: int, directory: Path) -> tuple[Plan, list[str]]:
    """Run the plan of ``seed`` against a receiver of its own; its plan and violations."""
    plan = random_plan(seed, directory / f"journal-{seed}.sqlite")
    receiver = OtlpReceiver().start()
    try:
        outcome = run(plan, receiver, allowed=4 * plan.shutdown_timeout + 10)
    except AssertionError as error:
        return plan, [str(error).splitlines()[0]]
    finally:
        receiver.stop()
    return plan, violations(plan, outcome)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.process.faults SEED`` or ``--seeds FIRST:LAST [--jobs N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", nargs="?", type=int, help="run one seed and print its outcome")
    parser.add_argument("--seeds", help="FIRST:LAST, a range of seeds to sweep")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    arguments = parser.parse_args(argv)
    if arguments.seed is None and arguments.seeds is None:
        parser.error("give a SEED or --seeds FIRST:LAST")
    first, last = (
        (arguments.seed, arguments.seed + 1)
        if arguments.seed is not None
        else tuple(int(part) for part in arguments.seeds.split(":"))
    )
    failed = faults = 0
    with tempfile.TemporaryDirectory() as directory, ThreadPoolExecutor(arguments.jobs) as pool:
        runs = pool.map(lambda seed: (seed, *run_seed(seed, Path(directory))), range(first, last))
        for seed, plan, found in runs:
            faults += len(plan.steps) + sum(fault != "ok" for fault in plan.exports)
            if found or arguments.seed is not None:
                print(f"seed {seed}: {describe(plan)}")
                for violation in found[:SHOWN]:
                    print(f"  {violation}")
                if len(found) > SHOWN:
                    print(f"  ... {len(found) - SHOWN} more")
            failed += bool(found)
    print(f"{last - first} runs, {faults} signals and exporter faults, {failed} with violations")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
