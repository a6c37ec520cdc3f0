"""In-progress markers: what ``force_flush`` exports for a root that is still open.

A marker is a zero-duration child of the open root, at the root's start time,
with a new span id, the root's name, kind, resource, scope and attributes, plus
``otel_lifecycle.state="in_progress"`` and the conversation id. Backends show
the root's name, input and conversation while it runs; the live root itself is
not touched and is exported when it ends.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanContext

from otel_lifecycle._core.conversation import ConversationIds
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.export import ExportPath
from otel_lifecycle._core.open_spans import OpenSpans
from otel_lifecycle._core.semconv import CONVERSATION_ID, STATE, STATE_IN_PROGRESS


class Markers:
    """One marker per open root, the first time a flush finds it open."""

    __slots__ = ("_ids", "sent")

    def __init__(self) -> None:
        self.sent: dict[int, object] = {}
        """The open roots that have a marker already, or are getting one (a root leaves when
        it ends), each with the token of the flush that took it."""
        self._ids = RandomIdGenerator()

    def snapshot(
        self,
        open_spans: OpenSpans,
        conversations: ConversationIds,
        path: ExportPath,
        emit: Callable[[ReadableSpan], None],
        deadline: Deadline,
    ) -> None:
        """Emit a marker for each open root that has none, while the budget lasts.

        A root is entered in ``sent`` before waiting for room (one flush takes it,
        with ``setdefault``), and checked open after: a root whose ``on_end`` ran
        meanwhile either removed the entry or was already ended when it is
        checked, so it gets no marker and leaves no entry behind.
        """
        sent = self.sent
        for span_id in list(open_spans.roots):
            root = open_spans.spans.get(span_id)
            token = object()
            if root is None or sent.setdefault(span_id, token) is not token:
                continue
            if not path.wait_for_room(deadline):
                sent.pop(span_id, None)
                return
            if not root.is_recording():
                sent.pop(span_id, None)
                continue
            emit(in_progress_marker(root, conversations.of_span(root), self._ids))


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
