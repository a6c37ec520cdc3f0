"""In-progress markers: what ``force_flush`` exports for a root that is still open.

A marker is a zero-duration child of the open root, at the root's start time,
with a new span id, the root's name, kind, resource, scope and attributes, plus
``otel_lifecycle.state="in_progress"`` and the conversation id. Backends show
the root's name, input and conversation while it runs; the live root itself is
not touched and is exported when it ends.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanContext

from otel_lifecycle._core.semconv import CONVERSATION_ID, STATE, STATE_IN_PROGRESS


def in_progress_marker(
    root: Span, conversation_id: str | None, id_generator: IdGenerator
) -> ReadableSpan:
    """A marker for the open ``root``."""
    context = root.get_span_context()
    attributes = dict(root.attributes or {})
    attributes[STATE] = STATE_IN_PROGRESS
    if conversation_id is not None and CONVERSATION_ID not in attributes:
        attributes[CONVERSATION_ID] = conversation_id
    return ReadableSpan(
        name=root.name,
        context=SpanContext(
            context.trace_id,
            id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=context.trace_flags,
            trace_state=context.trace_state,
        ),
        parent=context,
        resource=root.resource,
        attributes=attributes,
        kind=root.kind,
        start_time=root.start_time,
        end_time=root.start_time,
        instrumentation_scope=root.instrumentation_scope,
    )
