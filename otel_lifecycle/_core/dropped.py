"""Spans of a trace that the full normal lane refused, reported on the trace's root.

A backend can then tell a trace that lost children to overflow from one that
had none (``otel_lifecycle.dropped_descendants``).
"""

from __future__ import annotations

import contextlib

from opentelemetry.sdk.trace import ReadableSpan

from otel_lifecycle._core.finalize import with_attribute
from otel_lifecycle._core.semconv import DROPPED_DESCENDANTS


class DroppedDescendants:
    """How many spans of each trace the full normal lane refused, until the trace's root ends.

    The root then carries the count (``otel_lifecycle.dropped_descendants``), so a
    backend can tell a trace that lost children from one that had none. Counts
    are kept for ``MEMORY`` traces at most, the oldest forgotten first.
    """

    MEMORY = 4096

    __slots__ = ("by_trace",)

    def __init__(self) -> None:
        self.by_trace: dict[int, int] = {}

    def add(self, trace_id: int) -> None:
        """One more span of ``trace_id`` was refused."""
        by_trace = self.by_trace
        by_trace[trace_id] = by_trace.get(trace_id, 0) + 1
        if len(by_trace) > self.MEMORY:
            with contextlib.suppress(RuntimeError, StopIteration):  # changed meanwhile: next time
                by_trace.pop(next(iter(by_trace)), None)

    def reported_on(self, root: ReadableSpan, trace_id: int) -> ReadableSpan:
        """The ending local ``root``, with its trace's count if any span of it was refused."""
        dropped = self.by_trace.pop(trace_id, 0)
        return with_attribute(root, DROPPED_DESCENDANTS, dropped) if dropped else root
