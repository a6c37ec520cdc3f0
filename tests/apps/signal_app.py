"""An app caught by a signal mid-work, or forking.

``signal_app.py SCENARIO TRANSPORT ENDPOINT BUDGET`` exports OTLP (``grpc`` or
``http``) to ENDPOINT through ``LifecycleSpanProcessor(OTLPSpanExporter(...),
shutdown_timeout=BUDGET)``, opens its spans, prints ``ready`` and then idles until
the test signals it. Scenarios:

- ``hold-lock``: the main thread holds an open span's own lock (as if a signal
  interrupted it inside ``set_attribute``); ``hold-lock-ending``: the same, with
  the span's end time already set (interrupted inside ``end()``);
  ``hold-lock-setting``: the span's lock and its attributes' lock (interrupted
  inside the attribute store itself); ``hold-lock-event``: the span's lock and
  its events' lock (interrupted inside ``add_event``).
- ``stream``: 400 roots ended, 2 roots open in blocked threads, and one root in
  flight whose open child the main thread streams tokens to, forever.
- ``interrupted-set``: SIGTERM (sent by the app itself, from a trace function)
  lands in the SDK's attribute store after it deleted the key it is writing again.
- ``fork``: a span started here is ended in a forked child; both processes exit
  normally.
- ``drain``: the app handles SIGTERM itself, like a server draining: it ends
  ``drain.quick`` after the signal, waits until the processor has finalized
  ``drain.slow`` at the end of its drain window, then exits normally.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_lifecycle import LifecycleSpanProcessor

SCENARIO, TRANSPORT, ENDPOINT, BUDGET = sys.argv[1:5]

# Python leaves SIGINT ignored when started with it ignored (a background job).
signal.signal(signal.SIGINT, signal.default_int_handler)

exporter: SpanExporter = (
    GrpcExporter(endpoint=ENDPOINT, insecure=True)
    if TRANSPORT == "grpc"
    else HttpExporter(endpoint=ENDPOINT)
)

stopping = threading.Event()
if SCENARIO == "drain":  # the app's own handler, installed before the processor's
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())

provider = TracerProvider()
provider.add_span_processor(LifecycleSpanProcessor(exporter, shutdown_timeout=float(BUDGET)))
tracer = provider.get_tracer("tests.apps.signal")
never = threading.Event()


def ready() -> None:
    print("ready", flush=True)


def idle() -> None:
    """Wait for the signal on the main thread, waking now and then.

    A signal the kernel hands to another thread only sets a flag for the main
    thread; a main thread blocked on a lock with no timeout would never look.
    """
    while True:
        time.sleep(0.01)


def open_in_threads(names: list[str], context: object = None) -> None:
    """Start a daemon thread per name, each inside an open span and blocked on an event."""
    started = threading.Barrier(len(names) + 1)

    def blocked(name: str) -> None:
        with tracer.start_as_current_span(name, context=context):  # type: ignore[arg-type]
            started.wait()
            never.wait()

    for name in names:
        threading.Thread(target=blocked, args=(name,), daemon=True).start()
    started.wait()


def hold_lock(variant: str) -> None:
    """5 spans ended, 4 open (2 in blocked threads), and a fifth open one whose lock is held."""
    root = tracer.start_span("open.root")
    context = trace.set_span_in_context(root)
    for number in range(5):
        ended = tracer.start_span(
            f"ended.{number}",
            context=None if number % 2 == 0 else context,
            attributes={"number": number},
        )
        if number % 2 == 0:
            ended.set_status(Status(StatusCode.OK))
        ended.end()
    tracer.start_span("open.child", context=context)
    open_in_threads(["open.thread.0", "open.thread.1"], context)
    held = tracer.start_span("held", context=context, attributes={"step": "generate"})
    with held._lock:  # type: ignore[attr-defined]
        if variant == "ending":
            held._end_time = time.time_ns()  # type: ignore[attr-defined]
        elif variant == "setting":
            held._attributes._lock.acquire()  # type: ignore[attr-defined]
        elif variant == "event":
            held._events._lock.acquire()  # type: ignore[attr-defined]
        ready()
        idle()


def stream() -> None:
    """Stream tokens onto the open child of the root in flight until a signal arrives."""
    for number in range(400):
        tracer.start_span(f"done.{number}", attributes={"number": number}).end()
    open_in_threads(["blocked.0", "blocked.1"])
    with tracer.start_as_current_span("inflight.root"):
        with tracer.start_as_current_span("inflight.done"):
            pass
        with tracer.start_as_current_span("inflight.stream") as streamed:
            streamed.set_attribute("gen_ai.usage.output_tokens", 0)
            ready()
            token = 1
            while True:
                streamed.set_attribute("gen_ai.usage.output_tokens", token)
                token += 1


def interrupted_set() -> None:
    """Rewrite an attribute; the signal lands between the SDK's delete and its write."""
    span = tracer.start_span("interrupted.root", attributes={"gen_ai.usage.output_tokens": 1})
    attributes = span._attributes  # type: ignore[attr-defined]  # the SDK's private store

    def trace_lines(frame: FrameType, event: str, arg: Any) -> Any:  # sys.settrace's type
        # The SDK deletes the key in __setitem__ up to 1.40, in _setitem_locked since.
        if frame.f_locals.get("self") is not attributes:
            return None
        if event == "line" and "gen_ai.usage.output_tokens" not in attributes:  # type: ignore[operator]
            sys.settrace(None)
            os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, right here
        return trace_lines

    ready()
    sys.settrace(trace_lines)
    span.set_attribute("gen_ai.usage.output_tokens", 2)
    sys.exit("the SDK never left the key deleted: the signal was not sent")


def fork() -> None:
    """The child ends one of the parent's spans and leaves one of its own open."""
    root = tracer.start_span("parent.root")
    context = trace.set_span_in_context(root)
    handoff = tracer.start_span("parent.handoff", context=context)
    tracer.start_span("parent.kept", context=context)
    pid = os.fork()
    if pid == 0:
        handoff.set_attribute("ended_by", "child")
        handoff.set_status(Status(StatusCode.OK))
        handoff.end()
        tracer.start_span("child.done", context=context).end()
        tracer.start_span("child.open", context=context)
        sys.exit(0)  # the ordinary exit path: atexit runs in the child too
    _, status = os.waitpid(pid, 0)
    print(f"child exit={os.waitstatus_to_exitcode(status)}", flush=True)


def drain() -> None:
    """Handle SIGTERM gracefully: finish the quick request, let the slow one be finalized."""
    quick = tracer.start_span("drain.quick")
    slow = tracer.start_span("drain.slow")
    ready()
    while not stopping.is_set():
        time.sleep(0.01)
    quick.set_status(Status(StatusCode.OK))
    quick.end()
    while slow.is_recording():  # the app's own idle loop until the drain window ends
        time.sleep(0.01)
    provider.shutdown()


if __name__ == "__main__":
    if SCENARIO.startswith("hold-lock"):
        hold_lock(SCENARIO.removeprefix("hold-lock").lstrip("-"))
    elif SCENARIO == "stream":
        stream()
    elif SCENARIO == "fork":
        fork()
    elif SCENARIO == "interrupted-set":
        interrupted_set()
    elif SCENARIO == "drain":
        drain()
    else:
        raise AssertionError(SCENARIO)
