"""A compact console exporter for development: each export batch printed as trees.

One line per span, indented under its parent: name, status, ``error.type``
(``reason=``), ``otel_lifecycle.finalized_by``, the conversation id, duration.

Spans arrive in batches (those the batch processor collected since the previous
export), so the tree is drawn per batch: the batch's spans are grouped by trace,
each trace is introduced by its full trace id, and a span is drawn under its
parent when both are in the batch. A span whose parent is in another batch
(exported earlier or later, or never), or is remote, starts its own tree, marked
``(parent not in this batch)``. Children usually end shortly before their parent,
so with the batch processor's default 5 s delay most traces print whole.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, format_span_id, format_trace_id

from otel_lifecycle._console.tree import render_trees

NOT_IN_BATCH = "(parent not in this batch)"


@dataclass(frozen=True)
class _SpanView:
    """The parts of a ``ReadableSpan`` a tree line shows (a ``_tree.TreeSpan``)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_time_unix_nano: int
    status_code: str
    attributes: Mapping[str, object]
    duration_ms: float


def _view(span: ReadableSpan, context: SpanContext) -> _SpanView:
    start = span.start_time or 0
    end = span.end_time or start
    return _SpanView(
        trace_id=format_trace_id(context.trace_id),
        span_id=format_span_id(context.span_id),
        parent_span_id=None if span.parent is None else format_span_id(span.parent.span_id),
        name=span.name,
        start_time_unix_nano=start,
        status_code=span.status.status_code.name,
        attributes=dict(span.attributes or {}),
        duration_ms=(end - start) / 1e6,
    )


class ConsoleTreeSpanExporter(SpanExporter):
    """Print each batch of spans as compact trees, one line per span.

    Writes to ``out`` (default: ``sys.stdout`` at export time). Selected by
    ``OTEL_TRACES_EXPORTER=lifecycle_console``.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        if out is not None and not callable(getattr(out, "write", None)):
            raise TypeError(f"out must be a text stream or None, got {type(out).__name__}")
        self._out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the batch as trees; FAILURE if the stream cannot be written."""
        out = sys.stdout if self._out is None else self._out
        views = [_view(span, context) for span in spans if (context := span.context) is not None]
        lines = render_trees(views, NOT_IN_BATCH)
        try:
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()
        except (OSError, ValueError):
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing is buffered here (the base class returns None)."""
        return True
