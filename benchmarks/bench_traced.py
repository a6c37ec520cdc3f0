"""Cost of ``@otel_lifecycle.traced`` per call, as a ratio against a bare span.

Both sides call the same function with 3 short arguments under a
``LifecycleSpanProcessor`` over a no-op exporter: one through ``@traced`` (input
and output sanitized, status set), the other inside a bare
``tracer.start_as_current_span``. The difference is the decorator's binding of
arguments, sanitizing and status handling; a third side runs the decorator with
capture off, to show what recording input and output costs.
Run: ``python -m benchmarks.bench_traced``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider

from benchmarks._common import NullExporter, measure
from otel_lifecycle import LifecycleSpanProcessor, traced


def answer(question: str, session: str, retries: int) -> str:
    return question


def provider() -> TracerProvider:
    """A provider whose only processor is a lifecycle processor over a no-op exporter."""
    made = TracerProvider(shutdown_on_exit=False)
    made.add_span_processor(LifecycleSpanProcessor(NullExporter()))
    return made


def workloads(calls: int) -> list[Callable[[], None]]:
    """The bare-span run, the decorated run and the decorated run without capture."""
    tracer = provider().get_tracer("bench")
    decorated = traced(name="answer", tracer_provider=provider())(answer)
    uncaptured = traced(
        name="answer", capture_input=False, capture_output=False, tracer_provider=provider()
    )(answer)

    def bare() -> None:
        for _ in range(calls):
            with tracer.start_as_current_span("answer"):
                answer("what is up?", "s-1", 3)

    def calling(function: Callable[[str, str, int], str]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(calls):
                function("what is up?", "s-1", 3)

        return run

    return [bare, calling(decorated), calling(uncaptured)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000, help="calls per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs of each side")
    args = parser.parse_args()
    timings = measure(workloads(args.calls), args.repeats)
    print(f"{'side':<26} {'µs/call':>7}  {'ratio to bare':>13}")
    labels = ("bare start_as_current_span", "@traced", "@traced, capture off")
    for index, label in enumerate(labels):
        print(
            f"{label:<26} {timings.best(index) / args.calls * 1e6:>7.2f}"
            f"  {timings.ratio(index):>13.2f}"
        )


if __name__ == "__main__":
    main()
