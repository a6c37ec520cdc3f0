"""The registry of open spans under pressure: signals, fork, late spans, races, late ids.

Subprocess tests run ``tests/apps/signal_app.py`` against the embedded OTLP
receiver, send real signals, and count what arrived by span id.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, cast

import pytest
from opentelemetry import trace
from opentelemetry.context import get_current
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._cli.receiver import OtlpReceiver, ReceivedSpan
from otel_lifecycle._core.conversation import TRACE_MEMORY, Conversations
from tests.conftest import Harness

MakeHarness = Callable[..., Harness]

APP = Path(__file__).parent / "apps" / "signal_app.py"
ROOT = Path(__file__).parent.parent
STARTUP = 30.0
"""Seconds the app may take to import and open its spans."""
BUDGET = 5.0
"""The app's ``shutdown_timeout``."""

SIGTERMED = ("ERROR", "SIGTERM", "signal")
SHUT_DOWN = ("ERROR", "shutdown", "shutdown")
UNTOUCHED = ("UNSET", None, None)
ENDED_OK = ("OK", None, None)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


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


def wired(delegate: str) -> tuple[LifecycleSpanProcessor, InMemorySpanExporter, Tracer]:
    """A processor over an in-memory exporter (directly, or through a span processor)."""
    exporter = InMemorySpanExporter()
    processor = LifecycleSpanProcessor(
        SimpleSpanProcessor(exporter) if delegate == "processor" else exporter,
        on_flush="none",
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return processor, exporter, provider.get_tracer("tests")


# 5. After shutdown.


@pytest.mark.parametrize("delegate", ["processor", "exporter"])
def test_spans_started_after_shutdown_are_neither_tracked_nor_kept(delegate: str) -> None:
    """After shutdown() new spans are only counted: nothing open, nothing keeps them alive."""
    processor, exporter, tracer = wired(delegate)
    processor.shutdown()
    late = [
        tracer.start_span(f"late.{number}", attributes={"session.id": f"s{number}"})
        for number in range(25)
    ]
    late.append(tracer.start_span("late.child", context=trace.set_span_in_context(late[0])))
    stats = processor.stats()
    assert (stats.open_traces, stats.open_spans) == (0, 0)
    assert stats.started_after_shutdown == 26
    references = [weakref.ref(span) for span in late]
    del late
    gc.collect()
    assert [reference for reference in references if reference() is not None] == []
    assert exporter.get_finished_spans() == ()


# 6. Conversation ids after a root timeout, and their bounded memory.


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_spans_started_after_the_root_timed_out_still_get_its_conversation_id(
    make_harness: MakeHarness,
) -> None:
    """Two spans started, from a bare thread, in a trace whose root timed out get the root's id."""
    clock = FakeClock()
    harness = make_harness(root_timeout=10, clock=clock, on_flush="none")
    root = harness.tracer.start_span("agent.run", attributes={"gen_ai.conversation.id": "conv-42"})
    clock.now += 10
    assert harness.processor.force_flush()
    finalized = harness.exported()["agent.run"]
    assert finalized.status.status_code is StatusCode.ERROR
    assert dict(finalized.attributes or {}) == {
        "gen_ai.conversation.id": "conv-42",
        "error.type": "timeout",
        "otel_lifecycle.finalized_by": "timeout",
    }
    assert not root.is_recording()
    root_context = root.get_span_context()
    seen: list[object] = []

    def late_work() -> None:
        seen.append(trace.get_current_span(get_current()))
        harness.tracer.start_span("unscoped").end()
        parent = trace.set_span_in_context(trace.NonRecordingSpan(root_context))
        tool = harness.tracer.start_span("late.tool", context=parent)
        harness.tracer.start_span("late.llm", context=trace.set_span_in_context(tool)).end()
        tool.end()

    worker = threading.Thread(target=late_work)
    worker.start()
    worker.join()
    assert seen == [trace.INVALID_SPAN]
    exported = harness.exported()
    assert "gen_ai.conversation.id" not in (exported["unscoped"].attributes or {})
    for name in ("late.tool", "late.llm"):
        span = exported[name]
        assert span.context is not None
        assert span.context.trace_id == root_context.trace_id
        assert (span.attributes or {}).get("gen_ai.conversation.id") == "conv-42", name
        assert span.status.status_code is StatusCode.UNSET
    assert dict(harness.processor.stats().finalized) == {"timeout": 1}


def test_the_conversation_memory_forgets_the_oldest_trace_first() -> None:
    """A memory of 8 holds the 8 newest traces' ids, never more, after 18 traces."""
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("tests")
    conversations = Conversations(("gen_ai.conversation.id",), None, "none", memory=8)
    trace_ids: list[int] = []
    for number in range(18):
        span = tracer.start_span("root", attributes={"gen_ai.conversation.id": f"c{number}"})
        trace_id = span.get_span_context().trace_id
        conversations.on_start(span, trace_id, None)  # type: ignore[arg-type]
        span.end()
        trace_ids.append(trace_id)
        assert conversations.remembered() == min(number + 1, 8)
    assert [conversations.of_trace(trace_id) for trace_id in trace_ids] == [None] * 10 + [
        f"c{number}" for number in range(10, 18)
    ]


def test_the_processor_remembers_at_most_trace_memory_conversations() -> None:
    """After TRACE_MEMORY + 10 traces a late span of the oldest gets no id, of the newest its id."""
    processor = LifecycleSpanProcessor(SpanProcessor(), on_flush="none")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests")
    contexts = []
    most = 0
    try:
        for number in range(TRACE_MEMORY + 10):
            root = tracer.start_span("root", attributes={"session.id": f"c{number}"})
            root.end()
            contexts.append(root.get_span_context())
            most = max(most, processor._conversations.remembered())
        assert most == TRACE_MEMORY
        late = {
            index: cast(
                ReadableSpan,
                tracer.start_span(
                    "late",
                    context=trace.set_span_in_context(trace.NonRecordingSpan(contexts[index])),
                ),
            )
            for index in (0, 9, 10, -1)
        }
        ids = {
            index: (span.attributes or {}).get("gen_ai.conversation.id")
            for index, span in late.items()
        }
        assert ids == {
            0: None,
            9: None,
            10: "c10",
            -1: f"c{TRACE_MEMORY + 9}",
        }
        for span in late.values():
            cast(trace.Span, span).end()
    finally:
        provider.shutdown()


# 7. The application ends a span while the processor finalizes it.

RACES = 200
APP_DURATION = 3600 * 10**9
"""The app ends its spans one hour after their start: an end time no finalizer produces."""


def app_ends(span: trace.Span) -> None:
    span.set_attribute("ended_by", "app")
    span.set_status(Status(StatusCode.OK))
    span.end(end_time=span.start_time + APP_DURATION)  # type: ignore[attr-defined]


def finalizer_won(span: ReadableSpan) -> bool:
    assert span.start_time is not None
    return span.end_time != span.start_time + APP_DURATION


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Switch threads as often as possible, so the racing calls interleave finely."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_switches")
@pytest.mark.parametrize("delegate", ["processor", "exporter"])
def test_the_app_ending_a_span_while_the_processor_finalizes_it(delegate: str) -> None:
    """Each of 200 raced spans is exported once, wholly as the app ended it or wholly stamped."""
    processor, exporter, tracer = wired(delegate)
    go = threading.Barrier(3, timeout=30)
    done = threading.Barrier(3, timeout=30)
    current: list[trace.Span] = []
    finalized_per_call: list[int] = []

    def application() -> None:
        for _ in range(RACES):
            go.wait()
            app_ends(current[-1])
            done.wait()

    def finalizer() -> None:
        for _ in range(RACES):
            go.wait()
            finalized_per_call.append(processor.finalize_open_spans("shutdown"))
            done.wait()

    threads = [threading.Thread(target=application), threading.Thread(target=finalizer)]
    for thread in threads:
        thread.start()
    started: Counter[int] = Counter()
    try:
        for number in range(RACES):
            current.append(tracer.start_span(f"race.{number}"))
            started[current[-1].get_span_context().span_id] += 1
            go.wait()
            done.wait()
    finally:
        for thread in threads:
            thread.join()
    assert processor.force_flush()
    spans = exporter.get_finished_spans()
    assert Counter(span.context.span_id for span in spans if span.context) == started

    stamped = 0
    for span in spans:
        attributes = dict(span.attributes or {})
        if finalizer_won(span):
            stamped += 1
            # The app may have set its attribute before the finalizer ended the span;
            # its OK status, set on the open span too, must not survive the stamp.
            attributes.pop("ended_by", None)
            assert (span.status.status_code, attributes) == (
                StatusCode.ERROR,
                {"error.type": "shutdown", "otel_lifecycle.finalized_by": "shutdown"},
            ), span.name
            assert span.status.description == "span not ended before tracer provider shutdown"
        else:
            assert (span.status.status_code, attributes) == (
                StatusCode.OK,
                {"ended_by": "app"},
            ), span.name
    stats = processor.stats()
    assert dict(stats.finalized) == ({"shutdown": stamped} if stamped else {})
    assert sum(finalized_per_call) == stamped
    assert (stats.open_traces, stats.open_spans) == (0, 0)
    processor.shutdown()


def test_a_span_the_app_ended_first_is_not_finalized(make_harness: MakeHarness) -> None:
    """Ended by the app, then finalized: exported once as the app ended it, nothing counted."""
    harness = make_harness(on_flush="none")
    span = harness.tracer.start_span("race")
    app_ends(span)
    assert harness.processor.finalize_open_spans("shutdown") == 0
    (exported,) = harness.exporter.get_finished_spans()
    assert not finalizer_won(exported)
    assert exported.status.status_code is StatusCode.OK
    assert dict(exported.attributes or {}) == {"ended_by": "app"}
    assert dict(harness.processor.stats().finalized) == {}


def finalize_paused_before_end(
    processor: LifecycleSpanProcessor, span: trace.Span
) -> Callable[[], int]:
    """Run ``finalize_open_spans`` in a thread that pauses when it calls the span's ``end()``.

    Returns a function that lets the finalizer go on and returns its count. The
    pause is an instance attribute shadowing ``Span.end``; the application calls
    the class's ``end`` to bypass it.
    """
    at_end = threading.Event()
    go_on = threading.Event()
    counts: list[int] = []
    original_end = span.end

    def paused_end(end_time: int | None = None) -> None:
        at_end.set()
        assert go_on.wait(10)
        original_end(end_time)

    span.end = paused_end  # type: ignore[method-assign]
    finalizer = threading.Thread(
        target=lambda: counts.append(processor.finalize_open_spans("shutdown"))
    )
    finalizer.start()
    assert at_end.wait(10), "the finalizer never called end()"

    def resume() -> int:
        go_on.set()
        finalizer.join(10)
        assert not finalizer.is_alive()
        (count,) = counts
        return count

    return resume


def test_the_app_sets_its_status_and_ends_just_before_the_finalizers_end(
    make_harness: MakeHarness,
) -> None:
    """The app's end() wins after the finalizer decided to end: exported as the app ended it."""
    harness = make_harness(on_flush="none")
    span = harness.tracer.start_span("race")
    resume = finalize_paused_before_end(harness.processor, span)
    span.set_attribute("ended_by", "app")
    span.set_status(Status(StatusCode.OK))
    type(span).end(span, end_time=span.start_time + APP_DURATION)  # type: ignore[attr-defined]
    assert resume() == 0
    (exported,) = harness.exporter.get_finished_spans()
    assert not finalizer_won(exported)
    assert (exported.status.status_code, dict(exported.attributes or {})) == (
        StatusCode.OK,
        {"ended_by": "app"},
    )
    assert dict(harness.processor.stats().finalized) == {}


def test_the_app_sets_ok_just_before_the_finalizers_end_wins(make_harness: MakeHarness) -> None:
    """The finalizer's end() wins after the app set OK: exported stamped ERROR, not OK."""
    harness = make_harness(on_flush="none")
    span = harness.tracer.start_span("race")
    resume = finalize_paused_before_end(harness.processor, span)
    span.set_status(Status(StatusCode.OK))
    assert resume() == 1
    (exported,) = harness.exporter.get_finished_spans()
    assert finalizer_won(exported)
    assert (exported.status.status_code, dict(exported.attributes or {})) == (
        StatusCode.ERROR,
        {"error.type": "shutdown", "otel_lifecycle.finalized_by": "shutdown"},
    )
    assert dict(harness.processor.stats().finalized) == {"shutdown": 1}


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
