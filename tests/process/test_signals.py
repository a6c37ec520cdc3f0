"""Signals and fork under pressure: real subprocesses caught mid-work, counted by span id.

The tests run ``tests/apps/signal_app.py`` against the embedded OTLP receiver,
send real signals at awkward moments (a span's lock held, a stream of
``set_attribute``, a drain window) or fork, and count what arrived by span id.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from tests._paths import APPS, ROOT
from tests.receiver import OtlpReceiver, ReceivedSpan

APP = APPS / "signal_app.py"
STARTUP = 30.0
"""Seconds the app may take to import and open its spans."""
BUDGET = 5.0
"""The app's ``shutdown_timeout``."""

SIGTERMED = ("ERROR", "SIGTERM", "signal")
SHUT_DOWN = ("ERROR", "shutdown", "shutdown")
UNTOUCHED = ("UNSET", None, None)
ENDED_OK = ("OK", None, None)


@dataclass
class Outcome:
    returncode: int
    elapsed: float
    """Seconds from the signal (or the start, without one) to the exit."""
    stdout: str
    stderr: str
    spans: dict[str, ReceivedSpan]


def run_app(
    scenario: str,
    receiver: OtlpReceiver,
    *,
    transport: str = "grpc",
    send: signal.Signals | None = None,
    budget: float = BUDGET,
    allowed: float = BUDGET + 3,
) -> Outcome:
    """Run the app; with ``send``, signal it once it is ready. The child is always reaped.

    Fails if the app does not exit within ``allowed`` seconds of the signal (it is
    killed then), if nothing arrived before the signal is not true, or if any span
    id or name arrived more than once.
    """
    endpoint = receiver.grpc_endpoint if transport == "grpc" else receiver.http_endpoint
    process = subprocess.Popen(
        [sys.executable, str(APP), scenario, transport, endpoint, str(budget)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing is exported before the signal
        },
    )
    try:
        started = time.monotonic()
        if send is not None:
            assert process.stdout is not None
            readable, _, _ = select.select([process.stdout], [], [], STARTUP)
            ready = process.stdout.readline() if readable else ""
            if ready != "ready\n":
                process.kill()
                pytest.fail(f"the app did not get ready: {ready!r}\n{process.communicate()[1]}")
            assert receiver.spans() == (), "spans were exported before the signal"
            started = time.monotonic()
            process.send_signal(send)
        try:
            stdout, stderr = process.communicate(timeout=allowed)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(
                f"{scenario}: still running {allowed}s after {send!r}; killed. "
                f"Received {sorted(Counter(span.name for span in receiver.spans()).items())}"
                f"\n{stderr}"
            )
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    spans = receiver.spans()
    by_id = Counter(span.span_id for span in spans)
    assert [span_id for span_id, count in by_id.items() if count > 1] == [], stderr
    names = Counter(span.name for span in spans)
    assert [name for name, count in names.items() if count > 1] == [], stderr
    return Outcome(process.returncode, elapsed, stdout, stderr, {span.name: span for span in spans})


def reason(span: ReceivedSpan) -> tuple[str, object, object]:
    return (
        span.status_code,
        span.attributes.get("error.type"),
        span.attributes.get("otel_lifecycle.finalized_by"),
    )


def reasons(outcome: Outcome) -> dict[str, tuple[str, object, object]]:
    return {name: reason(span) for name, span in outcome.spans.items()}


# 1. SIGTERM while the main thread holds a span's own lock.

HELD_OPEN = {
    "ended.0": ENDED_OK,
    "ended.1": UNTOUCHED,
    "ended.2": ENDED_OK,
    "ended.3": UNTOUCHED,
    "ended.4": ENDED_OK,
    "open.root": SIGTERMED,
    "open.child": SIGTERMED,
    "open.thread.0": SIGTERMED,
    "open.thread.1": SIGTERMED,
}


@pytest.mark.parametrize("variant", ["hold-lock", "hold-lock-setting", "hold-lock-event"])
def test_sigterm_while_the_main_thread_holds_an_open_spans_lock(
    receiver: OtlpReceiver, variant: str
) -> None:
    """All 10 spans arrive once, the held one as a stamped SIGTERM copy; dies by SIGTERM in time."""
    outcome = run_app(variant, receiver, send=signal.SIGTERM)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert outcome.elapsed < BUDGET + 3
    assert reasons(outcome) == {**HELD_OPEN, "held": SIGTERMED}, outcome.stderr
    held = outcome.spans["held"]
    assert held.status_message == "span not ended before the process received SIGTERM"
    assert held.attributes["step"] == "generate"
    assert held.parent_span_id == outcome.spans["open.root"].span_id
    assert held.end_time_unix_nano >= held.start_time_unix_nano
    for number in range(5):
        assert outcome.spans[f"ended.{number}"].attributes["number"] == number


def test_sigterm_while_the_main_thread_is_inside_a_spans_end(receiver: OtlpReceiver) -> None:
    """A span whose end() was interrupted after its end time was set arrives once, as ended."""
    outcome = run_app("hold-lock-ending", receiver, send=signal.SIGTERM)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert outcome.elapsed < BUDGET + 3
    assert reasons(outcome) == {**HELD_OPEN, "held": UNTOUCHED}, outcome.stderr
    assert outcome.spans["held"].status_message == ""
    assert outcome.spans["held"].attributes["step"] == "generate"


# 2 and 3. A streaming app interrupted at a random instruction.

STREAM_DONE = {f"done.{number}": UNTOUCHED for number in range(400)}


@pytest.mark.parametrize("attempt", range(3))
def test_sigterm_interrupting_a_stream_of_set_attribute(
    receiver: OtlpReceiver, attempt: int
) -> None:
    """403 of 403 roots arrive once (400 as ended, 3 SIGTERM), and both children, in time."""
    outcome = run_app("stream", receiver, send=signal.SIGTERM)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert outcome.elapsed < BUDGET + 3
    assert reasons(outcome) == {
        **STREAM_DONE,
        "blocked.0": SIGTERMED,
        "blocked.1": SIGTERMED,
        "inflight.root": SIGTERMED,
        "inflight.done": UNTOUCHED,
        "inflight.stream": SIGTERMED,
    }
    roots = [span for span in outcome.spans.values() if span.parent_span_id is None]
    assert len(roots) == 403
    stream = outcome.spans["inflight.stream"]
    assert stream.parent_span_id == outcome.spans["inflight.root"].span_id
    assert isinstance(stream.attributes["gen_ai.usage.output_tokens"], int)


def test_sigterm_between_the_sdks_delete_and_write_of_an_attribute_keeps_the_attribute(
    receiver: OtlpReceiver,
) -> None:
    """The copy of a span whose lock the dying thread holds has the value it was writing."""
    outcome = run_app("interrupted-set", receiver)
    assert outcome.returncode == -signal.SIGTERM, outcome.stderr
    assert reasons(outcome) == {"interrupted.root": SIGTERMED}
    assert outcome.spans["interrupted.root"].attributes["gen_ai.usage.output_tokens"] == 2


def test_sigint_interrupting_a_stream_unwinds_and_exits_without_a_stall(
    receiver: OtlpReceiver,
) -> None:
    """KeyboardInterrupt ends the streamed child and its root once each; blocked roots at exit."""
    budget = 10.0
    outcome = run_app("stream", receiver, send=signal.SIGINT, budget=budget, allowed=budget + 3)
    assert outcome.returncode == -signal.SIGINT, outcome.stderr
    assert "KeyboardInterrupt" in outcome.stderr
    assert outcome.elapsed < budget / 2, "the exit waited for the shutdown budget"
    unwound = ("ERROR", "KeyboardInterrupt", None)
    at_exit = ("ERROR", "KeyboardInterrupt", "signal")
    assert reasons(outcome) == {
        **STREAM_DONE,
        "blocked.0": at_exit,
        "blocked.1": at_exit,
        "inflight.root": unwound,
        "inflight.done": UNTOUCHED,
        "inflight.stream": unwound,
    }


# 4. Fork.


def test_a_span_ended_in_a_forked_child_is_exported_once_by_the_child(
    receiver: OtlpReceiver,
) -> None:
    """The child exports the span it ended; the parent finalizes only the rest, the child none."""
    outcome = run_app("fork", receiver, transport="http", allowed=30)
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout == "child exit=0\n", outcome.stderr
    assert reasons(outcome) == {
        "parent.handoff": ENDED_OK,
        "parent.root": SHUT_DOWN,
        "parent.kept": SHUT_DOWN,
        "child.done": UNTOUCHED,
        "child.open": SHUT_DOWN,
    }
    assert outcome.spans["parent.handoff"].attributes["ended_by"] == "child"
    root_id = outcome.spans["parent.root"].span_id
    assert {
        span.parent_span_id for name, span in outcome.spans.items() if name != "parent.root"
    } == {root_id}


# The drain window: SIGTERM to an app that handles it gracefully.


def test_sigterm_to_a_draining_app_finalizes_only_what_is_open_when_the_window_ends(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span ended during the drain is exported as ended; one still open then, as SIGTERM."""
    monkeypatch.setenv("OTEL_LIFECYCLE_DRAIN_TIMEOUT", "1")
    outcome = run_app("drain", receiver, send=signal.SIGTERM)
    assert outcome.returncode == 0, outcome.stderr
    assert reasons(outcome) == {
        "drain.quick": ENDED_OK,
        "drain.slow": SIGTERMED,
    }
    assert 1 <= outcome.elapsed < BUDGET + 3


def test_a_zero_drain_finalizes_at_once_and_chains_to_the_apps_handler(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no drain window, both spans are finalized in the handler, before the app goes on."""
    monkeypatch.setenv("OTEL_LIFECYCLE_DRAIN_TIMEOUT", "0")
    outcome = run_app("drain", receiver, send=signal.SIGTERM)
    assert outcome.returncode == 0, outcome.stderr
    assert reasons(outcome) == {"drain.quick": SIGTERMED, "drain.slow": SIGTERMED}
