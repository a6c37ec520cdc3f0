"""Cost of LifecycleSpanProcessor per span, as a ratio against a bare BatchSpanProcessor.

The baseline exports through the SDK's ``BatchSpanProcessor``; the lifecycle
side through its own export stage, both to a no-op exporter, so the difference
is everything the processor does per span: tracking, conversation-id
resolution and queueing. Traces of a root and 9 children (and of a root and 3),
3 attributes each, with 1 and 2 threads. Then ``on_end`` alone (queueing and
exporting, the part the export stage replaces), and the same processor with
100,000 traces open against 10: the cost per span must not depend on what is
open.
Run: ``python -m benchmarks.bench_processor``.
"""

from __future__ import annotations

import argparse
import threading
from typing import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from benchmarks._common import NullExporter, measure
from otel_lifecycle import LifecycleSpanProcessor

ATTRIBUTES = {"http.method": "GET", "http.route": "/items", "retries": 0}


def workload(
    processor: SpanProcessor, threads: int, traces: int, children: int
) -> Callable[[], None]:
    """A run: ``threads`` threads each make ``traces`` traces of a root and ``children``."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def one_thread(barrier: threading.Barrier) -> None:
        barrier.wait()
        for _ in range(traces):
            root = tracer.start_span("root", attributes=ATTRIBUTES)
            context = trace.set_span_in_context(root)
            for _ in range(children):
                tracer.start_span("child", context=context, attributes=ATTRIBUTES).end()
            root.end()

    def run() -> None:
        barrier = threading.Barrier(threads)
        workers = [threading.Thread(target=one_thread, args=(barrier,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        processor.force_flush()

    return run


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
    parser.add_argument("--spans", type=int, default=2_000, help="spans per thread per run")
    parser.add_argument("--repeats", type=int, default=41, help="runs of each side")
    args = parser.parse_args()
    print("shape     threads  plain µs/span  lifecycle µs/span  ratio")
    for children in (9, 3):
        traces = args.spans // (children + 1)
        for threads in (1, 2):
            spans = threads * traces * (children + 1)
            timings = measure(
                [
                    workload(BatchSpanProcessor(NullExporter()), threads, traces, children),
                    workload(
                        LifecycleSpanProcessor(NullExporter(), handle_signals=False),
                        threads,
                        traces,
                        children,
                    ),
                ],
                args.repeats,
            )
            print(
                f"1+{children:<6}  {threads:>7}  {timings.best(0) / spans * 1e6:>13.2f}"
                f"  {timings.best(1) / spans * 1e6:>17.2f}  {timings.ratio(1):>5.2f}"
            )
    timings = measure(
        [
            hooks(BatchSpanProcessor(NullExporter()), args.spans),
            hooks(LifecycleSpanProcessor(NullExporter(), handle_signals=False), args.spans),
        ],
        args.repeats,
    )
    print(
        f"on_end alone (queue and export): plain {timings.best(0) / args.spans * 1e6:.2f},"
        f" lifecycle {timings.best(1) / args.spans * 1e6:.2f} µs/span,"
        f" ratio {timings.ratio(1):.2f}"
    )
    traces = args.spans // 10
    timings = measure(
        [
            workload(with_open_traces(10), 1, traces, 9),
            workload(with_open_traces(100_000), 1, traces, 9),
        ],
        args.repeats,
    )
    print(
        f"1+9 with 100,000 traces open vs 10: {timings.best(0) / args.spans * 1e6:.2f}"
        f" vs {timings.best(1) / args.spans * 1e6:.2f} µs/span, ratio {timings.ratio(1):.2f}"
    )


if __name__ == "__main__":
    main()
