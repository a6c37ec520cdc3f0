"""Metrics through the OpenTelemetry API: each instrument moves exactly as the README says."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry import metrics
from opentelemetry import trace as trace_api
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import otel_lifecycle
from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._core import metrics as lifecycle_metrics
from otel_lifecycle._core.metrics import DROPPED, FINALIZED, OPEN, RECOVERED, UNTRACKED
from otel_lifecycle._journal.store import LIVE_OWNERS
from otel_lifecycle._journal.writer import Journal

Point = tuple[str, str | None]
"""An instrument's name and the ``error.type`` of one of its points (None: no attribute)."""
Reading = dict[Point, int | float]
SetProvider = Callable[[], InMemoryMetricReader]


@pytest.fixture
def set_meter_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[SetProvider]:
    """No global meter provider and no instruments yet; calling the fixture sets a provider.

    The API sets the global provider once per process; the test resets its
    private once-flag and proxy, as the SDK's own test utilities do, and makes
    the package create its instruments again: at the first processor, or when
    the provider is set, so that a first reading gives every test a baseline.
    """
    monkeypatch.setattr(metrics_internal, "_PROXY_METER_PROVIDER", _ProxyMeterProvider())
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", None)
    monkeypatch.setattr(lifecycle_metrics, "_installed", threading.Event())
    providers: list[MeterProvider] = []

    def set_provider() -> InMemoryMetricReader:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(provider)
        lifecycle_metrics.install()
        providers.append(provider)
        return reader

    yield set_provider
    for provider in providers:
        provider.shutdown()


def read(reader: InMemoryMetricReader) -> Reading:
    """The package's metric points, by instrument and ``error.type`` (none before install)."""
    data = reader.get_metrics_data()
    points: Reading = {}
    for resource_metrics in data.resource_metrics if data is not None else ():
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name != "otel_lifecycle":
                continue
            assert scope_metrics.scope.version == otel_lifecycle.__version__
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    error_type = (point.attributes or {}).get("error.type")
                    assert error_type is None or isinstance(error_type, str)
                    points[metric.name, error_type] = point.value  # type: ignore[union-attr]
    return points


def changes(before: Reading, after: Reading) -> Reading:
    """What moved between two readings (the totals are the whole process's, since it started)."""
    moved = {point: value - before.get(point, 0) for point, value in after.items()}
    return {point: delta for point, delta in moved.items() if delta}


def make_provider(processor: LifecycleSpanProcessor) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider


class GatedExporter(SpanExporter):
    """The first export announces itself on ``entered`` and waits until ``gate`` opens."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10), "the test never opened the gate"
        return SpanExportResult.SUCCESS


def test_a_meter_provider_set_after_the_processor_gets_the_finalized_counts(
    set_meter_provider: SetProvider,
) -> None:
    """Set after the processor exists, the provider sees finalized{error.type=shutdown} = 3."""
    processor = LifecycleSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracer = make_provider(processor).get_tracer("t")
    reader = set_meter_provider()
    before = read(reader)
    root = tracer.start_span("root")
    context = trace_api.set_span_in_context(root)
    tracer.start_span("child.0", context=context)
    tracer.start_span("child.1", context=context)
    opened = read(reader)
    processor.shutdown()
    assert changes(before, opened) == {(OPEN, None): 3}
    assert changes(opened, read(reader)) == {(FINALIZED, "shutdown"): 3, (OPEN, None): -3}


def test_open_spans_gauge_counts_the_spans_open_now(set_meter_provider: SetProvider) -> None:
    """otel_lifecycle.span.open goes up when a span starts, down when it ends or is finalized."""
    reader = set_meter_provider()
    processor = LifecycleSpanProcessor(SimpleSpanProcessor(InMemorySpanExporter()))
    tracer = make_provider(processor).get_tracer("t")
    before = read(reader)
    spans = [tracer.start_span(f"s{index}") for index in range(4)]
    assert changes(before, read(reader)) == {(OPEN, None): 4}
    spans[0].end()
    assert changes(before, read(reader)) == {(OPEN, None): 3}
    assert processor.finalize_open_spans("deploy") == 3
    assert changes(before, read(reader)) == {(FINALIZED, "deploy"): 3}
    processor.shutdown()


def test_queue_overflow_and_a_full_priority_lane_count_exact_drops(
    set_meter_provider: SetProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queue of 1, exporter blocked: dropped{queue_full} = 2, dropped{priority_full} = 1."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1")
    reader = set_meter_provider()
    exporter = GatedExporter()
    processor = LifecycleSpanProcessor(exporter)
    tracer = make_provider(processor).get_tracer("t")
    before = read(reader)
    tracer.start_span("blocker").end()
    assert exporter.entered.wait(10), "the worker never exported the blocker"

    root = tracer.start_span("root")
    context = trace_api.set_span_in_context(root)
    for index in range(3):  # the normal lane holds 1
        tracer.start_span(f"child.{index}", context=context).end()
    root.end()
    for index in range(32):  # the priority lane holds 32 x 1, the root included
        tracer.start_span(f"root.{index}").end()
    moved = changes(before, read(reader))
    exporter.gate.set()
    processor.shutdown()

    assert moved == {(DROPPED, "queue_full"): 2, (DROPPED, "priority_full"): 1}
    stats = processor.stats()
    assert (stats.dropped_overflow, stats.dropped_priority) == (2, 1)


def test_spans_over_the_cap_or_after_shutdown_count_as_untracked(
    set_meter_provider: SetProvider,
) -> None:
    """untracked{tracking_full}, then untracked and dropped{already_shutdown}, once each."""
    reader = set_meter_provider()
    processor = LifecycleSpanProcessor(InMemorySpanExporter(), max_tracked_spans=1)
    tracer = make_provider(processor).get_tracer("t")
    before = read(reader)
    tracked = tracer.start_span("tracked")
    untracked = tracer.start_span("untracked")
    untracked.end()
    tracked.end()
    processor.shutdown()
    tracer.start_span("late").end()

    assert changes(before, read(reader)) == {
        (UNTRACKED, "tracking_full"): 1,
        (UNTRACKED, "already_shutdown"): 1,
        (DROPPED, "already_shutdown"): 1,
    }


def test_roots_recovered_from_the_journal_are_counted_and_logged(
    set_meter_provider: SetProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two roots of a crashed owner: recovered = 2, and one WARNING line says so."""
    reader = set_meter_provider()
    path = tmp_path / "j.db"
    spans = TracerProvider(shutdown_on_exit=False).get_tracer("crashed")
    crashed = Journal(str(path), lambda span: None, lambda span: None, interval=3600)
    crashed.start()
    for name in ("lost.0", "lost.1"):
        crashed.opened(spans.start_span(name))  # type: ignore[arg-type]
    assert crashed.flush(10)
    LIVE_OWNERS.discard(crashed.owner)  # its process is gone
    before = read(reader)
    exporter = InMemorySpanExporter()
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        processor = LifecycleSpanProcessor(SimpleSpanProcessor(exporter), journal=path)
        assert processor.force_flush()  # waits for the journal writer, which recovers first
    processor.shutdown()
    crashed.close(10)

    assert changes(before, read(reader)) == {(RECOVERED, None): 2}
    assert [span.name for span in exporter.get_finished_spans()] == ["lost.0", "lost.1"]
    assert [record.getMessage() for record in caplog.records] == [
        f"otel_lifecycle: recovered 2 span(s) of crashed processes from {path}"
        " (error.type=process_crash)"
    ]


def test_without_a_meter_provider_counting_is_a_no_op(
    set_meter_provider: SetProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """No MeterProvider: stats() counts; the metrics API neither raises nor logs anything."""
    processor = LifecycleSpanProcessor(InMemorySpanExporter(), max_tracked_spans=1)
    tracer = make_provider(processor).get_tracer("t")
    with caplog.at_level(logging.DEBUG, logger="opentelemetry"):
        tracer.start_span("open")
        tracer.start_span("untracked").end()
        processor.shutdown()
    assert isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)
    stats = processor.stats()
    assert (dict(stats.finalized), stats.untracked) == ({"shutdown": 1}, 1)
    assert not [record for record in caplog.records if record.name.startswith("opentelemetry")]
