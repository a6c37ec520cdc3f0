"""Reasons, and how a span that ended badly is given a terminal status that says why.

One table of reasons, and :func:`fail_span`, the one way a live span is given
ERROR and an ``error.type`` through the public span API (``fail()``, an
exception escaping a traced body). A finalizer ends the span with the public
``end()`` and, once that ``end()`` has won the race with the application's,
calls :func:`stamp` on the span (ERROR, ``error.type``,
``otel_lifecycle.finalized_by``, the conversation id) in ``_on_ending``: after
``end()`` froze it, before any processor's ``on_end``. Spans that cannot be
stamped there are exported as a :func:`stamped` copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Status, StatusCode

from otel_lifecycle._core.semconv import CONVERSATION_ID, ERROR_TYPE, FINALIZED_BY
from otel_lifecycle._settings.checks import check_text

T = TypeVar("T")


@dataclass(frozen=True)
class Reason:
    """How a span ended badly: ``error.type``, ``otel_lifecycle.finalized_by``, status text."""

    error_type: str
    finalized_by: str
    description: str
    status: Status = field(init=False, compare=False, repr=False)
    """The terminal status: ERROR with the description (one object, compared by identity)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(StatusCode.ERROR, self.description))


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
CELERY_TIME_LIMIT = Reason(
    "TimeLimitExceeded",
    "signal",
    "span not ended before the task's hard time limit: Celery terminated its worker process",
)
CELERY_REVOKED = Reason(
    "TaskRevokedError",
    "signal",
    "span not ended before the task was revoked with terminate=True: Celery terminated its "
    "worker process",
)
CELERY_COLD_SHUTDOWN = Reason(
    "cold_shutdown",
    "signal",
    "span not ended before a cold shutdown of the Celery worker terminated its worker process",
)
GUNICORN_WORKER_TIMEOUT = Reason(
    "worker_timeout",
    "signal",
    "span not ended before gunicorn's master aborted the worker stuck past its --timeout",
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


def fail_span(span: trace.Span, error_type: str, description: str) -> None:
    """Give the live ``span`` status ERROR with ``description``, and ``error.type``."""
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, description))


def stamp(span: Span, reason: Reason, conversation_of: Callable[[Span], str | None]) -> None:
    """Give ``span``, whose ``end()`` by a finalizer just froze it, ERROR and ``reason``.

    ``conversation_of`` gives the id to add when the span has no
    ``gen_ai.conversation.id`` of its own.

    Written straight into the span: its attributes are immutable once ended, and
    the values are ours. Nobody else writes to an ended span, so no lock is taken.
    """
    values = span._attributes._dict  # type: ignore[union-attr]
    values[ERROR_TYPE] = reason.error_type
    values[FINALIZED_BY] = reason.finalized_by
    if CONVERSATION_ID not in values:
        conversation_id = conversation_of(span)
        if conversation_id is not None:
            values[CONVERSATION_ID] = conversation_id
    span._status = reason.status


def stamped(
    span: ReadableSpan,
    reason: Reason,
    conversation_id: str | None,
    *,
    finalized: bool,
    end_time: int | None = None,
    being_set: Mapping[str, object] | None = None,
) -> ReadableSpan:
    """A copy of ``span`` with status ERROR and ``reason``, for export.

    For spans that cannot be stamped live: the application ended them after a
    reason was recorded (``finalized=False``: a signal, an unhandled exception),
    their lock is held by the thread a dying process interrupted (``end_time``
    ends the copy), or the finalizer's ``end()`` did not reach the processor's
    ``_on_ending`` (a processor wrapping it that does not forward that hook).
    The span's own conversation id is kept. ``being_set``: an attribute the
    interrupted thread was writing (the SDK deletes a key before it writes it
    again, so the span may lack it for a moment).
    """
    values = _values(span)
    if CONVERSATION_ID in values:
        conversation_id = None
    extra = reason_attributes(reason, conversation_id, finalized=finalized)
    return _copy(
        span,
        {**values, **(being_set or {}), **extra},
        reason.status,
        end_time,
    )


def with_attribute(span: ReadableSpan, key: str, value: int | str) -> ReadableSpan:
    """A copy of the ended ``span`` with one more attribute."""
    return _copy(span, {**_values(span), key: value}, span.status, None)


def _snapshot(items: Sequence[T]) -> Sequence[T]:
    """A copy of an SDK ``BoundedList`` taken without its lock, keeping its dropped count.

    The thread a signal interrupted may hold that lock (inside ``add_event``);
    the exporter reading a copy that shares it would wait forever.
    """
    if not isinstance(items, BoundedList):
        return tuple(items)
    source: Any = items  # the SDK's internals are untyped
    copy: Any = BoundedList(None)
    copy._dq.extend(tuple(source._dq))
    copy.dropped = source.dropped
    return copy  # type: ignore[no-any-return]


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
        events=_snapshot(span._events),
        links=_snapshot(span._links),
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time if end_time is None else end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
