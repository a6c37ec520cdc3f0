"""Conversation ids: the ``conversation()`` scope and the resolution order.

At ``on_start`` a span's conversation id is the first found of:

1. the span's own start attributes, for the configured keys, in order;
2. the id already resolved for the span's trace in this process (so children
   started in thread pools, executors and other tasks inherit it whatever their
   contextvars, and so do spans started after the trace's root was finalized),
   for the last ``TRACE_MEMORY`` traces that had an id;
3. OpenTelemetry baggage in the parent context, same keys, same order;
4. the innermost ``otel_lifecycle.conversation(...)`` scope;
5. the ``conversation_id_resolver(span)`` callable, if given;
6. the fallback: nothing, the trace id in hex, or a new UUID.

With ``conversation_ids`` off the processor resolves nothing (``NoConversations``).
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace import Span
from opentelemetry.trace import format_trace_id

from otel_lifecycle._core.semconv import CONVERSATION_ID
from otel_lifecycle._core.span_context import TRACE_ID
from otel_lifecycle._settings.checks import check_text
from otel_lifecycle._settings.environment import Fallback, Settings

Resolver = Callable[[Span], str | None]

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


def live_attributes(span: Span) -> Mapping[str, object]:
    """The live span's attributes, read without a copy or a lock.

    The SDK's public ``span.attributes`` wraps its ``BoundedAttributes``, whose
    misses raise ``KeyError`` internally; the plain dict inside is read directly
    (pinned by a test).
    """
    return span._attributes._dict  # type: ignore[union-attr,no-any-return]


def _first(values: Mapping[str, object] | None, keys: tuple[str, ...]) -> str | None:
    """The first non-empty value among ``keys`` in ``values``, as a string."""
    if values:
        for key in keys:
            value = values.get(key)
            if value is not None and value != "":
                return str(value)
    return None


_RESOLUTION = ("conversation_id_keys", "conversation_id_fallback")
"""The settings that only the resolution order uses."""

TRACE_MEMORY = 16_384
"""How many traces' conversation ids are remembered (the most recently resolved)."""


class ConversationIds(Protocol):
    """What the processor asks of its conversation ids."""

    def on_start(self, span: Span, trace_id: int, parent_context: Context | None) -> None:
        """Hot path: give a span that just started its conversation id, if it has one."""

    def of_span(self, span: Span) -> str | None:
        """The conversation id to add to a live span when it is finalized or marked."""

    def of_trace(self, trace_id: int) -> str | None:
        """The conversation id to add to a span of ``trace_id`` ended after a signal's mark."""


def for_settings(settings: Settings, resolver: Resolver | None) -> ConversationIds:
    """The processor's conversation ids: by the resolution order, or none if turned off.

    ``conversation_ids=False`` given together with an argument it makes useless
    raises ``ValueError`` naming both; turned off by its variable, the others
    are simply not used (the operator's choice wins).
    """
    if settings.conversation_ids:
        return Conversations(
            settings.conversation_id_keys, resolver, settings.conversation_id_fallback
        )
    if settings.sources["conversation_ids"] == "argument":
        given = [name for name in _RESOLUTION if settings.sources[name] == "argument"]
        given += ["conversation_id_resolver"] if resolver is not None else []
        if given:
            ignored = ", ".join(given)
            raise ValueError(f"conversation_ids=False ignores {ignored}: give one or the other")
    return NoConversations()


class NoConversations:
    """Conversation ids turned off: the processor adds ``gen_ai.conversation.id`` to no span.

    A span keeps the id the application set on it. Nothing is resolved at
    ``on_start`` (about 3% of a span's cost with the SDK's own work, measured
    in ``benchmarks/``), remembered, or added when a span is finalized or marked.
    """

    __slots__ = ()

    def on_start(self, span: Span, trace_id: int, parent_context: Context | None) -> None:
        """Resolves nothing."""

    def of_span(self, span: Span) -> None:
        """None: no id is added."""

    def of_trace(self, trace_id: int) -> None:
        """None: no id is added."""


class Conversations:
    """Gives each starting span its conversation id, by the resolution order above.

    Rule 2 is a memory of trace id -> conversation id. Only traces that have an id
    enter it; it outlives the trace's open spans (a span started later in the same
    trace, after its root was finalized, still gets the id) and is bounded by
    ``memory`` entries: the oldest is forgotten first.
    """

    __slots__ = (
        "_by_trace",
        "_fallback",
        "_memory",
        "_resolver",
        "_resolves_more",
        "keys",
    )

    def __init__(
        self,
        keys: tuple[str, ...],
        resolver: Resolver | None,
        fallback: Fallback,
        memory: int = TRACE_MEMORY,
    ) -> None:
        self.keys = keys
        self._resolver = resolver
        self._fallback = fallback
        self._resolves_more = resolver is not None or fallback != "none"
        self._memory = memory
        self._by_trace: dict[int, str] = {}

    def on_start(self, span: Span, trace_id: int, parent_context: Context | None) -> None:
        """Hot path: resolve the id of a span that just started and set it on the span."""
        attributes = span._attributes._dict  # type: ignore[union-attr]  # live_attributes, inlined
        found = None
        for key in self.keys:  # one lookup per key: the same cost however many attributes
            if key in attributes:
                found = _first(attributes, self.keys)
                break
        if found is None:
            found = self._by_trace.get(trace_id)
            if found is None:
                context = get_current() if parent_context is None else parent_context
                bag: Mapping[str, object] | None = context.get(_BAGGAGE_KEY)  # type: ignore[assignment]
                found = (bag and _first(bag, self.keys)) or _current.get()
                if found is None:
                    if not self._resolves_more:
                        return
                    found = self._resolve_or_fall_back(span)
                    if found is None:
                        return
        if CONVERSATION_ID not in attributes:
            span.set_attribute(CONVERSATION_ID, found)
        if trace_id not in self._by_trace:
            self._remember(trace_id, found)

    def of_span(self, span: Span) -> str | None:
        """The conversation id of a live span: its own attributes, else its trace's."""
        trace_id = span._context[TRACE_ID]  # type: ignore[index]
        return _first(live_attributes(span), self.keys) or self._by_trace.get(trace_id)

    def of_trace(self, trace_id: int) -> str | None:
        """The conversation id remembered for ``trace_id``."""
        return self._by_trace.get(trace_id)

    def remembered(self) -> int:
        """How many traces' ids are remembered now."""
        return len(self._by_trace)

    def _remember(self, trace_id: int, conversation_id: str) -> None:
        by_trace = self._by_trace
        by_trace.setdefault(trace_id, conversation_id)
        while len(by_trace) > self._memory:
            try:
                by_trace.pop(next(iter(by_trace)), None)
            except (RuntimeError, StopIteration):  # another thread changed it: look again
                continue

    def _resolve_or_fall_back(self, span: Span) -> str | None:
        """Rules 5 and 6: the resolver, then the fallback."""
        found = None
        if self._resolver is not None:
            resolved = self._resolver(span)
            found = str(resolved) if resolved is not None and resolved != "" else None
        if found is not None or self._fallback == "none":
            return found
        if self._fallback == "trace_id":
            return format_trace_id(span.context.trace_id)
        return str(uuid.uuid4())
