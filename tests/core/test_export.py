"""The export stage: overload, backpressure, snapshot markers, one export at a time, OTEL_BSP_*."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._core.batching import batch_settings
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.export import ExportStage, FanOutExporter
from tests.receiver import OtlpReceiver

DROPPED_DESCENDANTS = "otel_lifecycle.dropped_descendants"
SDK_DEFAULTS = (2048, 5000.0, 512)
"""The SDK's default max queue size, schedule delay (ms) and max export batch size."""


class RecordingExporter(SpanExporter):
    """Records every batch, the thread of every call and how many calls overlapped.

    ``delay`` is the exporter's own time per batch (a slow collector); ``gate``,
    when given, makes the first call announce itself on ``entered`` and wait until
    the test opens the gate.
    """

    def __init__(self, *, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay = delay
        self.gate = gate
        self.entered = threading.Event()
        self.batches: list[list[ReadableSpan]] = []
        self.threads: set[str] = set()
        self.shutdowns = 0
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
            self.threads.add(threading.current_thread().name)
        try:
            if self.gate is not None and not self.entered.is_set():
                self.entered.set()
                assert self.gate.wait(10), "the test never opened the gate"
            if self.delay:
                time.sleep(self.delay)  # the collector's own latency, not a wait for a thread
            with self._lock:
                self.batches.append(list(spans))
        finally:
            with self._lock:
                self._active -= 1
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shutdowns += 1

    def spans(self) -> list[ReadableSpan]:
        with self._lock:
            return [span for batch in self.batches for span in batch]


def span_id(span: trace.Span | ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return trace.format_span_id(context.span_id)


def trace_id(span: trace.Span | ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return trace.format_trace_id(context.trace_id)


def make_provider(processor: LifecycleSpanProcessor | BatchSpanProcessor) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider


def run_threads(count: int, target: Callable[[threading.Barrier], None]) -> None:
    """Run ``target(barrier)`` in ``count`` threads released together; join them."""
    barrier = threading.Barrier(count)
    workers = [threading.Thread(target=target, args=(barrier,)) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert not worker.is_alive()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_overload_burst_keeps_every_root_and_counts_every_dropped_child(transport: str) -> None:
    """A 2-thread burst over OTLP: each root arrives once, each lost child counted on its root."""
    threads, roots_per_thread, children = 2, 100, 100
    with OtlpReceiver() as receiver:
        exporter: SpanExporter = (
            GrpcExporter(endpoint=receiver.grpc_endpoint, insecure=True)
            if transport == "grpc"
            else HttpExporter(endpoint=receiver.http_endpoint)
        )
        processor = LifecycleSpanProcessor(exporter)
        provider = make_provider(processor)
        tracer = provider.get_tracer("burst")
        started_roots: dict[str, str] = {}  # root span id -> trace id
        started_children: dict[str, str] = {}  # child span id -> trace id

        def burst(barrier: threading.Barrier) -> None:
            roots: dict[str, str] = {}
            kids: dict[str, str] = {}
            barrier.wait()
            for _ in range(roots_per_thread):
                root = tracer.start_span("root")
                context = trace.set_span_in_context(root)
                for _ in range(children):
                    child = tracer.start_span("child", context=context)
                    child.end()
                    kids[span_id(child)] = trace_id(child)
                root.end()
                roots[span_id(root)] = trace_id(root)
            started_roots.update(roots)
            started_children.update(kids)

        run_threads(threads, burst)
        provider.shutdown()
        received = receiver.spans()

    assert len(started_roots) == threads * roots_per_thread
    assert len(started_children) == threads * roots_per_thread * children
    arrivals = Counter(span.span_id for span in received)
    assert [sid for sid, count in arrivals.items() if count > 1] == []
    assert set(arrivals) <= set(started_roots) | set(started_children)
    assert set(started_roots) <= set(arrivals), "a root was lost"
    missing: Counter[str] = Counter(
        trace for sid, trace in started_children.items() if sid not in arrivals
    )
    stats = processor.stats()
    assert sum(missing.values()) > 0, "the burst did not overload the queue: make it bigger"
    assert stats.dropped_overflow == sum(missing.values())
    assert (stats.dropped_priority, stats.dropped_after_shutdown, stats.internal_errors) == (
        0,
        0,
        0,
    )
    on_roots = {
        span.trace_id: span.attributes.get(DROPPED_DESCENDANTS)
        for span in received
        if span.span_id in started_roots
    }
    assert on_roots == {trace: missing[trace] or None for trace in started_roots.values()}


def test_root_only_burst_over_grpc_drops_no_root() -> None:
    """A 2-thread burst of 10,000 childless roots over OTLP gRPC delivers each root exactly once."""
    threads, roots_per_thread = 2, 5000
    with OtlpReceiver() as receiver:
        processor = LifecycleSpanProcessor(
            GrpcExporter(endpoint=receiver.grpc_endpoint, insecure=True)
        )
        provider = make_provider(processor)
        tracer = provider.get_tracer("burst")
        started: list[str] = []

        def burst(barrier: threading.Barrier) -> None:
            mine: list[str] = []
            barrier.wait()
            for _ in range(roots_per_thread):
                root = tracer.start_span("root")
                root.end()
                mine.append(span_id(root))
            started.extend(mine)

        run_threads(threads, burst)
        provider.shutdown()
        received = receiver.spans()

    assert len(set(started)) == threads * roots_per_thread
    assert Counter(span.span_id for span in received) == Counter(started)
    stats = processor.stats()
    assert (stats.dropped_priority, stats.dropped_overflow) == (0, 0)


def open_traces(tracer: trace.Tracer, traces: int, spans_per_trace: int) -> list[trace.Span]:
    """``traces`` open traces of a root and ``spans_per_trace - 1`` open children."""
    opened: list[trace.Span] = []
    for _ in range(traces):
        root = tracer.start_span("root")
        context = trace.set_span_in_context(root)
        opened.append(root)
        opened.extend(
            tracer.start_span(f"child{index}", context=context)
            for index in range(spans_per_trace - 1)
        )
    return opened


def assert_all_finalized_once(exporter: RecordingExporter, opened: list[trace.Span]) -> None:
    exported = exporter.spans()
    assert Counter(span_id(span) for span in exported) == Counter(span_id(span) for span in opened)
    for span in exported:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "shutdown"


def test_shutdown_finalizes_ten_thousand_open_spans_through_a_slow_exporter() -> None:
    """Shutdown finalizes 10,000 open spans through a slow exporter and loses none."""
    exporter = RecordingExporter(delay=0.005)
    processor = LifecycleSpanProcessor(exporter, max_tracked_spans=10_000)
    provider = make_provider(processor)
    opened = open_traces(provider.get_tracer("t"), 1000, 10)

    provider.shutdown()

    assert_all_finalized_once(exporter, opened)
    stats = processor.stats()
    assert dict(stats.finalized) == {"shutdown": 10_000}
    assert (stats.untracked, stats.dropped_priority, stats.dropped_overflow) == (0, 0, 0)
    assert exporter.shutdowns == 1


def test_finalizer_waits_for_room_in_a_small_priority_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 600-span priority lane the shutdown finalizer waits for room and loses none of 10,000.

    The lane alone is narrowed, through the stage's ``priority_limit``: a small
    ``max_tracked_spans`` would leave most of the 10,000 spans untracked.
    """
    exporter = RecordingExporter(delay=0.02)
    processor = LifecycleSpanProcessor(exporter, max_tracked_spans=10_000)
    stage = processor._path
    assert isinstance(stage, ExportStage)
    stage.priority_limit = 600
    waits_for_room = stage.wait_for_room
    full_lane_waits: list[int] = []

    def recorded_wait_for_room(deadline: Deadline) -> bool:
        if len(stage.priority) >= stage.priority_limit:
            full_lane_waits.append(len(stage.priority))
        return waits_for_room(deadline)

    monkeypatch.setattr(stage, "wait_for_room", recorded_wait_for_room)
    provider = make_provider(processor)
    opened = open_traces(provider.get_tracer("t"), 1000, 10)

    provider.shutdown()

    assert full_lane_waits, "the finalizer never found the lane full"
    assert_all_finalized_once(exporter, opened)
    assert dict(processor.stats().finalized) == {"shutdown": 10_000}
    assert processor.stats().dropped_priority == 0
    assert max(len(batch) for batch in exporter.batches) <= 512


def test_snapshot_flush_exports_one_marker_per_open_root() -> None:
    """force_flush in snapshot mode exports one in-progress marker for each of 5,000 open roots."""
    exporter = RecordingExporter()
    processor = LifecycleSpanProcessor(exporter, on_flush="snapshot")
    provider = make_provider(processor)
    tracer = provider.get_tracer("t")
    roots = {span_id(root): root for root in (tracer.start_span("root") for _ in range(5000))}

    assert processor.force_flush()

    markers = exporter.spans()
    assert len(markers) == 5000
    assert len({span_id(marker) for marker in markers}) == 5000
    assert not {span_id(marker) for marker in markers} & set(roots)
    parents = Counter(
        trace.format_span_id(marker.parent.span_id) for marker in markers if marker.parent
    )
    assert parents == Counter(set(roots))
    for marker in markers:
        assert marker.attributes is not None
        assert marker.attributes["otel_lifecycle.state"] == "in_progress"
    stats = processor.stats()
    assert (stats.dropped_priority, stats.dropped_overflow, stats.open_spans) == (0, 0, 5000)

    assert processor.force_flush()
    assert len(exporter.spans()) == 5000

    for root in roots.values():
        root.end()
    provider.shutdown()
    assert Counter(span_id(span) for span in exporter.spans()[5000:]) == Counter(list(roots))


def test_exporter_is_never_called_concurrently(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a 2-thread burst and a flushing thread, only the worker calls export(), singly."""
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "32")
    exporter = RecordingExporter(delay=0.0005)
    processor = LifecycleSpanProcessor(exporter)
    provider = make_provider(processor)
    tracer = provider.get_tracer("t")
    burst_done = threading.Event()
    flushes: list[bool] = []

    def work(barrier: threading.Barrier) -> None:
        barrier.wait()
        if threading.current_thread().name.endswith("(flush)"):
            while not burst_done.is_set():
                flushes.append(processor.force_flush())
            return
        for _ in range(50):
            root = tracer.start_span("root")
            context = trace.set_span_in_context(root)
            for _ in range(20):
                tracer.start_span("child", context=context).end()
            root.end()

    barrier = threading.Barrier(3)
    producers = [threading.Thread(target=work, args=(barrier,)) for _ in range(2)]
    flusher = threading.Thread(target=work, args=(barrier,), name="flusher (flush)")
    for thread in [*producers, flusher]:
        thread.start()
    for thread in producers:
        thread.join(30)
    burst_done.set()
    flusher.join(30)
    assert processor.force_flush()
    provider.shutdown()

    assert flushes, "the flusher never ran"
    assert all(flushes)
    assert exporter.max_active == 1
    assert exporter.threads == {"otel_lifecycle.export"}
    assert len(exporter.batches) >= 2100 // 32
    assert max(len(batch) for batch in exporter.batches) <= 32
    exported_ids = Counter(span_id(span) for span in exporter.spans() if not span.parent)
    assert [sid for sid, count in exported_ids.items() if count > 1] == []


class RootsDuringExport(SpanExporter):
    """Records span ids; its first ``calls`` exports each end two new roots, as traffic does."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.exported: list[str] = []
        self.tracer: trace.Tracer | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += [span_id(span) for span in spans]
        if self.calls and self.tracer is not None:
            self.calls -= 1
            for _ in range(2):
                self.tracer.start_span("during.flush").end()
        return SpanExportResult.SUCCESS


def test_force_flush_returns_true_only_once_every_span_ended_before_it_is_exported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Roots ending during the flush go first (priority lane): they must not stand in for
    the children queued before the call, which the flush promised."""
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    exporter = RootsDuringExport(calls=6)
    processor = LifecycleSpanProcessor(exporter)
    provider = make_provider(processor)
    tracer = exporter.tracer = provider.get_tracer("t")
    root = tracer.start_span("open.root")
    children = [
        tracer.start_span(f"child.{n}", context=trace.set_span_in_context(root)) for n in range(3)
    ]
    for child in children:
        child.end()
    earlier_root = tracer.start_span("ended.root")
    earlier_root.end()
    before = {span_id(span) for span in [*children, earlier_root]}

    assert processor.force_flush(10_000) is True
    assert before <= set(exporter.exported), sorted(before - set(exporter.exported))
    root.end()
    provider.shutdown()


def test_max_export_batch_size_variable_bounds_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_BSP_MAX_EXPORT_BATCH_SIZE=7 gives export batches of at most 7 spans."""
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "7")
    assert batch_settings(None, None, None) == (2048, 5000.0, 7)
    exporter = RecordingExporter()
    processor = LifecycleSpanProcessor(exporter)
    provider = make_provider(processor)
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root")
    context = trace.set_span_in_context(root)
    children = [tracer.start_span(f"c{index}", context=context) for index in range(30)]
    for child in children:
        child.end()
    root.end()
    assert processor.force_flush()
    provider.shutdown()

    sizes = [len(batch) for batch in exporter.batches]
    assert sum(sizes) == 31
    assert max(sizes) == 7
    assert Counter(span_id(span) for span in exporter.spans()) == Counter(
        span_id(span) for span in [root, *children]
    )


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_BSP_MAX_QUEUE_SIZE": "5", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "5"},
        {"OTEL_BSP_MAX_QUEUE_SIZE": "5"},
    ],
    ids=["queue-and-batch", "queue-only"],
)
def test_max_queue_size_variable_bounds_the_normal_lane(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    """OTEL_BSP_MAX_QUEUE_SIZE=5 queues 5 children for a busy exporter; the root counts the rest."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    gate = threading.Event()
    exporter = RecordingExporter(gate=gate)
    processor = LifecycleSpanProcessor(exporter)
    provider = make_provider(processor)
    tracer = provider.get_tracer("t")
    blocker = tracer.start_span("blocker")
    blocker.end()
    flushing = threading.Thread(target=processor.force_flush)
    flushing.start()
    assert exporter.entered.wait(10), "the worker never exported the blocker"

    root = tracer.start_span("root")
    context = trace.set_span_in_context(root)
    children = [tracer.start_span(f"c{index}", context=context) for index in range(8)]
    for child in children:
        child.end()
    assert processor.stats().dropped_overflow == 3
    gate.set()
    flushing.join(10)
    root.end()
    provider.shutdown()

    exported = {span_id(span): span for span in exporter.spans()}
    assert len(exporter.spans()) == len(exported)
    assert set(exported) == {span_id(span) for span in [blocker, root, *children[:5]]}
    root_attributes = exported[span_id(root)].attributes
    assert root_attributes is not None
    assert root_attributes[DROPPED_DESCENDANTS] == 3
    assert max(len(batch) for batch in exporter.batches) <= 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "seven"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "many"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "-1"),
    ],
)
def test_invalid_bsp_variable_falls_back_to_the_sdk_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str, value: str
) -> None:
    """An invalid OTEL_BSP_* value is logged by name and replaced by the SDK default, not raised."""
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING):
        assert batch_settings(None, None, None) == SDK_DEFAULTS
    assert any(variable in record.getMessage() for record in caplog.records)
    processor = LifecycleSpanProcessor(RecordingExporter())
    processor.shutdown()


def test_sdk_batch_helpers_we_rely_on_still_read_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The private BatchSpanProcessor helpers batch_settings calls exist and read OTEL_BSP_*."""
    sdk: Any = BatchSpanProcessor  # its helpers are untyped
    assert sdk._default_max_queue_size() == 2048
    assert sdk._default_schedule_delay_millis() == 5000
    assert sdk._default_max_export_batch_size() == 512
    assert sdk._default_export_timeout_millis() == 30000
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "123")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "45")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "67")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "89")
    assert sdk._default_max_queue_size() == 123
    assert sdk._default_schedule_delay_millis() == 45
    assert sdk._default_max_export_batch_size() == 67
    assert sdk._default_export_timeout_millis() == 89
    assert batch_settings(None, None, None) == (123, 45.0, 67)
    assert batch_settings(10, 1.5, 3) == (10, 1.5, 3)
    sdk._validate_arguments(10, 1, 10)
    with pytest.raises(ValueError, match="max_export_batch_size"):
        sdk._validate_arguments(10, 1, 11)
    with pytest.raises(ValueError, match="max_queue_size"):
        sdk._validate_arguments(0, 1, 1)


class FailingExporter(SpanExporter):
    """Raises on every call."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("collector down")

    def shutdown(self) -> None:
        raise RuntimeError("collector down")


def test_a_fan_out_keeps_serving_the_other_exporters_when_one_fails() -> None:
    """One exporter raising fails the batch, but the next still gets it and shuts down."""
    healthy = InMemorySpanExporter()
    fan_out = FanOutExporter([FailingExporter(), healthy])
    span = ReadableSpan("one", context=trace.SpanContext(1, 2, is_remote=False))
    assert fan_out.export([span]) is SpanExportResult.FAILURE
    assert [exported.name for exported in healthy.get_finished_spans()] == ["one"]
    assert fan_out.export([]) is SpanExportResult.FAILURE
    fan_out.shutdown()
    assert healthy.export([span]) is SpanExportResult.FAILURE  # shut down


def test_the_export_worker_leaves_sigterm_and_sigint_to_other_threads() -> None:
    """The worker blocks both signals, so the kernel hands them to a thread that handles them."""
    processor = LifecycleSpanProcessor(InMemorySpanExporter())
    stage = processor._path  # this processor's: other tests' workers may still be running
    assert isinstance(stage, ExportStage)
    worker = stage._worker
    status = Path(f"/proc/self/task/{worker.native_id}/status").read_text()
    [mask] = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")]
    blocked = int(mask, 16)
    assert blocked & (1 << (signal.SIGTERM - 1))
    assert blocked & (1 << (signal.SIGINT - 1))
    processor.shutdown()
