"""LifecycleSpanProcessor: tracking, finalization exactly once, shutdown, flush, timeouts."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

from otel_lifecycle import LifecycleSpanProcessor
from tests.conftest import Harness

MakeHarness = Callable[..., Harness]


def child_of(harness: Harness, name: str, parent: trace.Span) -> trace.Span:
    return harness.tracer.start_span(name, context=trace.set_span_in_context(parent))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def assert_finalized(span: ReadableSpan, reason: str, description: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == description
    assert span.attributes is not None
    assert span.attributes["error.type"] == reason
    assert span.attributes["otel_lifecycle.finalized_by"] == reason


def test_spans_that_end_leave_no_state(make_harness: MakeHarness) -> None:
    harness = make_harness()
    root = harness.tracer.start_span("root")
    child = child_of(harness, "child", root)
    assert (harness.processor.stats().open_traces, harness.processor.stats().open_spans) == (1, 2)
    child.end()
    root.end()
    stats = harness.processor.stats()
    assert (stats.open_traces, stats.open_spans) == (0, 0)
    assert dict(stats.finalized) == {}
    assert set(harness.exported()) == {"root", "child"}
    assert harness.exported()["root"].status.status_code is StatusCode.UNSET


def test_non_recording_spans_are_ignored(exporter: InMemorySpanExporter) -> None:
    processor = LifecycleSpanProcessor(SimpleSpanProcessor(exporter))
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("unsampled")
    assert processor.stats().open_spans == 0
    provider.shutdown()
    assert exporter.get_finished_spans() == ()
    assert dict(processor.stats().finalized) == {}


def test_shutdown_finalizes_open_spans_children_first(make_harness: MakeHarness) -> None:
    harness = make_harness()
    root = harness.tracer.start_span("root", attributes={"input.value": "hi"})
    child = child_of(harness, "child", root)
    child_of(harness, "grandchild", child)
    child_of(harness, "done", root).end()

    harness.provider.shutdown()

    spans = harness.exporter.get_finished_spans()
    assert [span.name for span in spans] == ["done", "grandchild", "child", "root"]
    exported = harness.exported()
    for name in ("grandchild", "child", "root"):
        assert_finalized(
            exported[name], "shutdown", "span not ended before tracer provider shutdown"
        )
    assert exported["root"].attributes is not None
    assert exported["root"].attributes["input.value"] == "hi"
    assert exported["done"].status.status_code is StatusCode.UNSET
    assert "error.type" not in (exported["done"].attributes or {})
    stats = harness.processor.stats()
    assert dict(stats.finalized) == {"shutdown": 3}
    assert (stats.open_traces, stats.open_spans) == (0, 0)


def test_application_ending_a_finalized_span_does_not_export_it_again(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness()
    root = harness.tracer.start_span("root")
    assert harness.processor.finalize_open_spans("cancelled") == 1
    root.set_status(StatusCode.OK)
    root.end()
    assert len(harness.exporter.get_finished_spans()) == 1
    exported = harness.exported()["root"]
    assert_finalized(exported, "cancelled", "span not ended: finalized (cancelled)")


def test_second_shutdown_is_a_no_op(make_harness: MakeHarness) -> None:
    harness = make_harness()
    harness.tracer.start_span("root")
    harness.processor.shutdown()
    harness.processor.shutdown()
    harness.provider.shutdown()
    assert len(harness.exporter.get_finished_spans()) == 1
    assert dict(harness.processor.stats().finalized) == {"shutdown": 1}


def test_finalize_open_spans_returns_count_and_validates_reason(make_harness: MakeHarness) -> None:
    harness = make_harness()
    assert harness.processor.finalize_open_spans("shutdown") == 0
    root = harness.tracer.start_span("root")
    child_of(harness, "child", root)
    assert harness.processor.finalize_open_spans("shutdown") == 2
    with pytest.raises(ValueError, match="reason"):
        harness.processor.finalize_open_spans(" ")
    with pytest.raises(TypeError, match="reason"):
        harness.processor.finalize_open_spans(3)  # type: ignore[arg-type]


def test_spans_over_the_cap_are_counted_and_still_exported(make_harness: MakeHarness) -> None:
    harness = make_harness(max_tracked_spans=2)
    first = harness.tracer.start_span("first")
    second = harness.tracer.start_span("second")
    third = harness.tracer.start_span("third")
    stats = harness.processor.stats()
    assert (stats.open_spans, stats.untracked) == (2, 1)
    third.end()
    assert harness.processor.finalize_open_spans("shutdown") == 2
    assert {first.is_recording(), second.is_recording()} == {False}
    assert set(harness.exported()) == {"first", "second", "third"}
    assert harness.exported()["third"].status.status_code is StatusCode.UNSET


def test_root_timeout_with_an_injected_clock(make_harness: MakeHarness) -> None:
    clock = FakeClock()
    harness = make_harness(root_timeout=10, clock=clock, on_flush="none")
    old = harness.tracer.start_span("old")
    child_of(harness, "old.child", old)
    clock.now += 5
    young = harness.tracer.start_span("young")
    assert harness.processor.force_flush()
    assert harness.exporter.get_finished_spans() == ()

    clock.now += 5
    assert harness.processor.force_flush()

    assert [span.name for span in harness.exporter.get_finished_spans()] == ["old.child", "old"]
    for name in ("old", "old.child"):
        assert_finalized(
            harness.exported()[name], "timeout", "span not ended before its root timeout"
        )
    assert young.is_recording()
    assert dict(harness.processor.stats().finalized) == {"timeout": 2}


def test_root_timeout_only_finalizes_the_expired_roots_subtree(make_harness: MakeHarness) -> None:
    clock = FakeClock()
    harness = make_harness(root_timeout=10, clock=clock, on_flush="none")
    remote_parent = trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1))
    )
    first = child_of(harness, "server.first", remote_parent)
    child_of(harness, "first.child", first)
    clock.now += 6
    second = child_of(harness, "server.second", remote_parent)
    clock.now += 4
    harness.processor.force_flush()
    assert set(harness.exported()) == {"server.first", "first.child"}
    assert second.is_recording()


def test_root_timeout_background_thread_finalizes_without_a_flush(
    make_harness: MakeHarness,
) -> None:
    arrived = threading.Event()

    class Notify(SimpleSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            super().on_end(span)
            arrived.set()

    exporter = InMemorySpanExporter()
    processor = LifecycleSpanProcessor(Notify(exporter), root_timeout=0.05, on_flush="none")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("stuck")
    assert arrived.wait(10)
    (span,) = exporter.get_finished_spans()
    assert_finalized(span, "timeout", "span not ended before its root timeout")
    provider.shutdown()


def test_flush_snapshot_exports_an_in_progress_marker_once(make_harness: MakeHarness) -> None:
    harness = make_harness(conversation_id_fallback="trace_id")
    root = harness.tracer.start_span("agent.run", attributes={"input.value": "question"})
    child_of(harness, "llm", root)
    assert harness.processor.force_flush()
    assert harness.processor.force_flush()

    (marker,) = harness.exporter.get_finished_spans()
    root_context = root.get_span_context()
    trace_hex = trace.format_trace_id(root_context.trace_id)
    assert marker.name == "agent.run"
    assert marker.context is not None
    assert marker.parent is not None
    assert marker.context.trace_id == root_context.trace_id
    assert marker.context.span_id != root_context.span_id
    assert marker.parent.span_id == root_context.span_id
    assert marker.start_time == marker.end_time == root.start_time  # type: ignore[attr-defined]
    assert dict(marker.attributes or {}) == {
        "input.value": "question",
        "gen_ai.conversation.id": trace_hex,
        "otel_lifecycle.state": "in_progress",
    }
    assert root.is_recording()
    assert harness.processor.stats().open_spans == 2

    root.end()
    names = [span.name for span in harness.exporter.get_finished_spans()]
    assert names == ["agent.run", "agent.run"]
    assert harness.exporter.get_finished_spans()[1].status.status_code is StatusCode.UNSET


def test_flush_finalize_ends_every_open_span(make_harness: MakeHarness) -> None:
    harness = make_harness(on_flush="finalize")
    root = harness.tracer.start_span("root")
    child_of(harness, "child", root)
    assert harness.processor.force_flush()
    assert [span.name for span in harness.exporter.get_finished_spans()] == ["child", "root"]
    for span in harness.exporter.get_finished_spans():
        assert_finalized(span, "flush", "span not ended before force_flush")


def test_flush_none_leaves_open_spans(make_harness: MakeHarness) -> None:
    harness = make_harness(on_flush="none")
    root = harness.tracer.start_span("root")
    assert harness.processor.force_flush()
    assert harness.exporter.get_finished_spans() == ()
    assert root.is_recording()


class BlockingProcessor(SpanProcessor):
    """A delegate whose flush and shutdown hang until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.ended: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.entered.set()
        self.release.wait()
        return True

    def shutdown(self) -> None:
        self.entered.set()
        self.release.wait()


def test_force_flush_honours_its_timeout_when_the_exporter_hangs() -> None:
    """A hung exporter blocks the export worker, never the caller of force_flush."""
    entered, release = threading.Event(), threading.Event()

    class HangingExporter(InMemorySpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            entered.set()
            release.wait()
            return super().export(spans)

    processor = LifecycleSpanProcessor(HangingExporter())
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("root").end()
    try:
        assert processor.force_flush(timeout_millis=50) is False
        assert entered.is_set()
    finally:
        release.set()


def test_shutdown_honours_its_budget_when_the_delegate_hangs() -> None:
    delegate = BlockingProcessor()
    processor = LifecycleSpanProcessor(delegate, shutdown_timeout=0.05)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("open")
    try:
        provider.shutdown()
        assert delegate.ended == ["open"]
        assert delegate.entered.is_set()
        assert not delegate.release.is_set()
    finally:
        delegate.release.set()


def test_finalized_spans_reach_an_owned_batch_processor(exporter: InMemorySpanExporter) -> None:
    processor = LifecycleSpanProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root")
    tracer.start_span("child", context=trace.set_span_in_context(root))
    provider.shutdown()
    assert sorted(span.name for span in exporter.get_finished_spans()) == ["child", "root"]


def test_overflow_drops_children_only_and_the_root_says_how_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full queue refuses the newest child (counted); the root still arrives, with the count."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    exporting = threading.Event()
    release = threading.Event()

    class SlowExporter(InMemorySpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            exporting.set()
            release.wait()
            return super().export(spans)

    exporter = SlowExporter()
    processor = LifecycleSpanProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root")
    context = trace.set_span_in_context(root)
    for name in ("a", "b"):
        tracer.start_span(name, context=context).end()
    assert exporting.wait(10)
    for name in ("c", "d", "e"):
        tracer.start_span(name, context=context).end()
    root.end()
    assert processor.stats().dropped_overflow == 1
    release.set()
    assert processor.force_flush()
    exported = {span.name: span for span in exporter.get_finished_spans()}
    assert sorted(exported) == ["a", "b", "c", "d", "root"]
    assert exported["root"].attributes == {"otel_lifecycle.dropped_descendants": 1}
    provider.shutdown()


@pytest.mark.parametrize(
    ("options", "error", "parameter"),
    [
        ({"root_timeout": -1}, ValueError, "root_timeout"),
        ({"root_timeout": float("nan")}, ValueError, "root_timeout"),
        ({"root_timeout": "10"}, TypeError, "root_timeout"),
        ({"root_timeout": True}, TypeError, "root_timeout"),
        ({"on_flush": "sometimes"}, ValueError, "on_flush"),
        ({"on_flush": 1}, TypeError, "on_flush"),
        ({"conversation_id_keys": "session.id"}, TypeError, "conversation_id_keys"),
        ({"conversation_id_keys": []}, ValueError, "conversation_id_keys"),
        ({"conversation_id_keys": ["ok", ""]}, ValueError, "conversation_id_keys"),
        ({"conversation_id_fallback": "random"}, ValueError, "conversation_id_fallback"),
        ({"conversation_id_resolver": "x"}, TypeError, "conversation_id_resolver"),
        ({"max_tracked_spans": 0}, ValueError, "max_tracked_spans"),
        ({"max_tracked_spans": 1.5}, TypeError, "max_tracked_spans"),
        ({"shutdown_timeout": 0}, ValueError, "shutdown_timeout"),
        ({"clock": 3}, TypeError, "clock"),
    ],
)
def test_bad_arguments_name_the_parameter(
    exporter: InMemorySpanExporter, options: dict[str, object], error: type, parameter: str
) -> None:
    with pytest.raises(error, match=parameter):
        LifecycleSpanProcessor(SimpleSpanProcessor(exporter), **options)  # type: ignore[arg-type]


def test_bad_delegate_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="delegate"):
        LifecycleSpanProcessor(object())  # type: ignore[arg-type]


def test_environment_configures_the_processor(
    monkeypatch: pytest.MonkeyPatch, make_harness: MakeHarness
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_ON_FLUSH", "FINALIZE")
    monkeypatch.setenv("OTEL_LIFECYCLE_MAX_TRACKED_SPANS", "1")
    harness = make_harness()
    harness.tracer.start_span("tracked")
    harness.tracer.start_span("untracked")
    harness.processor.force_flush()
    assert list(harness.exported()) == ["tracked"]
    assert harness.processor.stats().untracked == 1


def test_explicit_argument_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch, make_harness: MakeHarness
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_ON_FLUSH", "finalize")
    harness = make_harness(on_flush="none")
    harness.tracer.start_span("open")
    harness.processor.force_flush()
    assert harness.exporter.get_finished_spans() == ()


class BoomError(Exception):
    pass


def exploding_resolver(span: Span) -> str:
    raise BoomError("resolver failed")


def test_internal_errors_never_reach_the_application(
    monkeypatch: pytest.MonkeyPatch,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_STRICT", "false")

    class ExplodingDelegate(SimpleSpanProcessor):
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            raise BoomError("delegate failed")

    processor = LifecycleSpanProcessor(
        ExplodingDelegate(exporter), conversation_id_resolver=exploding_resolver
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for _ in range(3):
        tracer.start_span("span").end()
    assert len(exporter.get_finished_spans()) == 3
    assert processor.stats().internal_errors == 6
    logged = [record for record in caplog.records if "internal error" in record.getMessage()]
    assert [record.getMessage() for record in logged] == [
        "otel_lifecycle: internal error in on_start (logged once)",
        "otel_lifecycle: internal error in delegate.on_start (logged once)",
    ]
    provider.shutdown()


def test_internal_errors_are_raised_in_strict_mode(exporter: InMemorySpanExporter) -> None:
    processor = LifecycleSpanProcessor(
        SimpleSpanProcessor(exporter), conversation_id_resolver=exploding_resolver
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    with pytest.raises(BoomError):
        provider.get_tracer("t").start_span("span")
