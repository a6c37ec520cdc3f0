"""The export stage: ended spans batched to one exporter, with a lane that overflow cannot drop.

Two queues feed one worker thread, the only caller of ``exporter.export()``:

- the **priority lane**: local roots, spans the processor finalized, in-progress
  markers. Bounded generously, by ``PRIORITY_FACTOR`` times the normal lane's
  size (65,536 spans by default); the processor's own finalizations wait for
  room instead of being dropped, and only the application's roots can be
  refused, when that many wait for the exporter.
- the **normal lane**: every other span, bounded by ``max_queue_size``
  (``OTEL_BSP_MAX_QUEUE_SIZE``); when it is full the *new* span is refused and the
  caller counts the drop. What is already queued is never evicted.

The worker drains the priority lane first, in batches of at most
``max_export_batch_size``; it wakes every ``schedule_delay`` or as soon as a lane
holds a full batch. The hot path takes no lock: a ``deque`` append and, once per
batch, one byte on a socket pair (safe from a signal handler, unlike a
``threading.Event``, whose lock the interrupted thread may hold). A flush or a
shutdown waits on an event of its own, so the caller's deadline always holds,
even when the exporter hangs: the worker itself calls ``exporter.shutdown()``
after its last export, and a caller whose budget runs out first returns. Spans
a failed export or a shutdown out of time leaves behind are handed to ``lost``
(counted and named by ``_core.losses``); each batch the exporter took, to
``exported``.

The ``OTEL_BSP_*`` variables mean exactly what they mean for the SDK's
``BatchSpanProcessor`` (``_core.batching``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_lifecycle._core.batching import batch_settings
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.span_context import SAMPLED, TRACE_FLAGS
from otel_lifecycle._core.threads import background, wait_woken, wake, wakeup_pair

_logger = logging.getLogger(__name__)


PRIORITY_FACTOR = 32
"""The priority lane holds this many times ``OTEL_BSP_MAX_QUEUE_SIZE`` spans."""

Exported = Callable[[Sequence[ReadableSpan]], None]
"""Told of spans the export path handed to its exporter, which took them."""

Position = tuple[int, int]
"""A count of spans for each lane, the priority lane first."""


class ExportPath(Protocol):
    """Where the processor sends ended spans: this stage, or a delegate span processor."""

    closed: bool
    exported: Exported | None
    """Told of what left (the crash journal lets its rows go); None: nobody asks."""

    def emit(self, span: ReadableSpan) -> bool:
        """Queue an ordinary span; False if it was dropped."""

    def emit_priority(self, span: ReadableSpan) -> bool:
        """Queue a root, finalized span or marker; False if it was dropped."""

    def wait_for_room(self, deadline: Deadline) -> bool:
        """Wait until a priority span can be queued; False if not before ``deadline``."""

    def queued(self, span_id: int) -> bool:
        """Whether a span with ``span_id`` waits to be exported."""

    def enter_handler(self) -> None:
        """A signal handler starts its work: call nothing that may wait for a lock until
        the next ``flush`` or ``shutdown``."""

    def flush(self, timeout: float) -> bool:
        """Export what is queued; False if not within ``timeout``."""

    def shutdown(self, timeout: float) -> bool:
        """Export what is queued, then shut down; False if not within ``timeout``."""


class ExportStage:
    """Batches ended spans to ``exporter`` from one worker thread; see the module docstring."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        lost: Callable[[str, Sequence[ReadableSpan]], None] = lambda reason, spans: None,
    ) -> None:
        self.exporter = exporter
        self._lost = lost
        """Told of the spans the stage could not export (``_core.losses``), with why."""
        self.exported: Exported | None = None
        self.max_queue_size, delay_millis, self._batch_size = batch_settings(
            max_queue_size, schedule_delay_millis, max_export_batch_size
        )
        self._schedule_delay = delay_millis / 1000
        self.priority_limit = PRIORITY_FACTOR * self.max_queue_size
        self._stopped = False
        """Whether the worker exported what was queued and shut the exporter down."""
        self._stop_waiters: deque[threading.Event] = deque()
        self._start()
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(reference))

    def _start(self) -> None:
        self.normal: deque[ReadableSpan] = deque()
        self.priority: deque[ReadableSpan] = deque()
        self._requests: deque[tuple[threading.Event, Position]] = deque()
        self._taken = (0, 0)
        """How many spans the worker took from the priority and the normal lane so far."""
        self._room_waiters: deque[threading.Event] = deque()
        self._wake_pending = False
        self.closed = False
        self._stopping = False
        self._exporting: Sequence[ReadableSpan] = ()
        """The batch the worker is exporting now."""
        reader, self._writer = wakeup_pair()
        self._worker = background(_work, "export", weakref.ref(self), reader, self._schedule_delay)
        self._worker.start()

    def emit(self, span: ReadableSpan) -> bool:
        """Hot path: queue a sampled span; False (dropped) when the normal lane is full."""
        if not span._context[TRACE_FLAGS] & SAMPLED:  # type: ignore[index]
            return True  # not for export, as with the SDK's batch processor
        queue = self.normal
        if len(queue) >= self.max_queue_size or self.closed:
            return False
        queue.append(span)
        if len(queue) >= self._batch_size and not self._wake_pending:
            self.wake()
        return True

    def emit_priority(self, span: ReadableSpan) -> bool:
        """Queue a sampled root, finalized span or marker; False past the limit or once closed."""
        if not span._context[TRACE_FLAGS] & SAMPLED:  # type: ignore[index]
            return True
        queue = self.priority
        if len(queue) >= self.priority_limit or self.closed:
            return False
        queue.append(span)
        if len(queue) >= self._batch_size and not self._wake_pending:
            self.wake()
        return True

    def wait_for_room(self, deadline: Deadline) -> bool:
        """Block a finalizer (never the application) until the priority lane has room.

        The budget is read only when the lane is full: finalizing 100,000 spans
        reads the clock only when it has to wait.
        """
        if len(self.priority) < self.priority_limit:
            return True
        room = threading.Event()
        self._room_waiters.append(room)
        self.wake()
        return room.wait(deadline.remaining()) or len(self.priority) < self.priority_limit

    def queued(self, span_id: int) -> bool:
        """Whether a span with ``span_id`` waits in a lane."""
        return any(
            queued.context.span_id == span_id
            for lane in (self.priority, self.normal)
            for queued in list(lane)
        )

    def enter_handler(self) -> None:
        """Nothing to do: the stage takes no lock a signal handler could wait for."""

    def wake(self) -> None:
        """Wake the worker: one byte on the socket pair, no lock (signal-handler safe)."""
        self._wake_pending = True
        wake(self._writer)

    def flush(self, timeout: float) -> bool:
        """Export everything queued now; False if that did not finish within ``timeout``."""
        if self._stopping:
            return False
        done = threading.Event()
        self._requests.append((done, self._position()))
        self.wake()
        return done.wait(max(timeout, 0.0))

    def _position(self) -> Position:
        """How many spans each lane has held until now: a flush is done once all are taken.

        The lengths are read before the counts taken, so a worker taking spans in
        between can only move the position later (a longer flush), never earlier.
        """
        priority, normal = len(self.priority), len(self.normal)
        taken_priority, taken_normal = self._taken
        return taken_priority + priority, taken_normal + normal

    def shutdown(self, timeout: float) -> bool:
        """Refuse new spans, export what is queued, then shut the exporter down, within ``timeout``.

        The worker does both; this call only waits for it. If it does not finish
        in time (a hung ``export()`` or ``shutdown()``), the spans still queued or
        in the hung export are logged by span id and left unexported.
        """
        self.closed = True
        done = threading.Event()  # of its own: a shared one's lock may be held where a signal hit
        self._stop_waiters.append(done)
        if self._stopped:
            return True
        if not self._stopping:
            self._stopping = True
            self.wake()
            self._writer.close()
        if done.wait(max(timeout, 0.0)):
            return True
        self._lost("unexported_at_shutdown", self._left())
        return False

    def _left(self) -> list[ReadableSpan]:
        """The spans not exported yet: in the export under way, then in the lanes."""
        return [*self._exporting, *list(self.priority), *list(self.normal)]

    def _stop(self) -> None:
        """The worker's last act: shut the exporter down and tell ``shutdown()``."""
        try:
            self.exporter.shutdown()
        except Exception:  # a failing exporter must not break shutdown
            _logger.exception("otel_lifecycle: exporter shutdown failed")
        self._stopped = True
        while self._stop_waiters:
            self._stop_waiters.popleft().set()

    def _round(self, woken: bool) -> bool:
        """One round of the worker after it wakes; False once the stage is stopping.

        A timed-out round exports everything queued; a woken one exports every
        full batch and whatever flush requests ask for. Each flush request is
        answered as soon as every span queued in either lane when it was made is
        exported (spans queued later in the priority lane go first, but do not
        count for it).
        """
        self._wake_pending = False
        stopping = self._stopping
        wanted = self._position() if stopping or not woken else (0, 0)
        pending: list[tuple[threading.Event, Position]] = []
        while True:
            while self._requests:
                request = self._requests.popleft()
                pending.append(request)
                wanted = (max(wanted[0], request[1][0]), max(wanted[1], request[1][1]))
            taken = self._taken  # every span taken so far is exported
            batch = self._next_batch(full_only=_reached(taken, wanted))
            for request in [request for request in pending if _reached(taken, request[1])]:
                request[0].set()
                pending.remove(request)
            if not batch:
                for done, _ in pending:  # nothing is left queued
                    done.set()
                if stopping:
                    self._stop()
                return not stopping
            self._export_batch(batch)
            for _ in range(len(self._room_waiters)):
                self._room_waiters.popleft().set()

    def _next_batch(self, *, full_only: bool) -> list[ReadableSpan]:
        """Up to one batch, priority lane first (only the worker pops, so lengths only grow)."""
        size, priority, normal = self._batch_size, self.priority, self.normal
        if full_only and len(priority) + len(normal) < size:
            return []
        from_priority = [priority.popleft() for _ in range(min(size, len(priority)))]
        from_normal = [normal.popleft() for _ in range(min(size - len(from_priority), len(normal)))]
        taken_priority, taken_normal = self._taken
        self._taken = (taken_priority + len(from_priority), taken_normal + len(from_normal))
        return from_priority + from_normal

    def _export_batch(self, batch: Sequence[ReadableSpan]) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        self._exporting = batch
        try:
            exported = self.exporter.export(batch) is SpanExportResult.SUCCESS
        except Exception:  # the exporter's failure must not kill the worker
            _logger.exception("otel_lifecycle: exception while exporting spans")
            exported = False
        finally:
            self._exporting = ()
            detach(token)
        if not exported:
            self._lost("export_failed", batch)
        elif self.exported is not None:
            self.exported(batch)

    def _restart_after_fork(self) -> None:
        """In a forked child: the parent's queued spans are the parent's; start a new worker."""
        if not self.closed:
            self._start()


def _reached(taken: Position, wanted: Position) -> bool:
    return taken[0] >= wanted[0] and taken[1] >= wanted[1]


def _work(reference: Callable[[], ExportStage | None], reader: socket.socket, delay: float) -> None:
    """The worker loop. It holds the stage only during a round, never while it waits,
    so a stage nobody uses any more is collected (its socket closes and wakes the loop).
    """
    try:
        while True:
            woken = wait_woken(reader, delay)
            stage = reference()
            if stage is None or not stage._round(woken):
                return
            del stage
    finally:
        reader.close()


def _restart_in_child(reference: Callable[[], ExportStage | None]) -> None:
    stage = reference()
    if stage is not None:
        stage._restart_after_fork()


class FanOutExporter(SpanExporter):
    """Exports each batch to several exporters in turn, so one export stage serves them all.

    One exporter failing or raising does not keep the batch from the others; the
    result is a failure if any of them failed.
    """

    def __init__(self, exporters: Sequence[SpanExporter]) -> None:
        self.exporters = tuple(exporters)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = SpanExportResult.SUCCESS
        for exporter in self.exporters:
            try:
                if exporter.export(spans) is not SpanExportResult.SUCCESS:
                    result = SpanExportResult.FAILURE
            except Exception:  # the next exporter still gets the batch
                _logger.exception("otel_lifecycle: exporter %r failed", exporter)
                result = SpanExportResult.FAILURE
        return result

    def shutdown(self) -> None:
        for exporter in self.exporters:
            try:
                exporter.shutdown()
            except Exception:  # the next exporter still shuts down
                _logger.exception("otel_lifecycle: exporter %r failed to shut down", exporter)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = [exporter.force_flush(timeout_millis) for exporter in self.exporters]
        return all(flushed)  # every exporter flushes, even after one that failed
