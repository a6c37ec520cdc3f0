"""Received spans as trees, one per trace: name, status, reason, conversation, duration."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from otel_lifecycle._receiver import ReceivedSpan
from otel_lifecycle._semconv import CONVERSATION_ID, ERROR_TYPE, STATE


class Forest:
    """Spans arranged by parent; a span whose parent never arrived is a top-level orphan."""

    def __init__(self, spans: Iterable[ReceivedSpan]) -> None:
        ordered = sorted(spans, key=lambda span: span.start_time_unix_nano)
        self._ids = {span.span_id for span in ordered}
        self._children: dict[str | None, list[ReceivedSpan]] = defaultdict(list)
        for span in ordered:
            parent = span.parent_span_id if span.parent_span_id in self._ids else None
            self._children[parent].append(span)

    def children(self, span: ReceivedSpan | None) -> Sequence[ReceivedSpan]:
        """The spans under ``span`` (under None: the roots and orphans), by start time."""
        return self._children.get(None if span is None else span.span_id, [])

    def is_orphan(self, span: ReceivedSpan) -> bool:
        """True when the span has a parent that never arrived."""
        return span.parent_span_id is not None and span.parent_span_id not in self._ids


def describe(span: ReceivedSpan) -> str:
    """One line for a span."""
    parts = [span.name, span.status_code]
    for label, key in (("reason", ERROR_TYPE), ("state", STATE), ("conversation", CONVERSATION_ID)):
        value = span.attributes.get(key)
        if value is not None:
            parts.append(f"{label}={value}")
    parts.append(f"{span.duration_ms:.0f} ms")
    return "  ".join(parts)


def render_trees(spans: Iterable[ReceivedSpan]) -> list[str]:
    """Lines showing each trace as a tree; spans whose parent never arrived are marked."""
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    lines: list[str] = []
    for trace_id, members in by_trace.items():
        forest = Forest(members)
        lines.append(f"trace {trace_id[:8]}")
        pending = [(span, 1) for span in reversed(forest.children(None))]
        while pending:
            span, depth = pending.pop()
            marker = "  (parent never arrived)" if forest.is_orphan(span) else ""
            lines.append(f"{'  ' * depth}- {describe(span)}{marker}")
            pending.extend((child, depth + 1) for child in reversed(forest.children(span)))
    return lines
