"""LifecycleSpanProcessor as a drop-in wrapper: what a delegate span processor or exporter sees."""

from __future__ import annotations

import gc
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._core.export import ExportStage


class RecordingProcessor(SpanProcessor):
    """Records every call: (method, thread ident, span name or args)."""

    def __init__(self, flush_result: bool | None = True) -> None:
        self.calls: list[tuple[str, int, object]] = []
        self.ended: list[ReadableSpan] = []
        self.flush_result = flush_result
        self.flushes: list[tuple[int, tuple[Any, ...], dict[str, Any]]] = []
        """(thread ident, args, kwargs) of each force_flush call."""

    def _record(self, method: str, detail: object) -> None:
        self.calls.append((method, threading.get_ident(), detail))

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._record("on_start", span.name)

    def _on_ending(self, span: Span) -> None:
        self._record("_on_ending", span)

    def on_end(self, span: ReadableSpan) -> None:
        self._record("on_end", span.name)
        self.ended.append(span)

    def shutdown(self) -> None:
        self._record("shutdown", None)

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        self._record("force_flush", None)
        self.flushes.append((threading.get_ident(), args, kwargs))
        return self.flush_result  # type: ignore[return-value]

    def named(self, method: str) -> list[tuple[str, int, object]]:
        return [call for call in self.calls if call[0] == method]


class _NoOnEnding:
    """A descriptor that makes ``_on_ending`` absent, as on a processor written before SDK 1.40."""

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        raise AttributeError("_on_ending")


class ProcessorWithoutOnEnding(RecordingProcessor):
    _on_ending = _NoOnEnding()


class RecordingExporter(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


class SequentialIds(IdGenerator):
    """Ids 1, 2, 3, ...: two providers running the same workload get the same ids."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._ids)

    def generate_trace_id(self) -> int:
        return next(self._ids)


def wrapped(
    delegate: SpanProcessor, **options: Any
) -> tuple[LifecycleSpanProcessor, TracerProvider]:
    processor = LifecycleSpanProcessor(delegate, **options)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return processor, provider


def test_on_ending_is_forwarded_to_a_delegate_that_has_it() -> None:
    """The SDK's ``_on_ending`` reaches the delegate with the live span, before on_end."""
    delegate = RecordingProcessor()
    processor, provider = wrapped(delegate)
    span = provider.get_tracer("t").start_span("work")
    span.end()

    assert [call[0] for call in delegate.calls] == ["on_start", "_on_ending", "on_end"]
    assert delegate.named("_on_ending")[0][2] is span
    assert processor.stats().internal_errors == 0
    provider.shutdown()


def test_a_delegate_without_on_ending_does_not_make_the_wrapper_raise() -> None:
    """A delegate lacking ``_on_ending`` makes the wrapper raise nothing, even in strict mode."""
    delegate = ProcessorWithoutOnEnding()
    assert not hasattr(delegate, "_on_ending")
    processor, provider = wrapped(delegate)
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root")
    tracer.start_span("child", context=trace.set_span_in_context(root)).end()
    root.end()
    tracer.start_span("open")
    provider.shutdown()

    assert [call[0] for call in delegate.calls] == [
        "on_start",
        "on_start",
        "on_end",
        "on_end",
        "on_start",
        "on_end",
        "shutdown",
    ]
    assert [span.name for span in delegate.ended] == ["child", "root", "open"]
    assert processor.stats().internal_errors == 0


def test_force_flush_calls_the_delegate_on_a_bounded_thread_with_the_budget() -> None:
    """force_flush calls the delegate with the budget left, positionally, and waits that long."""
    delegate = RecordingProcessor()
    processor, provider = wrapped(delegate)

    assert processor.force_flush(1500) is True

    ((thread, args, kwargs),) = delegate.flushes
    assert thread != threading.get_ident()
    assert kwargs == {}
    assert len(args) == 1
    assert isinstance(args[0], int)
    assert 0 < args[0] <= 1500
    provider.shutdown()


@pytest.mark.parametrize(("returned", "flushed"), [(None, True), (True, True), (False, False)])
def test_force_flush_result_follows_the_delegate(returned: bool | None, flushed: bool) -> None:
    """A delegate's force_flush returning None counts as flushed, False as not flushed."""
    processor, provider = wrapped(RecordingProcessor(flush_result=returned))
    assert processor.force_flush(1000) is flushed
    provider.shutdown()


def test_repeated_flushes_leave_no_threads_behind() -> None:
    """Twenty flushes run on the thread reserved when the processor was made, one by one."""
    delegate = RecordingProcessor()
    processor, provider = wrapped(delegate)
    before = set(threading.enumerate())

    results = [processor.force_flush(500) for _ in range(20)]

    assert results == [True] * 20
    assert set(threading.enumerate()) == before
    (thread,) = {call[1] for call in delegate.named("force_flush")}
    assert thread in {known.ident for known in before} - {threading.get_ident()}
    assert len(delegate.named("force_flush")) == 20
    provider.shutdown()


class HangingFlush(RecordingProcessor):
    """A delegate whose ``force_flush`` hangs, as the SDK's batch processor's does when its
    exporter hangs (it ignores the timeout it is given)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.release.wait()
        return True


def test_a_delegate_whose_flush_hangs_keeps_the_caller_no_longer_than_its_timeout() -> None:
    delegate = HangingFlush()
    processor, provider = wrapped(delegate)
    try:
        started = time.monotonic()
        assert processor.force_flush(200) is False
        assert time.monotonic() - started < 5  # the budget, not the hang
    finally:
        delegate.release.set()
    provider.shutdown()


def test_delegate_is_shut_down_exactly_once() -> None:
    """Three shutdown() calls and the provider's shutdown reach the delegate once, last."""
    delegate = RecordingProcessor()
    processor, provider = wrapped(delegate)
    provider.get_tracer("t").start_span("open")

    processor.shutdown()
    processor.shutdown()
    processor.shutdown()
    provider.shutdown()

    assert [call[0] for call in delegate.calls] == ["on_start", "_on_ending", "on_end", "shutdown"]
    assert dict(processor.stats().finalized) == {"shutdown": 1}


def drop_and_collect(make: Callable[[], tuple[object, ...]]) -> list[weakref.ref[Any]]:
    """Weak references to what ``make`` returns, after it went out of scope and gc ran."""
    references = [weakref.ref(item) for item in make()]
    gc.collect()
    return references


def test_processor_and_delegate_processor_are_collected_after_shutdown() -> None:
    """After shutdown, the processor, its delegate processor and the provider are collected."""

    def make() -> tuple[object, ...]:
        delegate = RecordingProcessor()
        processor, provider = wrapped(delegate)
        tracer = provider.get_tracer("t")
        tracer.start_span("done").end()
        tracer.start_span("open")
        provider.shutdown()
        assert len(delegate.ended) == 2
        return processor, delegate, provider

    assert [reference() for reference in drop_and_collect(make)] == [None, None, None]


def test_processor_and_exporter_are_collected_after_shutdown() -> None:
    """After shutdown, the processor and its exporter are collected: the worker holds neither."""

    def make() -> tuple[object, ...]:
        exporter = RecordingExporter()
        processor = LifecycleSpanProcessor(exporter)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("t")
        tracer.start_span("done").end()
        tracer.start_span("open")
        assert isinstance(processor._path, ExportStage)
        worker = processor._path._worker
        provider.shutdown()
        worker.join(5)
        assert not worker.is_alive(), "the export worker outlived shutdown"
        assert len(exporter.spans) == 2
        return processor, exporter, provider

    assert [reference() for reference in drop_and_collect(make)] == [None, None, None]


def workload(provider: TracerProvider) -> None:
    """Spans of every shape, all ended by the application, in one thread."""
    tracer = provider.get_tracer("scope", "1.2")
    root = tracer.start_span(
        "agent.run", kind=SpanKind.SERVER, attributes={"input.value": "hi", "n": 1}
    )
    context = trace.set_span_in_context(root)
    llm = tracer.start_span("llm.call", context=context, kind=SpanKind.CLIENT)
    llm.add_event("prompt", {"tokens": 12})
    llm.set_attribute("model", "m")
    llm.set_status(Status(StatusCode.ERROR, "rate limited"))
    tool = tracer.start_span(
        "tool.search", context=trace.set_span_in_context(llm), links=[Link(root.get_span_context())]
    )
    tool.record_exception(ValueError("no hits"))
    tool.end()
    llm.end()
    tracer.start_span("quick", context=context, attributes={"ok": True}).end()
    root.set_status(Status(StatusCode.OK))
    root.set_attribute("output.value", "bye")
    root.end()
    tracer.start_span("second.root").end()


def summary(span: ReadableSpan) -> tuple[object, ...]:
    """Everything about an ended span except its timestamps."""
    return (
        span.name,
        span.context.trace_id,
        span.context.span_id,
        span.parent.span_id if span.parent else None,
        span.kind,
        dict(span.attributes or {}),
        span.status.status_code,
        span.status.description,
        [(event.name, dict(event.attributes or {})) for event in span.events],
        [(link.context.span_id, dict(link.attributes or {})) for link in span.links],
        span.instrumentation_scope,
        dict(span.resource.attributes),
    )


def test_ended_spans_reach_the_delegate_as_without_the_wrapper() -> None:
    """Spans the application ends reach the delegate in the same order and content as unwrapped."""
    alone = RecordingProcessor()
    plain = TracerProvider(shutdown_on_exit=False, id_generator=SequentialIds())
    plain.add_span_processor(alone)
    workload(plain)
    plain.shutdown()

    delegate = RecordingProcessor()
    processor = LifecycleSpanProcessor(delegate)
    provider = TracerProvider(shutdown_on_exit=False, id_generator=SequentialIds())
    provider.add_span_processor(processor)
    workload(provider)
    provider.shutdown()

    assert [span.name for span in alone.ended] == [
        "tool.search",
        "llm.call",
        "quick",
        "agent.run",
        "second.root",
    ]
    assert [summary(span) for span in delegate.ended] == [summary(span) for span in alone.ended]
    methods = [call[0] for call in delegate.calls]
    assert methods == [call[0] for call in alone.calls]
    assert dict(processor.stats().finalized) == {}
