"""The export path through a span processor given as the delegate, called as the SDK calls it.

The same interface as the export stage (``ExportPath``): every span goes to the
processor's ``on_end`` (which queues or drops it by its own rules); flushing runs
in the caller's thread with the remaining budget, as the SDK's provider would
call it; shutting down is a bounded call, so a delegate that hangs cannot hold
the process past its budget. The thread for that call is reserved when the path
is made (and again in a forked child): at interpreter exit none can be started.
"""

from __future__ import annotations

import os
import weakref

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_lifecycle._core import bounded
from otel_lifecycle._core.deadline import Deadline


class DelegatePath:
    """A span processor as the export path: nothing is refused, nothing waits for room."""

    closed = False

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor = processor
        bounded.reserve()
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reserve_in_child(reference))

    def emit(self, span: ReadableSpan) -> bool:
        """Hand ``span`` to the processor."""
        self.processor.on_end(span)
        return True

    emit_priority = emit

    def wait_for_room(self, deadline: Deadline) -> bool:
        """The processor has its own queue: there is always room here."""
        return True

    def queued(self, span_id: int) -> bool:
        """Whether ``span_id`` waits here: what ``on_end`` got is the processor's already."""
        return False

    def flush(self, timeout: float) -> bool:
        """The processor's ``force_flush`` with ``timeout``; False when no budget is left."""
        if timeout <= 0:
            return False
        return self.processor.force_flush(int(timeout * 1000)) is not False

    def shutdown(self, timeout: float) -> bool:
        """The processor's ``shutdown``, waited for at most ``timeout`` seconds."""
        return bounded.call_within(self.processor.shutdown, timeout)


def _reserve_in_child(reference: weakref.ref[DelegatePath]) -> None:
    if reference() is not None:
        bounded.reserve()
