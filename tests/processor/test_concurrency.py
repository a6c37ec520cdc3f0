"""One processor shared by many threads: no mixing, exactly-once export under races."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from opentelemetry import trace

from otel_lifecycle import conversation
from tests.conftest import Harness

MakeHarness = Callable[..., Harness]

THREADS = 4
TRACES_PER_THREAD = 150


def test_concurrent_traces_never_mix(make_harness: MakeHarness) -> None:
    harness = make_harness()
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        start.wait()
        for number in range(TRACES_PER_THREAD):
            with conversation(f"t{index}-{number}"):
                root = harness.tracer.start_span(f"root-{index}-{number}")
            ctx = trace.set_span_in_context(root)
            for child in range(3):
                harness.tracer.start_span(f"child-{index}-{number}-{child}", context=ctx).end()
            root.end()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    spans = harness.exporter.get_finished_spans()
    assert len(spans) == THREADS * TRACES_PER_THREAD * 4
    for span in spans:
        _, index, number, *_ = span.name.split("-")
        assert (span.attributes or {})["gen_ai.conversation.id"] == f"t{index}-{number}"
    stats = harness.processor.stats()
    assert (stats.open_traces, stats.open_spans) == (0, 0)


def test_finalization_racing_the_application_exports_each_span_once(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness()
    start = threading.Barrier(THREADS + 1)
    workers_done = threading.Event()
    started: Counter[int] = Counter()

    def worker() -> None:
        start.wait()
        for _ in range(TRACES_PER_THREAD):
            root = harness.tracer.start_span("root")
            child = harness.tracer.start_span("child", context=trace.set_span_in_context(root))
            started[root.get_span_context().span_id] += 1
            started[child.get_span_context().span_id] += 1
            child.end()
            root.end()

    def finalizer() -> None:
        start.wait()
        while not workers_done.is_set():
            harness.processor.finalize_open_spans("shutdown")

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    racer = threading.Thread(target=finalizer)
    for thread in [*threads, racer]:
        thread.start()
    for thread in threads:
        thread.join()
    workers_done.set()
    racer.join()

    exported = Counter(
        span.context.span_id for span in harness.exporter.get_finished_spans() if span.context
    )
    assert exported == started
    stats = harness.processor.stats()
    assert (stats.open_traces, stats.open_spans) == (0, 0)
    finalized = sum(
        1
        for span in harness.exporter.get_finished_spans()
        if (span.attributes or {}).get("error.type") == "shutdown"
    )
    assert finalized == stats.finalized.get("shutdown", 0)


def test_children_of_one_trace_from_many_threads(make_harness: MakeHarness) -> None:
    harness = make_harness()
    root = harness.tracer.start_span("root", attributes={"session.id": "shared"})
    ctx = trace.set_span_in_context(root)
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        start.wait()
        for number in range(TRACES_PER_THREAD):
            harness.tracer.start_span(f"c-{index}-{number}", context=ctx).end()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert harness.processor.stats().open_spans == 1
    root.end()
    spans = harness.exporter.get_finished_spans()
    assert len(spans) == THREADS * TRACES_PER_THREAD + 1
    assert {(span.attributes or {})["gen_ai.conversation.id"] for span in spans} == {"shared"}
    assert harness.processor.stats().open_traces == 0
