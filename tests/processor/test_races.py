"""Exactly once under races: a finalizer against the application, the drain, the exit hook and
a dying SIGTERM, each interleaving pinned with events and checked by span id."""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_lifecycle import LifecycleSpanProcessor, conversation
from otel_lifecycle._core.finalize import SIGINT, SIGTERM, unhandled
from tests.processor._pins import pin

SHUTDOWN_DESCRIPTION = "span not ended before tracer provider shutdown"
EXPLORED_SCHEDULES = 300
SEED = 8
ENDING_THREADS = 3


def provider_with(*processors: SpanProcessor) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def started_root(
    delegate: SpanExporter | SpanProcessor, name: str = "root"
) -> tuple[LifecycleSpanProcessor, TracerProvider, trace.Span]:
    """A processor over ``delegate`` (signals not handled), its own provider, a root started."""
    processor = LifecycleSpanProcessor(delegate, handle_signals=False)
    provider = provider_with(processor)
    return processor, provider, provider.get_tracer("t").start_span(name)


def exported_once(exporter: InMemorySpanExporter, span: trace.Span) -> ReadableSpan:
    """The one span ``exporter`` got with ``span``'s id; fails if it got it 0 or 2+ times."""
    span_id = span.get_span_context().span_id
    found = [s for s in exporter.get_finished_spans() if s.context and s.context.span_id == span_id]
    assert len(found) == 1, f"span exported {len(found)} times"
    return found[0]


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def finalizing(processor: LifecycleSpanProcessor, reason: str = "shutdown") -> threading.Thread:
    """A thread (not started) that finalizes every open span of ``processor``."""
    return threading.Thread(target=processor.finalize_open_spans, args=(reason,))


# A finalizer's claim that loses to the application's end().


class SeesOnEnding(SimpleSpanProcessor):
    """A delegate that records what its ``_on_ending`` hook saw of each span."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        super().__init__(exporter)
        self.on_ending: list[tuple[StatusCode, dict[str, object]]] = []

    def _on_ending(self, span: Span) -> None:
        self.on_ending.append((span.status.status_code, dict(span.attributes or {})))


def test_a_claim_the_applications_end_wins_is_never_seen_by_anyone(
    exporter: InMemorySpanExporter,
) -> None:
    """The application, the delegate's ``_on_ending`` and the other processors see its span."""
    others = InMemorySpanExporter()
    delegate = SeesOnEnding(exporter)
    processor = LifecycleSpanProcessor(delegate, handle_signals=False)
    provider = provider_with(SimpleSpanProcessor(others), processor)
    root = provider.get_tracer("t").start_span("root", attributes={"k": "v"})
    finalizer = finalizing(processor)
    pinned = pin(root, finalizer)
    finalizer.start()
    assert pinned.reached.wait(10)  # the finalizer claimed the open span, before its end()

    seen_by_application = (root.status.status_code, dict(root.attributes or {}))  # type: ignore[attr-defined]
    root.end()
    pinned.go.set()
    finalizer.join()

    assert seen_by_application == (StatusCode.UNSET, {"k": "v"})
    assert delegate.on_ending == [(StatusCode.UNSET, {"k": "v"})]
    for sink in (exporter, others):
        span = exported_once(sink, root)
        assert (span.status.status_code, attributes(span)) == (StatusCode.UNSET, {"k": "v"})
    assert dict(processor.stats().finalized) == {}
    provider.shutdown()


def test_a_claim_that_wins_is_stamped_for_every_processor(exporter: InMemorySpanExporter) -> None:
    others = InMemorySpanExporter()
    delegate = SeesOnEnding(exporter)
    processor = LifecycleSpanProcessor(delegate, handle_signals=False)
    provider = provider_with(SimpleSpanProcessor(others), processor)
    with conversation("conv-2"):
        root = provider.get_tracer("t").start_span("root")

    assert processor.finalize_open_spans("shutdown") == 1

    stamp = {
        "gen_ai.conversation.id": "conv-2",
        "error.type": "shutdown",
        "otel_lifecycle.finalized_by": "shutdown",
    }
    assert delegate.on_ending == [(StatusCode.ERROR, stamp)]
    for sink in (exporter, others):
        span = exported_once(sink, root)
        assert span.status.description == SHUTDOWN_DESCRIPTION
        assert attributes(span) == stamp
    provider.shutdown()


class Wraps(SpanProcessor):
    """A processor that wraps another and forwards all but the SDK's private ``_on_ending``."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.inner.on_end(span)


def test_a_claim_that_wins_without_on_ending_is_exported_stamped(
    exporter: InMemorySpanExporter,
) -> None:
    processor = LifecycleSpanProcessor(SimpleSpanProcessor(exporter), handle_signals=False)
    provider = provider_with(Wraps(processor))
    root = provider.get_tracer("t").start_span("root")
    assert processor.finalize_open_spans("shutdown") == 1
    span = exported_once(exporter, root)
    assert span.status.description == SHUTDOWN_DESCRIPTION
    assert attributes(span) == {"error.type": "shutdown", "otel_lifecycle.finalized_by": "shutdown"}
    provider.shutdown()


@pytest.mark.parametrize("recorded", ["SIGINT", "unhandled exception"])
def test_a_mark_replaced_by_a_claim_stays_when_the_applications_end_wins(
    exporter: InMemorySpanExporter, recorded: str
) -> None:
    """A span open at SIGINT (or an unhandled exception) keeps that reason however it ends."""
    processor, provider, root = started_root(SimpleSpanProcessor(exporter))
    if recorded == "SIGINT":
        processor._mark_open_spans(SIGINT)
        reason = SIGINT
    else:
        error = RuntimeError("boom")
        reason = unhandled(error, whole_process=True)
        processor._record_unhandled(reason, error, None)
    finalizer = finalizing(processor)
    pinned = pin(root, finalizer)
    finalizer.start()
    assert pinned.reached.wait(10)
    root.end()
    pinned.go.set()
    finalizer.join()

    span = exported_once(exporter, root)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == reason.description
    assert attributes(span) == {"error.type": reason.error_type}
    assert dict(processor.stats().finalized) == {}
    provider.shutdown()


# A dying SIGTERM while another thread is ending a span.


class HandOff(SpanProcessor):
    """A delegate whose first ``on_end`` stops inside the hand-off until its shutdown."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []
        self.inside = threading.Event()
        self.release = threading.Event()

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)
        if not self.inside.is_set():
            self.inside.set()
            assert self.release.wait(30)

    def shutdown(self) -> None:
        self.release.set()


def test_a_dying_sigterm_leaves_a_span_another_thread_hands_over_to_that_thread() -> None:
    delegate = HandOff()
    processor = LifecycleSpanProcessor(delegate, handle_signals=False, shutdown_timeout=10)
    provider = provider_with(processor)
    span = provider.get_tracer("t").start_span("handed", attributes={"k": "v"})
    span.set_status(StatusCode.OK)
    ender = threading.Thread(target=span.end)
    ender.start()
    assert delegate.inside.wait(10)  # the other thread is inside on_end, handing the span over

    processor._die_of_signal(SIGTERM)  # the handler's work, in the main thread
    delegate.release.set()
    ender.join()

    span_id = span.get_span_context().span_id
    assert [s.context.span_id for s in delegate.ended if s.context] == [span_id]
    (handed,) = delegate.ended
    assert (handed.status.status_code, attributes(handed)) == (StatusCode.OK, {"k": "v"})


class Records(SpanProcessor):
    """A delegate that records every span handed to it, shut down or not."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class PinnedSent(dict[int, object]):
    """The processor's in-progress marker entries: ``thread`` stops once in its ``pop``.

    A root's ``on_end`` pops its entry after settling the span's pending ending
    and before forgetting the span: that is where ``thread`` is stopped.
    """

    def __init__(self, thread: threading.Thread) -> None:
        super().__init__({0: object()})  # not empty, so on_end looks
        self.thread = thread
        self.reached = threading.Event()
        self.go = threading.Event()

    def pop(self, key: int, default: object = None) -> object:
        if threading.current_thread() is self.thread and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(30)
        return super().pop(key, default)


def test_a_dying_sigterm_takes_a_span_whose_on_end_has_not_forgotten_it_yet() -> None:
    """The other thread's ``on_end`` looked for a pending ending before the handler ran."""
    delegate = Records()
    processor, _, span = started_root(delegate)
    ender = threading.Thread(target=span.end)
    sent = PinnedSent(ender)
    processor._markers.sent = sent
    ender.start()
    assert sent.reached.wait(10)

    processor._die_of_signal(SIGTERM)
    sent.go.set()
    ender.join()

    span_id = span.get_span_context().span_id
    assert [s.context.span_id for s in delegate.ended if s.context] == [span_id]
    assert delegate.ended[0].status.status_code is StatusCode.UNSET


class Stalls(SpanProcessor):
    """A processor added before the lifecycle one, whose ``on_end`` stops until released."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()

    def on_end(self, span: ReadableSpan) -> None:
        self.inside.set()
        assert self.release.wait(30)


def test_a_dying_sigterm_delivers_a_span_whose_end_has_not_reached_the_processor() -> None:
    """The other thread's ``on_end`` comes later and finds the span delivered: once."""
    exporter = InMemorySpanExporter()
    stalls = Stalls()
    processor = LifecycleSpanProcessor(SimpleSpanProcessor(exporter), handle_signals=False)
    provider = provider_with(stalls, processor)
    span = provider.get_tracer("t").start_span("stalled")
    ender = threading.Thread(target=span.end)
    ender.start()
    assert stalls.inside.wait(10)

    processor._die_of_signal(SIGTERM)
    stalls.release.set()
    ender.join()

    assert exported_once(exporter, span).status.status_code is StatusCode.UNSET


class Died(BaseException):
    """The process died of the signal: the interrupted code never goes on."""


class DiesInside(SpanProcessor):
    """A delegate in whose ``_on_ending`` or ``on_end`` the first span's SIGTERM arrives.

    The handler's work runs there, in the thread ending the span, as a signal
    handler would; then that thread stops, as it would in a process that dies.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.processor: LifecycleSpanProcessor | None = None
        self.ended: list[ReadableSpan] = []

    def _on_ending(self, span: Span) -> None:
        if self.where == "_on_ending":
            self._die()

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "on_end":
            self._die()
        self.ended.append(span)

    def _die(self) -> None:
        if self.processor is not None:
            processor, self.processor = self.processor, None
            processor._die_of_signal(SIGTERM)
            raise Died


@pytest.mark.parametrize("where", ["_on_ending", "on_end"])
def test_a_dying_sigterm_exports_the_span_whose_end_it_interrupted_once(where: str) -> None:
    """Before the processor forgot the span, or in its hand-off to the delegate."""
    delegate = DiesInside(where)
    processor = LifecycleSpanProcessor(delegate, handle_signals=False, shutdown_timeout=10)
    delegate.processor = processor
    provider = provider_with(processor)
    span = provider.get_tracer("t").start_span("interrupted", attributes={"k": "v"})
    span.set_status(StatusCode.OK)
    with pytest.raises(Died):
        span.end()

    span_id = span.get_span_context().span_id
    assert [s.context.span_id for s in delegate.ended if s.context] == [span_id]
    (ended,) = delegate.ended
    assert (ended.status.status_code, attributes(ended)) == (StatusCode.OK, {"k": "v"})


def dying_while_threads_end_spans(spins: int) -> Counter[int]:
    """How many times each span arrived when the handler's work ran after ``spins`` loops."""
    exporter = InMemorySpanExporter()
    processor = LifecycleSpanProcessor(
        SimpleSpanProcessor(exporter), handle_signals=False, shutdown_timeout=10
    )
    before = SimpleSpanProcessor(InMemorySpanExporter())  # widens end() before our on_end
    tracer = provider_with(before, processor).get_tracer("t")
    stop = threading.Event()
    start = threading.Barrier(ENDING_THREADS + 1)

    def end_spans() -> None:
        start.wait()
        while not stop.is_set():
            tracer.start_span("s").end()

    threads = [threading.Thread(target=end_spans) for _ in range(ENDING_THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    for _ in range(spins):
        pass
    processor._die_of_signal(SIGTERM)
    stop.set()
    for thread in threads:
        thread.join()
    return Counter(span.context.span_id for span in exporter.get_finished_spans() if span.context)


def test_a_dying_sigterm_among_threads_ending_spans_exports_none_twice() -> None:
    """Seeded schedules: threads end spans while the handler's work runs at a random moment."""
    schedule = random.Random(SEED)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads interleave every few bytecodes
    try:
        for _ in range(EXPLORED_SCHEDULES):
            exported = dying_while_threads_end_spans(schedule.randrange(3000))
            assert [span_id for span_id, times in exported.items() if times > 1] == []
    finally:
        sys.setswitchinterval(switch_interval)


# The drain thread against the exit hook's shutdown().


class Announces(logging.Handler):
    """Sets ``event`` when a record whose message starts with ``prefix`` is logged."""

    def __init__(self, prefix: str, event: threading.Event) -> None:
        super().__init__(logging.DEBUG)
        self.prefix = prefix
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.event.set()


@pytest.fixture
def shutdown_waits() -> Iterator[threading.Event]:
    """Set when a shutdown says it waits for a finalization under way in another thread."""
    event = threading.Event()
    logger = logging.getLogger("otel_lifecycle")
    handler = Announces("otel_lifecycle: shutdown waits for", event)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield event
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_span_the_drain_claimed_is_exported_when_the_exit_hook_shuts_down_meanwhile(
    shutdown_waits: threading.Event,
) -> None:
    exporter = InMemorySpanExporter()
    processor, _, root = started_root(exporter, "slow")
    drain = threading.Thread(target=processor._end_after_drain, args=(SIGTERM,))
    pinned = pin(root, drain)
    drain.start()
    assert pinned.reached.wait(10)  # the drain's finalization claimed the root

    def exit_hook() -> None:
        processor.shutdown()
        waits_or_done.set()

    waits_or_done = shutdown_waits  # also set once the shutdown returned
    closer = threading.Thread(target=exit_hook)
    closer.start()
    assert waits_or_done.wait(30)  # the shutdown waits for the drain, or it is over
    pinned.go.set()
    drain.join()
    closer.join()

    span = exported_once(exporter, root)
    assert attributes(span) == {"error.type": "SIGTERM", "otel_lifecycle.finalized_by": "signal"}
    assert processor.stats().dropped_after_shutdown == 0


def test_after_shutdown_the_drain_finalizes_nothing_and_warns_of_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = InMemorySpanExporter()
    processor, provider, root = started_root(exporter)
    processor.shutdown()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        processor._end_after_drain(SIGTERM)
    assert exported_once(exporter, root).status.description == SHUTDOWN_DESCRIPTION
    assert caplog.records == []
    provider.shutdown()


# A root between its dict entry and its registration.


class PinnedClock:
    """The processor's clock; the first time ``thread`` reads it, it stops there until ``go``."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.reached = threading.Event()
        self.go = threading.Event()

    def __call__(self) -> float:
        if self.thread is threading.current_thread():
            self.thread = None
            self.reached.set()
            assert self.go.wait(30)
        return time.monotonic()


def test_a_root_is_finalized_only_once_it_is_registered_with_its_conversation_id(
    exporter: InMemorySpanExporter,
) -> None:
    clock = PinnedClock()
    processor = LifecycleSpanProcessor(
        SimpleSpanProcessor(exporter), clock=clock, handle_signals=False
    )
    provider = provider_with(processor)
    started: list[trace.Span] = []

    def start() -> None:
        with conversation("conv-6"):
            started.append(provider.get_tracer("t").start_span("root", context=Context()))

    starter = threading.Thread(target=start)
    clock.thread = starter
    starter.start()
    assert clock.reached.wait(10)  # on_start reads the clock to register the root
    finalized_meanwhile = processor.finalize_open_spans("shutdown")
    clock.go.set()
    starter.join()
    finalized_after = processor.finalize_open_spans("shutdown")

    (root,) = started
    span = exported_once(exporter, root)
    assert attributes(span) == {
        "gen_ai.conversation.id": "conv-6",
        "error.type": "shutdown",
        "otel_lifecycle.finalized_by": "shutdown",
    }
    assert (finalized_meanwhile, finalized_after) == (0, 1)
    assert processor._open.roots == {}
    assert (processor.stats().open_traces, processor.stats().open_spans) == (0, 0)
    provider.shutdown()
