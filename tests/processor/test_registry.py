"""The registry of open spans under pressure in-process: after shutdown, late ids, races.

The signal and fork scenarios, in subprocesses, are in ``tests/process/test_signals.py``.
"""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from opentelemetry import trace
from opentelemetry.context import get_current
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._core.conversation import TRACE_MEMORY, Conversations
from tests.conftest import Harness

MakeHarness = Callable[..., Harness]


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


# 1. After shutdown.


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


# 2. Conversation ids after a root timeout, and their bounded memory.


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


def test_the_processor_remembers_at_most_trace_memory_conversations() -> None:
    """After TRACE_MEMORY + 10 traces a late span of the oldest gets no id, of the newest its id."""
    processor = LifecycleSpanProcessor(SpanProcessor(), on_flush="none")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests")
    contexts = []
    most = 0
    conversations = processor._conversations
    assert isinstance(conversations, Conversations)
    try:
        for number in range(TRACE_MEMORY + 10):
            root = tracer.start_span("root", attributes={"session.id": f"c{number}"})
            root.end()
            contexts.append(root.get_span_context())
            most = max(most, conversations.remembered())
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


# 3. The application ends a span while the processor finalizes it.

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
