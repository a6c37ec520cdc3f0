"""The open spans: started, not yet ended, grouped by trace.

The hot path (``add``/``remove``, called from ``on_start``/``on_end``) takes no
global lock. Each trace has its own lock, so threads working on different traces
never wait for each other. The cap compares two counters, each advanced with
``next()`` on an ``itertools.count`` (atomic under the GIL): the open count it
gives may lag by the few spans other threads are starting or ending at that
instant, never more. A trace's state is retired and forgotten when its last open
span ends.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable

from opentelemetry.sdk.trace import Span


class TraceState:
    """What is known about one trace in this process while it has open spans."""

    __slots__ = ("conversation_id", "lock", "retired", "roots", "snapshotted", "spans")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: dict[int, Span] = {}
        self.roots: dict[int, float] = {}
        """Local roots (parent absent or remote) by span id, with their start on the clock."""
        self.snapshotted: set[int] = set()
        self.conversation_id: str | None = None
        self.retired = False


class OpenSpans:
    """Open spans by trace, bounded by ``max_spans``."""

    __slots__ = ("_added", "_added_total", "_max_spans", "_removed", "_removed_total", "_traces")

    def __init__(self, max_spans: int) -> None:
        self._max_spans = max_spans
        self._traces: dict[int, TraceState] = {}
        self._added = itertools.count(1)
        self._removed = itertools.count(1)
        self._added_total = 0
        self._removed_total = 0

    def add(self, span: Span, started_at: float | None) -> TraceState | None:
        """Track ``span``; ``started_at`` is given for local roots only.

        Returns the trace's state, or None when the cap is reached.
        """
        if self._added_total - self._removed_total >= self._max_spans:
            return None
        context = span.get_span_context()
        trace_id, span_id = context.trace_id, context.span_id
        while True:
            state = self._traces.get(trace_id)
            if state is None:
                state = self._traces.setdefault(trace_id, TraceState())
            with state.lock:
                if state.retired:
                    continue
                state.spans[span_id] = span
                if started_at is not None:
                    state.roots[span_id] = started_at
                break
        self._added_total = next(self._added)
        return state

    def remove(self, trace_id: int, span_id: int) -> bool:
        """Stop tracking a span that ended; False if it was not tracked.

        Popping a key is atomic, so only the last span of a trace takes the
        trace's lock, to retire the state unless a span was added meanwhile.
        """
        state = self._traces.get(trace_id)
        if state is None or state.spans.pop(span_id, None) is None:
            return False
        if state.roots:
            state.roots.pop(span_id, None)
            state.snapshotted.discard(span_id)
        if not state.spans:
            with state.lock:
                if not state.spans and not state.retired:
                    state.retired = True
                    self._traces.pop(trace_id, None)
        self._removed_total = next(self._removed)
        return True

    def traces(self) -> list[TraceState]:
        """A snapshot of the open traces' states."""
        return list(self._traces.values())

    def counts(self) -> tuple[int, int]:
        """(open traces, open spans), counted exactly."""
        traces = self.traces()
        return len(traces), sum(len(state.spans) for state in traces)


def finalization_order(state: TraceState, root_ids: Iterable[int] | None = None) -> list[Span]:
    """Open spans of a trace, deepest first, so children end before their parents.

    With ``root_ids``, only those spans and their open descendants.
    """
    with state.lock:
        spans = dict(state.spans)
    lineages = {span_id: _lineage(span_id, spans) for span_id in spans}
    wanted = None if root_ids is None else set(root_ids)
    selected = [
        span_id
        for span_id, lineage in lineages.items()
        if wanted is None or not wanted.isdisjoint(lineage)
    ]
    selected.sort(key=lambda span_id: len(lineages[span_id]), reverse=True)
    return [spans[span_id] for span_id in selected]


def _lineage(span_id: int, spans: dict[int, Span]) -> list[int]:
    """The span and its open ancestors in this trace, nearest first."""
    lineage: list[int] = []
    current: int | None = span_id
    while current is not None and current in spans and len(lineage) <= len(spans):
        lineage.append(current)
        parent = spans[current].parent
        current = parent.span_id if parent is not None else None
    return lineage
