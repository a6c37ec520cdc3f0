"""An app that ends badly in one of several ways: ``exits_app.py SCENARIO TRANSPORT ENDPOINT``.

It exports OTLP (``grpc`` or ``http``) to ENDPOINT through a LifecycleSpanProcessor,
prints ``ready`` once its spans are open, and then waits for a signal where the
scenario needs one. The provider is set up at import, so ``multiprocessing``
children started with ``spawn`` (which import this module again) get one too.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from types import FrameType

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

import otel_lifecycle
from otel_lifecycle import LifecycleSpanProcessor

SCENARIO, TRANSPORT, ENDPOINT = sys.argv[1:4]


class EndedEvents(SpanProcessor):
    """Sets an event when a span with a given name ends, so the app waits without sleeping."""

    def __init__(self) -> None:
        self.events: dict[str, threading.Event] = {}
        self.seen: list[str] = []

    def event(self, name: str) -> threading.Event:
        return self.events.setdefault(name, threading.Event())

    def on_end(self, span: ReadableSpan) -> None:
        self.seen.append(span.name)
        self.event(span.name).set()

    def shutdown(self) -> None:
        if SCENARIO in ("sys-exit", "provider-shutdown"):
            print(f"first processor saw {sorted(self.seen)}", flush=True)


def app_handler(signum: int, frame: FrameType | None) -> None:
    print("app handler", flush=True)
    sys.exit(7)


if SCENARIO == "sigterm-chained":
    signal.signal(signal.SIGTERM, app_handler)
if SCENARIO == "sigint":
    # Python leaves SIGINT ignored when started with it ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)

exporter: SpanExporter = (
    GrpcExporter(endpoint=ENDPOINT, insecure=True)
    if TRANSPORT == "grpc"
    else HttpExporter(endpoint=ENDPOINT)
)
ended = EndedEvents()
provider = TracerProvider()
provider.add_span_processor(ended)
provider.add_span_processor(
    LifecycleSpanProcessor(
        BatchSpanProcessor(exporter) if SCENARIO == "returns-batch-processor" else exporter
    )
)
tracer = provider.get_tracer("tests.apps.exits")


def child_of(parent: trace.Span, name: str) -> trace.Span:
    return tracer.start_span(name, context=trace.set_span_in_context(parent))


def wait_for_signal() -> None:
    print("ready", flush=True)
    # Not signal.pause(): a signal the kernel hands to another thread would not
    # wake it. The handlers end the process; this loop never ends by itself.
    while True:
        time.sleep(0.01)


def pool_task(number: int) -> int:
    tracer.start_span(f"worker.done.{number}").end()
    tracer.start_span(f"worker.open.{number}")
    return os.getpid()


def failing_worker() -> None:
    tracer.start_span("thread.root")
    raise RuntimeError("worker failed")


@otel_lifecycle.traced(
    name="agent.run", conversation_id=lambda args: args["session"], tracer_provider=provider
)
def agent(question: str, session: str, api_key: str) -> str:
    with tracer.start_as_current_span("llm.call"):
        wait_for_signal()
    return "never reached"


def run() -> None:
    if SCENARIO == "traced-sigterm":
        agent("What is 6 x 7?", session="conv-9", api_key="sk-live-123")
    elif SCENARIO in ("sigterm", "sigterm-chained"):
        root = tracer.start_span("app.root")
        child_of(root, "app.child")
        child_of(root, "app.done").end()
        wait_for_signal()
    elif SCENARIO == "sigint":
        root = tracer.start_span("app.root")
        with trace.use_span(root), tracer.start_as_current_span("app.step"):
            tracer.start_span("app.open")
            wait_for_signal()
    elif SCENARIO == "exception":
        root = tracer.start_span("app.root")
        child_of(root, "app.child")
        raise ValueError("boom")
    elif SCENARIO == "sys-exit":
        tracer.start_span("app.root")
        sys.exit(3)
    elif SCENARIO == "returns-batch-processor":
        root = tracer.start_span("app.root")
        child_of(root, "app.done").end()
    elif SCENARIO == "provider-shutdown":
        tracer.start_span("app.root")
        provider.shutdown()
    elif SCENARIO == "thread-exception":
        tracer.start_span("main.root")
        worker = threading.Thread(target=failing_worker)
        worker.start()
        worker.join()
    elif SCENARIO == "fork":
        fork_scenario()
    elif SCENARIO.startswith("pool-"):
        context = multiprocessing.get_context(SCENARIO.removeprefix("pool-"))
        with tracer.start_as_current_span("parent.root"):
            pool = context.Pool(1)
            print(f"worker={pool.apply(pool_task, (1,))}", flush=True)
            pool.close()
            pool.join()
    else:
        raise AssertionError(SCENARIO)


def fork_scenario() -> None:
    """Both processes leave a root to the root-timeout thread, which must run in each."""
    parent_root = tracer.start_span("parent.root")
    pid = os.fork()
    if pid == 0:
        tracer.start_span("child.root")
        tracer.start_span("child.done").end()
        if not ended.event("child.root").wait(30):
            os._exit(90)
        return
    _, status = os.waitpid(pid, 0)
    print(f"child exit={os.waitstatus_to_exitcode(status)}", flush=True)
    if not ended.event("parent.root").wait(30):
        sys.exit(91)
    assert not parent_root.is_recording()


if __name__ == "__main__":
    run()
