"""The open spans: started, not yet ended, grouped by trace.

The hot path (``add``/``remove``, called from ``on_start``/``on_end``) takes no
global lock. Each trace has its own lock, so threads working on different traces
never wait for each other; the set of all open span keys is a plain ``set`` whose
``add``/``discard``/``len`` are atomic under the GIL and give an exact count for
the cap. A trace's state is retired and forgotten when its last open span ends.
"""

from __future__ import annotations

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

    __slots__ = ("_keys", "_max_spans", "_traces")

    def __init__(self, max_spans: int) -> None:
        self._max_spans = max_spans
        self._traces: dict[int, TraceState] = {}
        self._keys: set[tuple[int, int]] = set()

    def add(self, span: Span, started_at: float | None) -> TraceState | None:
        """Track ``span``; ``started_at`` is given for local roots only.

        Returns the trace's state, or None when the cap is reached.
        """
        if len(self._keys) >= self._max_spans:
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
                self._keys.add((trace_id, span_id))
                state.spans[span_id] = span
                if started_at is not None:
                    state.roots[span_id] = started_at
                return state

    def remove(self, trace_id: int, span_id: int) -> bool:
        """Stop tracking a span that ended; False if it was not tracked."""
        state = self._traces.get(trace_id)
        if state is None:
            return False
        with state.lock:
            if state.spans.pop(span_id, None) is None:
                return False
            self._keys.discard((trace_id, span_id))
            if state.roots:
                state.roots.pop(span_id, None)
                state.snapshotted.discard(span_id)
            if not state.spans:
                state.retired = True
                self._traces.pop(trace_id, None)
        return True

    def traces(self) -> list[TraceState]:
        """A snapshot of the open traces' states."""
        return list(self._traces.values())

    def counts(self) -> tuple[int, int]:
        """(open traces, open spans)."""
        return len(self._traces), len(self._keys)

    def clear(self) -> None:
        """Forget everything (in a forked child: the parent's spans are the parent's)."""
        self._traces = {}
        self._keys = set()


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
