"""Conversation ids: the ``conversation()`` scope and the resolution order.

At ``on_start`` a span's conversation id is the first found of:

1. the span's own start attributes, for the configured keys, in order;
2. the id already resolved for the span's trace in this process, while the trace
   has an open span here (so children started in thread pools, executors and
   other tasks inherit it whatever their contextvars);
3. OpenTelemetry baggage in the parent context, same keys, same order;
4. the innermost ``otel_lifecycle.conversation(...)`` scope;
5. the ``conversation_id_resolver(span)`` callable, if given;
6. the fallback: nothing, the trace id in hex, or a new UUID.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Callable, Optional

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span
from opentelemetry.trace import format_trace_id

from otel_lifecycle._settings import Fallback, check_text

Resolver = Callable[[Span], Optional[str]]

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "otel_lifecycle_conversation", default=None
)


@contextmanager
def conversation(conversation_id: str) -> Iterator[str]:
    """Scope a conversation id over a block of code.

    Spans started inside the block (in this thread or task, and in tasks it
    creates) get ``gen_ai.conversation.id`` unless an earlier rule of the
    resolution order gives them one. The previous scope is restored on exit.
    """
    token = _current.set(check_text("conversation_id", conversation_id))
    try:
        yield conversation_id
    finally:
        _current.reset(token)


def current_conversation() -> str | None:
    """The id of the innermost ``conversation()`` scope, if any."""
    return _current.get()


def live_attributes(span: Span) -> Mapping[str, object]:
    """The live span's attributes, read without a copy, a lock or a failed lookup.

    The SDK's public ``span.attributes`` wraps a mapping whose misses raise
    ``KeyError`` internally; its plain dict is read directly when it is there.
    """
    raw = getattr(getattr(span, "_attributes", None), "_dict", None)
    return raw if isinstance(raw, dict) else (span.attributes or {})


def from_mapping(values: Mapping[str, object] | None, keys: ConversationKeys) -> str | None:
    """The first non-empty value among ``keys`` in ``values``, as a string."""
    if not values or keys.names.isdisjoint(values):
        return None
    for key in keys.ordered:
        value = values.get(key)
        if value is not None and value != "":
            return str(value)
    return None


class ConversationKeys:
    """The keys read for a conversation id: in order, and as a set for a fast miss.

    Most spans carry none of the keys; a set test on the span's attributes rejects
    them without a failed lookup per key (each costs an exception in the SDK's
    attribute mapping).
    """

    __slots__ = ("names", "ordered")

    def __init__(self, ordered: tuple[str, ...]) -> None:
        self.ordered = ordered
        self.names = frozenset(ordered)


class ConversationResolver:
    """Applies rules 3 to 6 of the resolution order (1 and 2 need the trace state)."""

    __slots__ = ("_fallback", "_keys", "_resolver")

    def __init__(self, keys: tuple[str, ...], resolver: Resolver | None, fallback: Fallback):
        self._keys = ConversationKeys(keys)
        self._resolver = resolver
        self._fallback = fallback

    @property
    def keys(self) -> ConversationKeys:
        """The attribute and baggage keys, in order."""
        return self._keys

    def from_context(self, span: Span, parent_context: Context | None) -> str | None:
        """Rules 3 to 6: baggage, the ``conversation()`` scope, the resolver, the fallback."""
        found = from_mapping(baggage.get_all(parent_context), self._keys) or _current.get()
        if found is None and self._resolver is not None:
            resolved = self._resolver(span)
            found = str(resolved) if resolved is not None and resolved != "" else None
        if found is not None or self._fallback == "none":
            return found
        if self._fallback == "trace_id":
            return format_trace_id(span.context.trace_id)
        return str(uuid.uuid4())
