"""What survives an overload burst: the SDK's BatchSpanProcessor against LifecycleSpanProcessor.

Both sides export over OTLP gRPC to the embedded receiver (a fresh one per run),
with the default queue (``OTEL_BSP_MAX_QUEUE_SIZE``, 2048): 2 threads each start
and end traces of a root and 100 children as fast as they can, then the
provider shuts down. Printed for each side: roots and spans delivered out of
those started. Then, for the same bursts: how long the application's threads
took and the CPU they spent per span, the spans exported during the burst and
after it (at shutdown), and the exporter while it was saturated (its
``export()`` calls that began and ended within the burst: spans and batches per
second, mean batch, the share of that time spent inside ``export()``, and the
exporting thread's wall and CPU time per call). Then what
a span the full queue refuses costs the application's thread in ``on_end``. A
second burst of roots without children shows what happens to local roots alone.

The control side ``sdk-quiet`` is the plain SDK with its per-span "Queue full"
warning turned off (its logger at ERROR, as many services configure it): the
same exporter and queue, without the cost the warning adds to every refused
span. ``--no-control`` leaves it out. ``--warned`` adds the converse, ``lc+warn``:
the lifecycle processor made to log that same warning for each span it
refuses (an ablation, through a private method). ``--repeats`` runs each burst
several times, the sides interleaved, and prints the median of each column.
Run: ``python -m benchmarks.bench_overload``.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._shared_internal import DuplicateFilter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks._common import measure
from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._cli.receiver import OtlpReceiver

SIDES = ("plain", "lifecycle")
CONTROL = "sdk-quiet"
"""The plain SDK with its per-span "Queue full" warning off (see :func:`sdk_warning_off`)."""
WARNED = "lc+warn"
"""The lifecycle processor logging the SDK's "Queue full" warning for each span it refuses."""

SDK_LOGGER = "opentelemetry.sdk._shared_internal"
"""The logger of the SDK's batch processor, which warns once per span its full queue drops."""


@dataclass(frozen=True)
class Export:
    """One ``export()`` call: when it began and ended, its spans, its thread's CPU seconds."""

    start: float
    end: float
    spans: int
    cpu: float


class TimedExporter(SpanExporter):
    """Passes every call to ``exporter`` and records each ``export()`` call (:class:`Export`).

    Only the exporting thread appends; the records are read after shutdown.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self.calls: list[Export] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        cpu, start = time.thread_time(), time.perf_counter()
        try:
            return self._exporter.export(spans)
        finally:
            end = time.perf_counter()
            self.calls.append(Export(start, end, len(spans), time.thread_time() - cpu))

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


@dataclass(frozen=True)
class Delivery:
    """Roots and spans started in a burst, and how many of each reached the receiver."""

    roots_started: int
    roots_delivered: int
    spans_started: int
    spans_delivered: int
    counted_dropped: int | None
    """Spans the lifecycle processor counted as dropped (``stats().dropped_overflow``)."""
    burst: tuple[float, float] = (0.0, 0.0)
    """When the application's threads started together, and when the last one ended."""
    app_cpu_seconds: float = 0.0
    """CPU seconds the application's threads spent in the burst."""
    exports: Sequence[Export] = ()


@contextmanager
def sdk_warning_off() -> Iterator[None]:
    """The SDK's batch processor logs nothing below ERROR: no "Queue full" warning per span."""
    logger = logging.getLogger(SDK_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def make_processor(side: str, exporter: SpanExporter) -> SpanProcessor:
    if side in ("plain", CONTROL):
        return BatchSpanProcessor(exporter)
    processor = LifecycleSpanProcessor(exporter, handle_signals=False)
    if side == WARNED:
        dropped = processor._dropped
        logger = logging.getLogger(f"{__name__}.warned")
        if not logger.filters:
            logger.addFilter(DuplicateFilter())  # the SDK's: one line per 20 s, after the record

        def warned(span: ReadableSpan, trace_id: int) -> None:
            logger.warning("Queue full, dropping %s.", "Span")  # what the SDK's emit() does
            dropped(span, trace_id)

        processor._dropped = warned  # type: ignore[method-assign]
    return processor


def quiet_if_control(side: str) -> AbstractContextManager[None]:
    return sdk_warning_off() if side == CONTROL else nullcontext()


def burst(side: str, threads: int, roots: int, children: int) -> Delivery:
    """``threads`` threads each make ``roots`` traces of a root and ``children``; then shutdown."""
    with quiet_if_control(side), OtlpReceiver() as receiver:
        exporter = TimedExporter(OTLPSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True))
        provider = TracerProvider(shutdown_on_exit=False)
        processor = make_processor(side, exporter)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("bench")
        barrier = threading.Barrier(threads + 1)
        root_ids: list[set[str]] = [set() for _ in range(threads)]
        cpu = [0.0] * threads

        def one_thread(index: int) -> None:
            mine = root_ids[index]
            barrier.wait()
            begin = time.thread_time()
            for _ in range(roots):
                root = tracer.start_span("root")
                context = trace.set_span_in_context(root)
                for _ in range(children):
                    tracer.start_span("child", context=context).end()
                root.end()
                mine.add(trace.format_span_id(root.get_span_context().span_id))
            cpu[index] = time.thread_time() - begin

        workers = [threading.Thread(target=one_thread, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        begin = time.perf_counter()
        for worker in workers:
            worker.join()
        end = time.perf_counter()
        provider.shutdown()
        received = receiver.spans()
    started_roots = set().union(*root_ids)
    return Delivery(
        roots_started=len(started_roots),
        roots_delivered=len({span.span_id for span in received} & started_roots),
        spans_started=threads * roots * (children + 1),
        spans_delivered=len(received),
        counted_dropped=processor.stats().dropped_overflow
        if isinstance(processor, LifecycleSpanProcessor)
        else None,
        burst=(begin, end),
        app_cpu_seconds=sum(cpu),
        exports=exporter.calls,
    )


class GatedExporter(SpanExporter):
    """Holds its first ``export()`` call until ``gate`` opens, so the queue stays full."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.gate.wait(60)
        return SpanExportResult.SUCCESS


def refused_costs(sides: Sequence[str], calls: int, repeats: int) -> dict[str, float]:
    """µs the application's thread spends in ``on_end`` on a span the full queue refuses.

    Each side's queue is filled while its exporter holds a batch, then ``on_end``
    gets the same ended child ``calls`` times a run; the fastest of ``repeats``
    interleaved runs.
    """
    provider = TracerProvider(shutdown_on_exit=False)  # makes the span, exports nothing
    tracer = provider.get_tracer("bench")
    context = trace.set_span_in_context(tracer.start_span("root"))
    child = tracer.start_span("child", context=context)
    child.end()
    assert isinstance(child, ReadableSpan)
    exporters = {side: GatedExporter() for side in sides}
    processors = {side: make_processor(side, exporters[side]) for side in sides}
    for side in sides:
        for _ in range(512):  # a full batch: the worker takes it and waits at the gate
            processors[side].on_end(child)
        exporters[side].entered.wait(10)
        for _ in range(4096):  # more than the queue holds
            processors[side].on_end(child)

    def run(side: str) -> Callable[[], None]:
        on_end = processors[side].on_end

        def calls_on_end() -> None:
            with quiet_if_control(side):
                for _ in range(calls):
                    on_end(child)

        return calls_on_end

    timings = measure([run(side) for side in sides], repeats)
    for side in sides:
        exporters[side].gate.set()
        processors[side].shutdown()
    return {side: 1e6 * timings.best(index) / calls for index, side in enumerate(sides)}


def percent(part: int, whole: int) -> str:
    return f"{part:>6}/{whole:<6} ({100 * part / whole:5.1f}%)"


def delivery_row(side: str, result: Delivery) -> str:
    counted = "-" if result.counted_dropped is None else str(result.counted_dropped)
    return (
        f"{side:<9}  {percent(result.roots_delivered, result.roots_started)}"
        f"  {percent(result.spans_delivered, result.spans_started)}  {counted:>15}"
    )


def median_delivery(results: Sequence[Delivery]) -> Delivery:
    """The median over the runs of one side of each count (a row of medians, not a run)."""
    dropped = [r.counted_dropped for r in results if r.counted_dropped is not None]
    return Delivery(
        roots_started=results[0].roots_started,
        roots_delivered=round(statistics.median(r.roots_delivered for r in results)),
        spans_started=results[0].spans_started,
        spans_delivered=round(statistics.median(r.spans_delivered for r in results)),
        counted_dropped=round(statistics.median(dropped)) if dropped else None,
    )


def exporter_columns(result: Delivery) -> list[float]:
    """The second table's numbers for one run.

    The exporter's are over its calls that began and ended within the burst,
    from the first one's start to the last one's end (NaN if none did).
    """
    begin, end = result.burst
    exported_in_burst = sum(call.spans for call in result.exports if call.end <= end)
    within = [call for call in result.exports if call.start >= begin and call.end <= end]
    seconds = within[-1].end - within[0].start if within else 0.0
    inside = sum(call.end - call.start for call in within)
    count, spans = len(within), sum(call.spans for call in within)
    exporter = (
        [
            spans / seconds,  # spans per second
            count / seconds,  # batches per second
            spans / count,  # mean batch
            inside / seconds,  # busy: the share of that time inside export()
            1000 * inside / count,  # wall ms per export() call
            1000 * sum(call.cpu for call in within) / count,  # the exporting thread's CPU ms
        ]
        if seconds > 0
        else [math.nan] * 6
    )
    return [
        end - begin,
        1e6 * result.app_cpu_seconds / result.spans_started,
        exported_in_burst,
        result.spans_delivered - exported_in_burst,
        *exporter,
    ]


def exporter_row(side: str, columns: Sequence[float]) -> str:
    burst_s, app_us, in_burst, after, spans, batches, mean, busy, ms, cpu_ms = columns
    return (
        f"{side:<9}  {burst_s:7.3f}  {app_us:15.1f}  {in_burst:8.0f}  {after:5.0f}"
        f"  {spans:7.0f}  {batches:9.1f}  {mean:10.0f}  {busy:4.0%}  {ms:9.1f}  {cpu_ms:20.1f}"
    )


def print_tables(rows: Sequence[tuple[str, Delivery]], repeats: int) -> None:
    """One row per run; with several runs per side, then each side's median of each column."""
    sides = list(dict.fromkeys(side for side, _ in rows))
    print("side       roots delivered/started        spans delivered/started       counted dropped")
    for side, result in rows:
        print(delivery_row(side, result))
    if repeats > 1:
        print(f"median over the {repeats} runs of each side:")
        for side in sides:
            print(delivery_row(side, median_delivery([r for s, r in rows if s == side])))
    print(
        "the same bursts: the application's threads, spans exported during the burst and after it,"
        " and the exporter while saturated (its calls within the burst)"
    )
    print(
        "side       burst s  app CPU µs/span  in burst  after  spans/s  batches/s  mean batch"
        "  busy  ms/export  worker CPU ms/export"
    )
    for side, result in rows:
        print(exporter_row(side, exporter_columns(result)))
    if repeats > 1:
        print(f"median over the {repeats} runs of each side:")
        for side in sides:
            columns = [exporter_columns(r) for s, r in rows if s == side]
            print(
                exporter_row(
                    side, [statistics.median(column) for column in zip(*columns, strict=True)]
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--roots", type=int, default=200, help="traces per thread")
    parser.add_argument("--children", type=int, default=100, help="children per trace")
    parser.add_argument(
        "--lone-roots", type=int, default=40_000, help="childless roots in all, second burst"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of the first burst per side")
    parser.add_argument(
        "--no-control", action="store_true", help=f"leave out the {CONTROL} side (plain, quiet)"
    )
    parser.add_argument(
        "--warned", action="store_true", help=f"add the {WARNED} side (an ablation)"
    )
    args = parser.parse_args()
    sides = (*SIDES, *(() if args.no_control else (CONTROL,)), *((WARNED,) if args.warned else ()))
    print(
        f"burst: {args.threads} threads x {args.roots} roots x {args.children} children,"
        " OTLP gRPC, default queue, then shutdown"
    )
    runs: list[tuple[str, Delivery]] = []
    order = list(sides)
    for _ in range(args.repeats):
        runs.extend((side, burst(side, args.threads, args.roots, args.children)) for side in order)
        order.reverse()
    print_tables(runs, args.repeats)
    if not args.no_control:
        print(
            f"{CONTROL}: the plain SDK with its logger {SDK_LOGGER!r} at ERROR"
            " (no 'Queue full' warning per dropped span)"
        )
    if args.warned:
        print(f"{WARNED}: the lifecycle processor logging the SDK's warning per span it refuses")
    costs = refused_costs(sides, calls=20_000, repeats=7)
    print(
        "a span the full queue refuses, in on_end (the application's thread): "
        + ", ".join(f"{side} {cost:.2f} µs" for side, cost in costs.items())
    )
    per_thread = args.lone_roots // args.threads
    print(f"burst: {args.threads} threads x {per_thread} roots without children, OTLP gRPC")
    print("side       roots delivered/started")
    for side in SIDES:
        result = burst(side, args.threads, per_thread, 0)
        print(f"{side:<9}  {percent(result.roots_delivered, result.roots_started)}")


if __name__ == "__main__":
    main()
