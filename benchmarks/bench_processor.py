"""Cost of LifecycleSpanProcessor per span, as a ratio against the plain SDK.

Both sides export through the SDK's BatchSpanProcessor to a no-op exporter, so
the difference is the lifecycle processor's tracking and conversation-id
resolution, measured in the same run with 1 and 2 threads.
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


def workload(processor: SpanProcessor, threads: int, traces: int) -> Callable[[], None]:
    """A run: ``threads`` threads each make ``traces`` traces of a root and 3 children."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    attributes = {"http.method": "GET", "http.route": "/items", "retries": 0}

    def one_thread(barrier: threading.Barrier) -> None:
        barrier.wait()
        for _ in range(traces):
            root = tracer.start_span("root", attributes=attributes)
            context = trace.set_span_in_context(root)
            for _ in range(3):
                tracer.start_span("child", context=context, attributes=attributes).end()
            root.end()

    def run() -> None:
        barrier = threading.Barrier(threads)
        workers = [threading.Thread(target=one_thread, args=(barrier,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=2000, help="traces per thread per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs of each side")
    args = parser.parse_args()
    print("threads  plain µs/span  lifecycle µs/span  ratio")
    for threads in (1, 2):
        spans = threads * args.traces * 4
        timings = measure(
            [
                workload(BatchSpanProcessor(NullExporter()), threads, args.traces),
                workload(LifecycleSpanProcessor(NullExporter()), threads, args.traces),
            ],
            args.repeats,
        )
        print(
            f"{threads:>7}  {timings.best(0) / spans * 1e6:>13.2f}"
            f"  {timings.best(1) / spans * 1e6:>17.2f}  {timings.ratio(1):>5.2f}"
        )


if __name__ == "__main__":
    main()
