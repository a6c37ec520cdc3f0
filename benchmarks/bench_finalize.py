"""Cost of finalizing open spans at shutdown, against ending them normally.

100,000 open spans (traces of a root and 9 children, 3 attributes each) under
one ``LifecycleSpanProcessor`` over a no-op exporter. One side ends them all in
the application (children first), then calls ``shutdown()``; the other calls
``shutdown()`` with all of them open, so the processor finalizes them. Only
that part is timed; building the spans is not. The ratio is finalizing /
ending normally, median of paired runs.
Run: ``python -m benchmarks.bench_finalize``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import Span, TracerProvider

from benchmarks._common import NullExporter, collector_paused
from benchmarks.bench_processor import ATTRIBUTES
from otel_lifecycle import LifecycleSpanProcessor


def open_spans(count: int) -> tuple[TracerProvider, list[Span]]:
    """A provider with ``count`` open spans, children after their root in the list."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        LifecycleSpanProcessor(
            NullExporter(), handle_signals=False, max_tracked_spans=count, shutdown_timeout=60
        )
    )
    tracer = provider.get_tracer("finalize")
    spans: list[Span] = []
    for _ in range(count // 10):
        root = tracer.start_span("root", attributes=ATTRIBUTES)
        context = trace.set_span_in_context(root)
        spans.append(root)  # type: ignore[arg-type]
        spans.extend(
            tracer.start_span("child", context=context, attributes=ATTRIBUTES)  # type: ignore[misc]
            for _ in range(9)
        )
    return provider, spans


def end_normally(provider: TracerProvider, spans: list[Span]) -> None:
    for span in reversed(spans):
        span.end()
    provider.shutdown()


def finalize(provider: TracerProvider, spans: list[Span]) -> None:
    provider.shutdown()
    assert not any(span.is_recording() for span in spans)


def timed(side: Callable[[TracerProvider, list[Span]], None], count: int) -> float:
    provider, spans = open_spans(count)
    with collector_paused():
        begin = time.perf_counter()
        side(provider, spans)
        return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=100_000, help="open spans per run")
    parser.add_argument("--repeats", type=int, default=9, help="runs of each side")
    args = parser.parse_args()
    normal: list[float] = []
    finalized: list[float] = []
    for _ in range(args.repeats):
        normal.append(timed(end_normally, args.spans))
        finalized.append(timed(finalize, args.spans))
    ratio = statistics.median(f / n for f, n in zip(finalized, normal, strict=False))
    print(
        f"{args.spans} open spans: ended normally + shutdown {min(normal):.2f} s,"
        f" finalized by shutdown {min(finalized):.2f} s, ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
