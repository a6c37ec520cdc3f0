"""Render received spans as trees, one per trace: name, status, reason, conversation, duration."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from otel_lifecycle._receiver import ReceivedSpan
from otel_lifecycle._semconv import CONVERSATION_ID, ERROR_TYPE, STATE


def describe(span: ReceivedSpan) -> str:
    """One line for a span."""
    parts = [span.name, span.status_code]
    reason = span.attributes.get(ERROR_TYPE)
    if reason is not None:
        parts.append(f"reason={reason}")
    state = span.attributes.get(STATE)
    if state is not None:
        parts.append(f"state={state}")
    conversation = span.attributes.get(CONVERSATION_ID)
    if conversation is not None:
        parts.append(f"conversation={conversation}")
    parts.append(f"{span.duration_ms:.0f} ms")
    return "  ".join(str(part) for part in parts)


def render_trees(spans: Iterable[ReceivedSpan]) -> list[str]:
    """Lines showing each trace as a tree; spans whose parent never arrived are marked."""
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    lines: list[str] = []
    for trace_id, members in by_trace.items():
        lines.append(f"trace {trace_id[:8]}")
        lines.extend(_trace_lines(members))
    return lines


def _trace_lines(members: list[ReceivedSpan]) -> list[str]:
    ids = {span.span_id for span in members}
    children: dict[str | None, list[ReceivedSpan]] = defaultdict(list)
    for span in sorted(members, key=lambda span: span.start_time_unix_nano):
        children[span.parent_span_id if span.parent_span_id in ids else None].append(span)
    lines: list[str] = []
    pending = [(span, 1) for span in reversed(children[None])]
    while pending:
        span, depth = pending.pop()
        orphan = span.parent_span_id is not None and span.parent_span_id not in ids
        marker = "  (parent never arrived)" if orphan else ""
        lines.append(f"{'  ' * depth}- {describe(span)}{marker}")
        pending.extend((child, depth + 1) for child in reversed(children[span.span_id]))
    return lines
