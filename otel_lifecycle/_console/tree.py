"""Spans as trees, one per trace: name, status, reason, conversation, duration.

Used by the demo (spans a backend received) and by the console exporter (spans of
one export batch): both hand in spans that look like :class:`TreeSpan`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from otel_lifecycle._core.semconv import CONVERSATION_ID, ERROR_TYPE, FINALIZED_BY, STATE

PARENT_NEVER_ARRIVED = "(parent never arrived)"


class TreeSpan(Protocol):
    """What drawing a span needs: ids in lowercase hex, a status name, attributes, timing."""

    @property
    def trace_id(self) -> str: ...
    @property
    def span_id(self) -> str: ...
    @property
    def parent_span_id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def start_time_unix_nano(self) -> int: ...
    @property
    def status_code(self) -> str: ...
    @property
    def attributes(self) -> Mapping[str, object]: ...
    @property
    def duration_ms(self) -> float: ...


S = TypeVar("S", bound=TreeSpan)


class Forest(Generic[S]):
    """Spans arranged by parent; a span whose parent is not among them is a top-level orphan."""

    def __init__(self, spans: Iterable[S]) -> None:
        ordered = sorted(spans, key=lambda span: span.start_time_unix_nano)
        self._ids = {span.span_id for span in ordered}
        self._children: dict[str | None, list[S]] = defaultdict(list)
        for span in ordered:
            parent = span.parent_span_id if span.parent_span_id in self._ids else None
            self._children[parent].append(span)

    def children(self, span: S | None) -> Sequence[S]:
        """The spans under ``span`` (under None: the roots and orphans), by start time."""
        return self._children.get(None if span is None else span.span_id, [])

    def is_orphan(self, span: S) -> bool:
        """True when the span has a parent that is not among the spans."""
        return span.parent_span_id is not None and span.parent_span_id not in self._ids


def by_trace(spans: Iterable[S]) -> dict[str, list[S]]:
    """Spans grouped by trace id, traces in the order their first span comes."""
    grouped: dict[str, list[S]] = defaultdict(list)
    for span in spans:
        grouped[span.trace_id].append(span)
    return grouped


def describe(span: TreeSpan) -> str:
    """One line for a span: name, status, reason, finalizer, state, conversation, duration."""
    parts = [span.name, span.status_code]
    for label, key in (
        ("reason", ERROR_TYPE),
        ("finalized_by", FINALIZED_BY),
        ("state", STATE),
        ("conversation", CONVERSATION_ID),
    ):
        value = span.attributes.get(key)
        if value is not None:
            parts.append(f"{label}={value}")
    parts.append(f"{span.duration_ms:.0f} ms")
    return "  ".join(parts)


def render_trees(spans: Iterable[TreeSpan], orphan_marker: str = PARENT_NEVER_ARRIVED) -> list[str]:
    """Lines showing each trace as a tree; a span whose parent is missing gets ``orphan_marker``."""
    lines: list[str] = []
    for trace_id, members in by_trace(spans).items():
        forest = Forest(members)
        lines.append(f"trace {trace_id}")
        pending = [(span, 1) for span in reversed(forest.children(None))]
        while pending:
            span, depth = pending.pop()
            marker = f"  {orphan_marker}" if forest.is_orphan(span) else ""
            lines.append(f"{'  ' * depth}- {describe(span)}{marker}")
            pending.extend((child, depth + 1) for child in reversed(forest.children(span)))
    return lines
