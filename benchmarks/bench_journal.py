"""Cost of the crash journal per trace: LifecycleSpanProcessor with and without ``journal=``.

Traces of a root and 10 children, 3 attributes each, exported through the SDK's
BatchSpanProcessor to a no-op exporter. Both sides run in the same process,
interleaved; the journal writes a real SQLite file in a temporary directory.
With 500 roots held open, each root lives long enough for the writer to persist it (the
worst case: every root reaches the disk). Run: ``python -m benchmarks.bench_journal``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from benchmarks._common import NullExporter, measure
from benchmarks.bench_processor import ATTRIBUTES
from otel_lifecycle import LifecycleSpanProcessor

CHILDREN = 10


def workload(processor: LifecycleSpanProcessor, traces: int, open_roots: int) -> Callable[[], None]:
    """A run: ``traces`` traces of a root and 10 children; ``open_roots`` roots stay open."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def run() -> None:
        held: list[trace.Span] = []
        for _ in range(traces):
            root = tracer.start_span("root", attributes=ATTRIBUTES)
            context = trace.set_span_in_context(root)
            for _ in range(CHILDREN):
                tracer.start_span("child", context=context, attributes=ATTRIBUTES).end()
            held.append(root)
            if len(held) > open_roots:
                held.pop(0).end()
        for root in held:
            root.end()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=2000, help="traces per run")
    parser.add_argument("--repeats", type=int, default=11, help="runs of each side")
    args = parser.parse_args()
    print("open roots  off µs/trace  on µs/trace  ratio")
    with tempfile.TemporaryDirectory() as directory:
        for open_roots in (0, 500):
            journal = str(Path(directory) / f"journal-{open_roots}.db")
            on = LifecycleSpanProcessor(NullExporter(), journal=journal)
            off = LifecycleSpanProcessor(NullExporter())
            timings = measure(
                [workload(off, args.traces, open_roots), workload(on, args.traces, open_roots)],
                args.repeats,
            )
            assert on.force_flush()
            print(
                f"{open_roots:>10}  {timings.best(0) / args.traces * 1e6:>12.1f}"
                f"  {timings.best(1) / args.traces * 1e6:>11.1f}  {timings.ratio(1):>5.2f}"
            )
            on.shutdown()
            off.shutdown()


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.1f} s")
