"""What survives an overload burst: the SDK's BatchSpanProcessor against LifecycleSpanProcessor.

Both sides export over OTLP gRPC to the embedded receiver (a fresh one per run),
with the default queue (``OTEL_BSP_MAX_QUEUE_SIZE``, 2048): 2 threads each start
and end traces of a root and 100 children as fast as they can, then the
provider shuts down. Printed for each side: roots and spans delivered out of
those started. A second burst of roots without children shows what happens to
local roots alone.
Run: ``python -m benchmarks.bench_overload``.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._cli.receiver import OtlpReceiver

SIDES = ("plain", "lifecycle")


@dataclass(frozen=True)
class Delivery:
    """Roots and spans started in a burst, and how many of each reached the receiver."""

    roots_started: int
    roots_delivered: int
    spans_started: int
    spans_delivered: int
    counted_dropped: int | None
    """Spans the lifecycle processor counted as dropped (``stats().dropped_overflow``)."""


def make_processor(side: str, receiver: OtlpReceiver) -> SpanProcessor:
    exporter = OTLPSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True)
    if side == "plain":
        return BatchSpanProcessor(exporter)
    return LifecycleSpanProcessor(exporter, handle_signals=False)


def burst(side: str, threads: int, roots: int, children: int) -> Delivery:
    """``threads`` threads each make ``roots`` traces of a root and ``children``; then shutdown."""
    with OtlpReceiver() as receiver:
        provider = TracerProvider(shutdown_on_exit=False)
        processor = make_processor(side, receiver)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("bench")
        barrier = threading.Barrier(threads)
        root_ids: list[set[str]] = [set() for _ in range(threads)]

        def one_thread(index: int) -> None:
            mine = root_ids[index]
            barrier.wait()
            for _ in range(roots):
                root = tracer.start_span("root")
                context = trace.set_span_in_context(root)
                for _ in range(children):
                    tracer.start_span("child", context=context).end()
                root.end()
                mine.add(trace.format_span_id(root.get_span_context().span_id))

        workers = [threading.Thread(target=one_thread, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
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
    )


def percent(part: int, whole: int) -> str:
    return f"{part:>6}/{whole:<6} ({100 * part / whole:5.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--roots", type=int, default=200, help="traces per thread")
    parser.add_argument("--children", type=int, default=100, help="children per trace")
    parser.add_argument(
        "--lone-roots", type=int, default=40_000, help="childless roots in all, second burst"
    )
    args = parser.parse_args()
    print(
        f"burst: {args.threads} threads x {args.roots} roots x {args.children} children,"
        " OTLP gRPC, default queue, then shutdown"
    )
    print("side       roots delivered/started        spans delivered/started       counted dropped")
    for side in SIDES:
        result = burst(side, args.threads, args.roots, args.children)
        counted = "-" if result.counted_dropped is None else str(result.counted_dropped)
        print(
            f"{side:<9}  {percent(result.roots_delivered, result.roots_started)}"
            f"  {percent(result.spans_delivered, result.spans_started)}  {counted:>15}"
        )
    per_thread = args.lone_roots // args.threads
    print(f"burst: {args.threads} threads x {per_thread} roots without children, OTLP gRPC")
    print("side       roots delivered/started")
    for side in SIDES:
        result = burst(side, args.threads, per_thread, 0)
        print(f"{side:<9}  {percent(result.roots_delivered, result.roots_started)}")


if __name__ == "__main__":
    main()
