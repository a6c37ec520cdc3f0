"""The fault-injection app: the real processor in a real process, following a plan of faults.

``fault_app.py PLAN`` (``PLAN`` is JSON, see ``tests/process/faults.py``). The app
exports OTLP (``transport``: ``grpc`` or ``http``) to ``endpoint`` through
``LifecycleSpanProcessor(exporter, shutdown_timeout=...)``, where ``exporter``
wraps the OTLP exporter and injects the plan's faults: export call ``n`` does
what ``exports[n]`` says (``ok``; ``slow``: ``slow`` seconds, then exports;
``hang``: blocks forever, as a wedged collector; ``raise``; ``failure``: returns
FAILURE without exporting), and with ``hang_shutdown`` its ``shutdown()`` blocks
forever too. With ``journal`` (a path), the processor keeps a crash journal there;
with ``delegate="batch"`` the processor wraps ``BatchSpanProcessor(exporter)``
instead of the exporter. With ``app_handler`` the app handles SIGTERM itself
(it returns from main), and the processor's ``drain_timeout`` is 0.

With ``hold_locks``, the main thread then takes every non-reentrant lock
reachable from the processor (but the exporter's and the spans' own, which the
application's code holds only inside their calls), as if a signal interrupted it
inside each of them: a signal handler must not wait for any of them.

With ``setup="attach"`` the provider first serves traffic through a plain
``BatchSpanProcessor``, then ``attach()`` (what ``configure()`` and the
``opentelemetry-instrument`` hook do) puts the processor in charge. ``threads``
threads end a root and its child every millisecond until the process ends. With
``fork`` the app forks before ``ready``: the child ends ``open.0.child`` (one of
the parent's spans), shuts its provider down and leaves through ``os._exit``.

The app starts ``ended`` roots (each with a child), leaves ``open`` roots open
(each with an open child), flushes (the export and the journal), then ends
``queued`` more roots. It
prints ``started NAME SPAN_ID`` for every span, ``export N start`` as export call
``N`` begins, and ``ready`` once everything is in place; then it ``wait``\\ s for
signals, ``return``\\ s from main, or ``exit``\\ s with ``sys.exit(3)``
(``finish``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._setup.instrument import attach

PLAN: dict[str, Any] = json.loads(sys.argv[1])
# The ids of spans the processor could not export are logged at DEBUG: the harness reads them.
logging.getLogger("otel_lifecycle").addHandler(logging.StreamHandler())
logging.getLogger("otel_lifecycle").setLevel(logging.DEBUG)
WEDGED = threading.Event()
"""Never set: what a hanging call waits for."""


def say(line: str) -> None:
    sys.stdout.write(f"{line}\n")  # one write: lines of several threads never interleave
    sys.stdout.flush()


class FaultyExporter(SpanExporter):
    """The OTLP exporter, with the plan's fault for each export call."""

    def __init__(self, inner: SpanExporter, exports: list[str], hang_shutdown: bool) -> None:
        self.inner = inner
        self.exports = exports
        self.hang_shutdown = hang_shutdown
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        call = self.calls
        self.calls += 1
        fault = self.exports[call] if call < len(self.exports) else "ok"
        say(f"export {call} start")
        if fault == "hang":
            WEDGED.wait()
        if fault == "raise":
            raise ConnectionError(f"export {call} failed")
        if fault == "failure":
            return SpanExportResult.FAILURE
        if fault == "slow":
            time.sleep(PLAN["slow"])  # the fault itself: a slow collector
        return self.inner.export(spans)

    def shutdown(self) -> None:
        if self.hang_shutdown:
            WEDGED.wait()
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


LOCKS = type(threading.Lock())
"""Only locks the handler could block on: an ``RLock`` the main thread holds, the handler (in
the main thread) takes again, and holding one for good would only block other threads."""
SCALARS = (str, bytes, int, float, bool, type(None), type, types.ModuleType, types.FunctionType)


def locks_of(root: object, skipped: tuple[type, ...]) -> list[Any]:
    """Every lock reachable from ``root`` through attributes and containers."""
    found: list[Any] = []
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or isinstance(node, (*SCALARS, *skipped)):
            continue
        seen.add(id(node))
        if isinstance(node, LOCKS):
            found.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, (list, tuple, set, frozenset, deque)):
            stack.extend(node)
        else:
            stack.extend(getattr(node, "__dict__", {}).values())
            for name in getattr(type(node), "__slots__", ()):
                stack.append(getattr(node, name, None))
    return found


otlp: SpanExporter = (
    GrpcExporter(endpoint=PLAN["endpoint"], insecure=True)
    if PLAN["transport"] == "grpc"
    else HttpExporter(endpoint=PLAN["endpoint"])
)
stopping = threading.Event()
if PLAN["app_handler"]:  # installed before the processor's, which chains to it
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
exporter = FaultyExporter(otlp, PLAN["exports"], PLAN["hang_shutdown"])
OPTIONS: dict[str, Any] = {
    "shutdown_timeout": PLAN["shutdown_timeout"],
    "journal": PLAN["journal"],
    "on_flush": "none",
    "drain_timeout": 0 if PLAN["app_handler"] else None,
}
provider = TracerProvider()
tracer = provider.get_tracer("tests.apps.fault")


def set_up() -> SpanProcessor:
    """The lifecycle processor, in charge of the provider as the plan says."""
    if PLAN["setup"] == "attach":
        provider.add_span_processor(BatchSpanProcessor(exporter))
        churn()
        attached = attach(provider, **OPTIONS)
        assert attached is not None
        say("attached")  # spans started before were the plain SDK's
        return attached
    lifecycle = LifecycleSpanProcessor(
        BatchSpanProcessor(exporter) if PLAN["delegate"] == "batch" else exporter, **OPTIONS
    )
    provider.add_span_processor(lifecycle)
    churn()
    return lifecycle


def churn() -> None:
    """Start the plan's threads, each ending a root and its child every millisecond."""

    def run(number: int) -> None:
        for count in itertools.count():
            root = started(f"thread.{number}.{count}")
            started(f"thread.{number}.{count}.child", root).end()
            root.end()
            time.sleep(0.001)  # the application's own pace

    for number in range(PLAN["threads"]):
        threading.Thread(target=run, args=(number,), daemon=True).start()


def started(name: str, parent: trace.Span | None = None) -> trace.Span:
    context = None if parent is None else trace.set_span_in_context(parent)
    span = tracer.start_span(name, context=context)
    say(f"started {name} {span.get_span_context().span_id:016x}")
    return span


def ended_roots(prefix: str, count: int) -> None:
    for number in range(count):
        root = started(f"{prefix}.{number}")
        started(f"{prefix}.{number}.child", root).end()
        root.end()


def fork(child_ends: trace.Span) -> None:
    """The child ends one of the parent's spans and exports it; the parent waits for it."""
    pid = os.fork()
    if pid == 0:
        child_ends.end()
        provider.shutdown()
        os._exit(0)  # no atexit, no flush of stdout buffers inherited from other threads
    os.waitpid(pid, 0)


def main() -> None:
    processor = set_up()
    ended_roots("ended", PLAN["ended"])
    children = [started(f"open.{n}.child", started(f"open.{n}")) for n in range(PLAN["open"])]
    provider.force_flush(PLAN["flush_timeout_millis"])
    ended_roots("queued", PLAN["queued"])
    if PLAN["fork"] and children:
        fork(children[0])
    if PLAN["hold_locks"]:
        for lock in locks_of(processor, (SpanExporter, ReadableSpan, threading.Thread)):
            lock.acquire(blocking=False)  # one another thread holds now is not the main thread's
    say("ready")
    if PLAN["finish"] == "exit":
        sys.exit(3)
    if PLAN["finish"] == "wait":
        # Not signal.pause(): a signal the kernel hands to another thread would not wake it.
        while not stopping.is_set():
            time.sleep(0.01)


if __name__ == "__main__":
    main()
