"""Reasons, and how a span that ended badly is given a terminal status that says why.

One table of reasons; one function, :func:`stamped`, that turns an ended span
into the copy that is exported with ERROR, ``error.type``, the reason and the
conversation id. The live span is never written to: the processor ends it with
the public ``end()`` (idempotent and thread-safe, so whoever ends it first wins)
and stamps the frozen copy on its way to the exporter, only when its own
``end()`` won. A span the application ended first is exported as the
application ended it.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
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


def stamped(
    span: ReadableSpan,
    reason: Reason,
    conversation_id: str | None,
    *,
    finalized: bool,
    end_time: int | None = None,
) -> ReadableSpan:
    """A copy of ``span`` with status ERROR and ``reason``, for export.

    ``finalized``: the processor ended it (adds ``otel_lifecycle.finalized_by``);
    otherwise the application ended it after the reason was recorded (a signal,
    an unhandled exception). ``end_time`` ends a copy of a span still open. The
    span's own conversation id, if any, is kept.
    """
    own = span._attributes
    if own is not None and CONVERSATION_ID in own:
        conversation_id = None
    return _copy(
        span,
        reason_attributes(reason, conversation_id, finalized=finalized),
        Status(StatusCode.ERROR, reason.description),
        end_time,
    )


def with_attribute(span: ReadableSpan, key: str, value: int | str) -> ReadableSpan:
    """A copy of the ended ``span`` with one more attribute."""
    return _copy(span, {key: value}, span.status, None)


def _copy(
    span: ReadableSpan, extra: dict[str, object], status: Status, end_time: int | None
) -> ReadableSpan:
    """A copy of ``span`` with ``extra`` attributes, ``status`` and maybe an end time.

    The SDK's own attribute, event and link containers are reused or copied with
    their dropped counts, so the exported counts stay true.
    """
    original = span._attributes
    attributes = BoundedAttributes(
        maxlen=None,
        attributes={**(original or {}), **extra},  # type: ignore[dict-item]
        immutable=True,
    )
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
