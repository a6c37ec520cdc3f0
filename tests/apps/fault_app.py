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

With ``hold_locks``, the main thread then takes every lock reachable from the
processor (but the exporter's and the spans' own, which the application's code
holds only inside their calls), as if a signal interrupted it inside each of
them: a signal handler must not wait for any of them.

The app starts ``ended`` roots (each with a child), leaves ``open`` roots open
(each with an open child), flushes (the export and the journal), then ends
``queued`` more roots. It
prints ``started NAME SPAN_ID`` for every span, ``export N start`` as export call
``N`` begins, and ``ready`` once everything is in place; then it ``wait``\\ s for
signals, ``return``\\ s from main, or ``exit``\\ s with ``sys.exit(3)``
(``finish``).
"""

from __future__ import annotations

import json
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
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_lifecycle import LifecycleSpanProcessor

PLAN: dict[str, Any] = json.loads(sys.argv[1])
WEDGED = threading.Event()
"""Never set: what a hanging call waits for."""


def say(line: str) -> None:
    print(line, flush=True)


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


LOCKS = (type(threading.Lock()), type(threading.RLock()))
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
processor = LifecycleSpanProcessor(
    BatchSpanProcessor(exporter) if PLAN["delegate"] == "batch" else exporter,
    shutdown_timeout=PLAN["shutdown_timeout"],
    journal=PLAN["journal"],
    on_flush="none",
    drain_timeout=0 if PLAN["app_handler"] else None,
)
provider = TracerProvider()
provider.add_span_processor(processor)
tracer = provider.get_tracer("tests.apps.fault")


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


def main() -> None:
    ended_roots("ended", PLAN["ended"])
    for number in range(PLAN["open"]):
        started(f"open.{number}.child", started(f"open.{number}"))
    provider.force_flush()
    ended_roots("queued", PLAN["queued"])
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
