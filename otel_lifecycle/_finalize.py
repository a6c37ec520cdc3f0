"""Finalizing a live span: a terminal status that says why, then ``end()``.

``Span.end()`` is idempotent and thread-safe, so ending the live span kept from
``on_start`` exports it exactly once, whoever ends it first.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.trace import Span
from opentelemetry.trace import Status, StatusCode

from otel_lifecycle._semconv import CONVERSATION_ID, ERROR_TYPE, FINALIZED_BY
from otel_lifecycle._settings import check_text


@dataclass(frozen=True)
class Reason:
    """How a span was finalized: ``error.type``, ``otel_lifecycle.finalized_by``, status text."""

    error_type: str
    finalized_by: str
    description: str


SHUTDOWN = Reason("shutdown", "shutdown", "span not ended before tracer provider shutdown")
TIMEOUT = Reason("timeout", "timeout", "span not ended before its root timeout")
FLUSH = Reason("flush", "flush", "span not ended before force_flush")
PROCESS_CRASH = Reason(
    "process_crash",
    "process_crash",
    "span not ended: its process died (recovered from the crash journal)",
)

_KNOWN = {reason.error_type: reason for reason in (SHUTDOWN, TIMEOUT, FLUSH)}


def reason_named(name: str) -> Reason:
    """The reason for a public ``finalize_open_spans(name)`` call."""
    check_text("reason", name)
    return _KNOWN.get(name) or Reason(name, name, f"span not ended: finalized ({name})")


def reason_attributes(reason: Reason, conversation_id: str | None) -> dict[str, object]:
    """The attributes a finalized span gets: the reason and the conversation id."""
    attributes: dict[str, object] = {
        ERROR_TYPE: reason.error_type,
        FINALIZED_BY: reason.finalized_by,
    }
    if conversation_id is not None:
        attributes[CONVERSATION_ID] = conversation_id
    return attributes


def finalize_span(
    span: Span,
    reason: Reason,
    conversation_id: str | None,
    end_time: int,
) -> bool:
    """Stamp ``reason`` on the live ``span`` and end it at ``end_time``.

    Returns True if this call ended the span, False if the application ended it
    first (then its own status and attributes stand).
    """
    if not span.is_recording():
        return False
    span.set_attributes(reason_attributes(reason, conversation_id))  # type: ignore[arg-type]
    span.set_status(Status(StatusCode.ERROR, reason.description))
    span.end(end_time)
    return span.end_time == end_time
