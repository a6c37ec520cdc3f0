"""The export path through a span processor given as the delegate, called as the SDK calls it.

The same interface as the export stage (``ExportPath``): every span goes to the
processor's ``on_end`` (which queues or drops it by its own rules); flushing and
shutting down are bounded calls with the remaining budget, so a delegate that
hangs cannot hold the caller past it (the SDK's ``BatchSpanProcessor`` ignores
the timeout its ``force_flush`` is given). The thread for those calls is
reserved when the path is made (and again in a forked child): at interpreter
exit none can be started, and calls one after another reuse it.

In a signal handler the delegate's code is never called in the handler's
thread: it may take a lock the interrupted code holds (a ``BatchSpanProcessor``
takes its export lock in ``force_flush`` and sets an event in ``on_end``). From
``enter_handler()`` on, spans wait in a deque, and the flush or the shutdown
that ends the handler's work hands them over on a bounded thread.
"""

from __future__ import annotations

from collections import deque

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_lifecycle._core import bounded
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.export import Exported


class DelegatePath:
    """A span processor as the export path: nothing is refused, nothing waits for room."""

    closed = False

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor = processor
        self.exported: Exported | None = None
        """Told of each span handed over: the processor exports it by its own rules."""
        self._deferring = False
        self._deferred: deque[ReadableSpan] = deque()
        bounded.reserve_for(self)

    def emit(self, span: ReadableSpan) -> bool:
        """Hand ``span`` to the processor (in a signal handler: keep it for a bounded thread)."""
        if self._deferring:
            self._deferred.append(span)
            return True
        if self._deferred:
            self._hand_over()
        self.processor.on_end(span)
        if self.exported is not None:
            self.exported((span,))
        return True

    emit_priority = emit

    def enter_handler(self) -> None:
        """A signal handler starts its work: keep spans until its flush or shutdown."""
        self._deferring = True

    def _hand_over(self) -> None:
        """Give the processor the spans kept during a signal handler's work."""
        deferred = self._deferred
        while True:
            try:
                span = deferred.popleft()
            except IndexError:
                return
            self.processor.on_end(span)
            if self.exported is not None:
                self.exported((span,))

    def wait_for_room(self, deadline: Deadline) -> bool:
        """The processor has its own queue: there is always room here."""
        return True

    def queued(self, span_id: int) -> bool:
        """Whether ``span_id`` waits here: what ``on_end`` got is the processor's already."""
        return False

    def flush(self, timeout: float) -> bool:
        """The processor's ``force_flush`` with ``timeout``, waited for at most that long."""
        if timeout <= 0:
            return False
        millis = int(timeout * 1000)
        self._deferring = False
        return bounded.call_within(lambda: self._flush(millis), timeout)

    def _flush(self, millis: int) -> bool:
        self._hand_over()
        return self.processor.force_flush(millis) is not False

    def shutdown(self, timeout: float) -> bool:
        """The processor's ``shutdown``, waited for at most ``timeout`` seconds."""
        self._deferring = False
        return bounded.call_within(self._shut_down, timeout)

    def _shut_down(self) -> None:
        self._hand_over()
        self.processor.shutdown()
