"""Taking over a live provider's batch processors without refusing or repeating a span.

:func:`~otel_lifecycle._setup.instrument.attach` puts one lifecycle processor in
place of the ``BatchSpanProcessor``\\s a configurator registered, exporting to
their exporters through its own export stage, often while the application ends
spans in other threads. Two things must not happen then: a span refused (a batch
processor shut down before its replacement is registered refuses every span that
ends in between), and two threads inside one exporter's ``export()`` at once (the
batch processor's worker and the new stage).

The SDK hands an ending span to the processors of the tuple it read at that moment
(``SynchronousMultiSpanProcessor._span_processors``, replaced whole under a lock
the hot path does not take). So once the tuple is swapped for the lifecycle
processor alone, each span has gone through the batch processors or goes through
the lifecycle processor, never both. The batch processors are therefore never
shut down: each keeps exporting, to its own exporter, what it had queued and any
span that a thread which read the old tuple hands it just after the swap, so
nothing is refused and each exporter gets each span once. The export stage calls
each exporter only while holding that batch processor's export lock, which its
worker holds whenever it exports: one ``export()`` at a time, even while a slow
export is in flight during the swap. Before each flush and shutdown, the lifecycle
processor exports what the batch processors still hold, on a bounded thread (an
exporter may hang), so a span queued there is not left behind; their idle
workers otherwise export it at their next tick. Once the lifecycle processor has
shut down, their workers are let go.

SDK private state read (the same in SDK 1.40 and 1.45):
``SynchronousMultiSpanProcessor._span_processors`` and ``_lock``, and
``BatchSpanProcessor._batch_processor``'s ``_exporter``, ``_export_lock``,
``_queue``, ``_max_export_batch_size``, ``_shutdown`` and ``_worker_awaken``. If
they are missing, nothing is taken over and the batch processors become the
lifecycle processor's delegate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_lifecycle._core import bounded
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.export import FanOutExporter
from otel_lifecycle._core.finalize import Reason
from otel_lifecycle._processor.processor import LifecycleSpanProcessor

_logger = logging.getLogger(__name__)

LOCK_WAIT = 0.5
"""At most this many seconds to wait for a batch processor's export lock on a flush
(also bounded by the flush's own budget)."""

_BATCH_STATE = (
    "_exporter",
    "_export_lock",
    "_queue",
    "_max_export_batch_size",
    "_shutdown",
    "_worker_awaken",
)
"""The SDK's private ``BatchProcessor`` attributes the handover uses."""


def install(active: SynchronousMultiSpanProcessor, processor: SpanProcessor) -> None:
    """Make ``processor`` the only one ``active`` calls, for every span that ends from now on."""
    with active._lock:
        active._span_processors = (processor,)


def take_over(
    active: SynchronousMultiSpanProcessor, overrides: dict[str, Any]
) -> LifecycleSpanProcessor | None:
    """Install a lifecycle processor exporting to the exporters of ``active``'s batch processors.

    ``overrides`` are the processor's keywords. Returns None, having changed
    nothing, unless every registered processor is the SDK's ``BatchSpanProcessor``.
    """
    registered = active._span_processors
    if not registered or not all(type(p) is BatchSpanProcessor for p in registered):
        return None
    batches: list[Any] = [getattr(p, "_batch_processor", None) for p in registered]
    if not all(hasattr(batch, name) for batch in batches for name in _BATCH_STATE):
        return None
    processor = SuccessorProcessor([SharedExporter(batch) for batch in batches], **overrides)
    install(active, processor)
    return processor


class SharedExporter(SpanExporter):
    """A batch processor's exporter, shared with it: called only under its export lock.

    The lock is read at each call: a forked child's batch processor has a new one.
    """

    def __init__(self, batch: Any) -> None:
        self._batch = batch
        self.exporter: SpanExporter = batch._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._batch._export_lock:
            return self.exporter.export(spans)

    def export_queued(self, wait: float) -> bool:
        """Export, on this thread, what the batch processor holds.

        False if its lock was not free within ``wait``: its worker is exporting.
        """
        batch = self._batch
        if not batch._queue:  # the usual case, without touching the lock
            return True
        lock = batch._export_lock
        if not lock.acquire(timeout=wait):
            return False
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            queue = batch._queue
            while queue:  # oldest at the right, as the batch processor pops them
                count = min(len(queue), batch._max_export_batch_size)
                spans: list[ReadableSpan] = [queue.pop() for _ in range(count)]
                try:
                    self.exporter.export(spans)
                except Exception:  # the exporter's failure must not reach the caller
                    _logger.exception("otel_lifecycle: exception while exporting spans")
        finally:
            detach(token)
            lock.release()
        return True

    def stop_worker(self) -> None:
        """Let the batch processor's worker end; only for after the exporter has shut down.

        A span that still reaches the batch processor then is refused, as the shut
        down exporter would refuse it.
        """
        self._batch._shutdown = True
        self._batch._worker_awaken.set()

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class SuccessorProcessor(LifecycleSpanProcessor):
    """A lifecycle processor that took over batch processors, exporting to their exporters.

    Before each flush and shutdown (the signal paths included), it exports what
    the batch processors still hold, so a span that ended through one of them just
    after the handover is exported before the exporters flush or shut down.
    """

    def __init__(self, exporters: Sequence[SharedExporter], **overrides: Any) -> None:
        self._shared = tuple(exporters)
        delegate = exporters[0] if len(exporters) == 1 else FanOutExporter(exporters)
        super().__init__(delegate, **overrides)
        bounded.reserve_for(self)  # for the shutdown at exit, when 3.12+ starts no thread

    def _export_queued(self, deadline: Deadline) -> bool:
        """Export what the batch processors hold, on a bounded thread: an exporter may hang,
        and a signal handler must not wait for a lock (README, "the rule for signal handlers")."""
        shared = self._shared
        wait = min(LOCK_WAIT, deadline.remaining())

        def export_all() -> bool:
            exported = [each.export_queued(wait) for each in shared]  # each, even after a False
            return all(exported)

        return bounded.call_within(export_all, deadline.remaining())

    def _flush_export(self, deadline: Deadline) -> bool:
        exported = self._export_queued(deadline)
        return super()._flush_export(deadline) and exported

    def _shut_down(self, reason: Reason, *, in_handler: bool = False) -> None:
        first = self._accepting  # the exporters are not shut down yet
        if first:
            self._export_queued(self._deadline())
        super()._shut_down(reason, in_handler=in_handler)
        if first and not in_handler:  # a signal handler's process is about to end anyway
            for shared in self._shared:
                shared.stop_worker()
