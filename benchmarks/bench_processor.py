"""Cost of LifecycleSpanProcessor per span, as a ratio against a bare BatchSpanProcessor.

The baseline exports through the SDK's ``BatchSpanProcessor``; the lifecycle
side through its own export stage, both to a no-op exporter, so the difference
is everything the processor does per span: tracking, conversation-id
resolution and queueing. Traces of a root and 9 children (and of a root and 3),
3 attributes each, with 1 and 2 threads, in blocks of 100 spans a thread,
interleaved, each side charged for the CPU of its own threads (see
``_common.measure_blocks``). Then ``on_end`` alone (queueing and exporting, the
part the export stage replaces), and the same processor with 100,000 traces
open against 10: the cost per span must not depend on what is open.
Run: ``python -m benchmarks.bench_processor``.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.types import Attributes

from benchmarks._common import NullExporter, Side, measure, measure_blocks
from otel_lifecycle import LifecycleSpanProcessor

ATTRIBUTES: Attributes = {"http.method": "GET", "http.route": "/items", "retries": 0}


def side(processor: SpanProcessor, threads: int, traces: int, children: int) -> Side:
    """A side: per block, each of ``threads`` threads makes ``traces`` traces.

    A trace is a root and ``children`` children, 3 attributes each.
    """
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def block() -> None:
        for _ in range(traces):
            root = tracer.start_span("root", attributes=ATTRIBUTES)
            context = trace.set_span_in_context(root)
            for _ in range(children):
                tracer.start_span("child", context=context, attributes=ATTRIBUTES).end()
            root.end()

    return Side(block, threads, exporting_thread(processor), processor.force_flush)


def exporting_thread(processor: SpanProcessor) -> threading.Thread:
    """The thread that exports for ``processor`` (private attributes: this is a benchmark)."""
    if isinstance(processor, LifecycleSpanProcessor):
        return processor._path._worker  # type: ignore[attr-defined,no-any-return]
    return processor._batch_processor._worker_thread  # type: ignore[attr-defined,no-any-return]


def ablated(part: str) -> LifecycleSpanProcessor:
    """A lifecycle processor with ``part`` taken away (private attributes: a benchmark)."""
    processor = LifecycleSpanProcessor(
        NullExporter(), handle_signals=False, conversation_ids=part != "no conversation ids"
    )
    if part == "no on_start":
        processor.on_start = lambda span, parent_context=None: None  # type: ignore[method-assign]
    return processor


def ablations(repeats: int, blocks: int, spans: int) -> None:
    """Where a span's cost goes: the processor with parts taken away, against the plain SDK."""
    parts = ["no on_start", "no conversation ids", "nothing taken away"]
    sides = [side(BatchSpanProcessor(NullExporter()), 1, spans // 10, 9)]
    sides += [side(ablated(part), 1, spans // 10, 9) for part in parts]
    timings = measure_blocks(sides, repeats, blocks)
    for index, part in enumerate(parts, start=1):
        print(f"1+9, 1 thread, {part}: ratio {timings.ratio(index):.3f}")


def same_on_both_sides(repeats: int, blocks: int, spans: int) -> None:
    """An A/A check of the method: the SDK's batch processor on both sides; ratios near 1."""
    for threads in (1, 2):
        sides = [side(BatchSpanProcessor(NullExporter()), threads, spans // 10, 9) for _ in "ab"]
        timings = measure_blocks(sides, repeats, blocks)
        print(f"1+9, {threads} thread(s), plain SDK against itself: ratio {timings.ratio(1):.3f}")


def with_open_traces(count: int) -> SpanProcessor:
    """A lifecycle processor with ``count`` traces already open (a root each, never ended).

    Its flushes export no in-progress markers: a snapshot visits every open
    root, a cost per flush, not per span.
    """
    processor = LifecycleSpanProcessor(
        NullExporter(), handle_signals=False, max_tracked_spans=count + 100_000, on_flush="none"
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("open")
    for _ in range(count):
        tracer.start_span("open root", attributes=ATTRIBUTES)
    return processor


def hooks(processor: SpanProcessor, count: int) -> Callable[[], None]:
    """A run of the hooks alone: ``on_end`` of ``count`` ended children of one root."""
    provider = TracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer("hooks")
    context = trace.set_span_in_context(tracer.start_span("root"))
    ended = []
    for _ in range(count):
        span = tracer.start_span("child", context=context, attributes=ATTRIBUTES)
        span.end()
        ended.append(span._readable_span())  # type: ignore[attr-defined]

    def run() -> None:
        for span in ended:
            processor.on_end(span)
        processor.force_flush()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=100, help="spans per thread per block")
    parser.add_argument("--blocks", type=int, default=10, help="blocks of each side per repeat")
    parser.add_argument("--repeats", type=int, default=101, help="repeats (paired samples)")
    parser.add_argument(
        "--ablations", action="store_true", help="only the processor with parts taken away"
    )
    parser.add_argument(
        "--same", action="store_true", help="only the plain SDK against itself (an A/A check)"
    )
    args = parser.parse_args()
    if args.same:
        same_on_both_sides(args.repeats, args.blocks, args.spans)
        return
    if args.ablations:
        ablations(args.repeats, args.blocks, args.spans)
        return
    print("shape     threads  plain µs/span  lifecycle µs/span  ratio  ratio, ids off")
    for children in (9, 3):
        traces = args.spans // (children + 1)
        for threads in (1, 2):
            spans = threads * traces * (children + 1)
            sides = [
                side(BatchSpanProcessor(NullExporter()), threads, traces, children),
                *(
                    side(
                        LifecycleSpanProcessor(
                            NullExporter(), handle_signals=False, conversation_ids=ids
                        ),
                        threads,
                        traces,
                        children,
                    )
                    for ids in (True, False)
                ),
            ]
            timings = measure_blocks(sides, args.repeats, args.blocks)
            timed = spans * args.blocks
            print(
                f"1+{children:<6}  {threads:>7}  {timings.best(0) / timed * 1e6:>13.2f}"
                f"  {timings.best(1) / timed * 1e6:>17.2f}  {timings.ratio(1):>5.2f}"
                f"  {timings.ratio(2):>14.2f}"
            )
    ended = args.spans * args.blocks
    timings = measure(
        [
            hooks(BatchSpanProcessor(NullExporter()), ended),
            hooks(LifecycleSpanProcessor(NullExporter(), handle_signals=False), ended),
        ],
        args.repeats,
    )
    print(
        f"on_end alone (queue and export): plain {timings.best(0) / ended * 1e6:.2f},"
        f" lifecycle {timings.best(1) / ended * 1e6:.2f} µs/span,"
        f" ratio {timings.ratio(1):.2f}"
    )
    traces = args.spans // 10
    sides = [
        side(with_open_traces(10), 1, traces, 9),
        side(with_open_traces(100_000), 1, traces, 9),
    ]
    timings = measure_blocks(sides, args.repeats, args.blocks)
    timed = args.spans * args.blocks
    print(
        f"1+9 with 100,000 traces open vs 10: {timings.best(0) / timed * 1e6:.2f}"
        f" vs {timings.best(1) / timed * 1e6:.2f} µs/span, ratio {timings.ratio(1):.2f}"
    )


if __name__ == "__main__":
    main()
