"""Reasons, and how a span that ended badly is given a terminal status that says why.

One table of reasons. A finalizer calls :func:`stamp` on the live span (ERROR,
``error.type``, ``otel_lifecycle.finalized_by``, the conversation id) while it
holds the span's lock and sees it open, then ends it with the public ``end()``.
If the application's own ``end()`` gets in between, the span is exported
:func:`undone`: as the application ended it. Spans that cannot be stamped live
are exported as a :func:`stamped` copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import Status, StatusCode

from otel_lifecycle._semconv import CONVERSATION_ID, ERROR_TYPE, FINALIZED_BY
from otel_lifecycle._settings import check_text


@dataclass(frozen=True)
class Reason:
    """How a span ended badly: ``error.type``, ``otel_lifecycle.finalized_by``, status text."""

    error_type: str
    finalized_by: str
    description: str


SHUTDOWN = Reason("shutdown", "shutdown", "span not ended before tracer provider shutdown")
TIMEOUT = Reason("timeout", "timeout", "span not ended before its root timeout")
FLUSH = Reason("flush", "flush", "span not ended before force_flush")
SIGTERM = Reason("SIGTERM", "signal", "span not ended before the process received SIGTERM")
SIGINT = Reason(
    "KeyboardInterrupt", "signal", "span open when the process received SIGINT (KeyboardInterrupt)"
)
PROCESS_CRASH = Reason(
    "process_crash",
    "process_crash",
    "span not ended: its process died (recovered from the crash journal)",
)

_BY_NAME = {reason.error_type: reason for reason in (SHUTDOWN, TIMEOUT, FLUSH, SIGTERM)}


def reason_named(name: str) -> Reason:
    """The reason for a public ``finalize_open_spans(name)`` call."""
    check_text("reason", name)
    return _BY_NAME.get(name) or Reason(name, name, f"span not ended: finalized ({name})")


def unhandled(exception: BaseException, *, whole_process: bool) -> Reason:
    """The reason recorded on open roots when ``exception`` escapes a thread or the program."""
    name = type(exception).__name__
    where = "the process" if whole_process else "its thread"
    return Reason(name, "exception", f"span not ended before an unhandled {name} ended {where}")


def reason_attributes(
    reason: Reason, conversation_id: str | None, *, finalized: bool = True
) -> dict[str, object]:
    """What a span ended badly gets: ``error.type``, the finalizer, the conversation id."""
    attributes: dict[str, object] = {ERROR_TYPE: reason.error_type}
    if finalized:
        attributes[FINALIZED_BY] = reason.finalized_by
    if conversation_id is not None:
        attributes[CONVERSATION_ID] = conversation_id
    return attributes


Undo = tuple[dict[str, object], Status]
"""What :func:`stamp` replaced on a live span: the previous values of its keys, and its status.

A missing key's previous value is :data:`_MISSING`."""

_MISSING = object()


def stamp(span: Span, reason: Reason, conversation_id: str | None) -> Undo:
    """Give the live, open ``span`` ERROR and ``reason``; the caller holds the span's lock.

    Written straight into the span (``set_attributes`` would take the lock the
    caller holds, and validate values that are ours). Returns what it replaced,
    so a copy can show the span as it was if the application's ``end()`` wins
    the race with the finalizer's.
    """
    values = span._attributes._dict  # type: ignore[union-attr]
    if CONVERSATION_ID in values:
        conversation_id = None
    extra = reason_attributes(reason, conversation_id)
    undo = ({key: values.get(key, _MISSING) for key in extra}, span._status)
    values.update(extra)
    span._status = Status(StatusCode.ERROR, reason.description)
    return undo


def undone(span: ReadableSpan, undo: Undo) -> ReadableSpan:
    """A copy of the ended ``span`` as it was before :func:`stamp`."""
    previous, status = undo
    values = dict(_values(span))
    for key, value in previous.items():
        if value is _MISSING:
            values.pop(key, None)
        else:
            values[key] = value
    return _copy(span, values, status, None)


def stamped(
    span: ReadableSpan,
    reason: Reason,
    conversation_id: str | None,
    *,
    finalized: bool,
    end_time: int | None = None,
) -> ReadableSpan:
    """A copy of ``span`` with status ERROR and ``reason``, for export.

    For spans that cannot be stamped live: the application ended them after a
    reason was recorded (``finalized=False``: a signal, an unhandled exception),
    or their lock is held by the thread a dying process interrupted
    (``end_time`` ends the copy). The span's own conversation id is kept.
    """
    values = _values(span)
    if CONVERSATION_ID in values:
        conversation_id = None
    extra = reason_attributes(reason, conversation_id, finalized=finalized)
    return _copy(
        span,
        {**values, **extra},
        Status(StatusCode.ERROR, reason.description),
        end_time,
    )


def with_attribute(span: ReadableSpan, key: str, value: int | str) -> ReadableSpan:
    """A copy of the ended ``span`` with one more attribute."""
    return _copy(span, {**_values(span), key: value}, span.status, None)


def _values(span: ReadableSpan) -> dict[str, object]:
    original = span._attributes
    if isinstance(original, BoundedAttributes):
        return original._dict  # type: ignore[return-value]
    return dict(original or {})


def _copy(
    span: ReadableSpan, values: dict[str, object], status: Status, end_time: int | None
) -> ReadableSpan:
    """A copy of ``span`` with these attribute ``values``, ``status`` and maybe an end time.

    The values were validated when they were set (ours are strings and ints), so
    the container is filled directly; the SDK's dropped-attribute count and its
    event and link lists (with their dropped counts) are kept.
    """
    original = span._attributes
    attributes = BoundedAttributes(maxlen=None, immutable=True)
    attributes._dict = values  # type: ignore[assignment]
    if isinstance(original, BoundedAttributes):
        attributes.dropped = original.dropped
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span._events,
        links=span._links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time if end_time is None else end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
