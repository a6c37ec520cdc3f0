"""Spans with input, output, a conversation id and a status on every path.

One implementation of "start a span with its input and conversation id" and
"finish it with its output and a status", shared by the ``span()`` context
manager and the ``traced`` decorator; plus ``fail()`` and ``set_output()``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable
from contextvars import Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, TypeVar

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

from otel_lifecycle._sanitize import describe_exception, sanitize
from otel_lifecycle._semconv import (
    CONVERSATION_ID,
    ERROR_TYPE,
    INPUT_MIME_TYPE,
    INPUT_VALUE,
    JSON_MIME_TYPE,
    OUTPUT_MIME_TYPE,
    OUTPUT_VALUE,
)
from otel_lifecycle._settings import load_settings

_logger = logging.getLogger(__name__)

T = TypeVar("T")

TRACER_NAME = "otel_lifecycle"
DEFAULT_ERROR_TYPE = "_OTHER"
"""``error.type`` written by ``fail()`` when none is given (the semantic conventions' fallback)."""

_GLOBAL_TRACER = trace.get_tracer(TRACER_NAME)
MISSING = object()


@dataclass(frozen=True)
class Capture:
    """What is recorded of inputs and outputs, and how they are sanitized."""

    input: bool
    output: bool
    redact_keys: tuple[str, ...]
    max_length: int

    def dump(self, value: object) -> str:
        """``value`` as redacted, bounded JSON."""
        return sanitize(value, redact_keys=self.redact_keys, max_length=self.max_length)


@functools.lru_cache(maxsize=1)
def environment_capture() -> Capture:
    """The capture settings from the environment, read once, at the first use."""
    settings = load_settings()
    return Capture(
        settings.capture, settings.capture, settings.redact_keys, settings.max_value_length
    )


def resolve_capture(capture_input: bool | None, capture_output: bool | None) -> Capture:
    """Explicit arguments over the environment's settings."""
    defaults = environment_capture()
    if capture_input is None and capture_output is None:
        return defaults
    return Capture(
        defaults.input if capture_input is None else capture_input,
        defaults.output if capture_output is None else capture_output,
        defaults.redact_keys,
        defaults.max_length,
    )


def check_flag(name: str, value: object) -> bool | None:
    """Validate an optional ``bool`` argument."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool or None, got {type(value).__name__}")
    return value


def check_name(value: object) -> str:
    """Validate a span name argument."""
    if not isinstance(value, str):
        raise TypeError(f"name must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError("name must be a non-empty str")
    return value


def check_conversation_id(value: object) -> str | None:
    """Validate an optional conversation id string argument."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"conversation_id must be a str or None, got {type(value).__name__}")
    if not value:
        raise ValueError("conversation_id must be a non-empty str")
    return value


def tracer_for(provider: object) -> trace.Tracer:
    """The package's tracer from ``provider``, or from the global provider if None."""
    if provider is None:
        return _GLOBAL_TRACER
    if not isinstance(provider, trace.TracerProvider):
        raise TypeError(
            f"tracer_provider must be a TracerProvider or None, got {type(provider).__name__}"
        )
    return provider.get_tracer(TRACER_NAME)


_open: dict[int, TracedSpan] = {}
"""Spans started here and not finished yet, by ``id(span)``: ``set_output`` finds their capture."""


class TracedSpan:
    """A span started by ``span()`` or ``traced``, current until it finishes."""

    __slots__ = ("_capture", "_output_set", "span")

    def __init__(self, span: trace.Span, capture: Capture) -> None:
        self.span = span
        self._capture = capture
        self._output_set = False

    def set_output(self, value: object) -> None:
        """Record ``value`` as ``output.value`` (sanitized), unless output capture is off.

        An explicit output wins over the return value the decorator would record.
        """
        self._output_set = True
        _write_output(self.span, self._capture, value)

    def fail(self, reason: str, *, error_type: str = DEFAULT_ERROR_TYPE) -> None:
        """Mark this span as failed (status ERROR) without raising; see ``fail()``."""
        fail(reason, error_type=error_type, span=self.span)

    def finish(self, error: BaseException | None, output: object = MISSING) -> None:
        """End the span: ERROR with the exception, else OK unless it already failed."""
        _open.pop(id(self.span), None)
        span = self.span
        if not span.is_recording():
            return
        if output is not MISSING and not self._output_set:
            self.set_output(output)
        if error is not None:
            span.set_attribute(ERROR_TYPE, type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, describe_exception(error)))
            try:
                span.record_exception(error, escaped=True)
            except Exception:  # noqa: BLE001 - e.g. an exception whose str() raises
                _logger.debug("otel_lifecycle: could not record %s", type(error).__name__)
        elif getattr(span, "status", Status()).status_code is not StatusCode.ERROR:
            span.set_status(Status(StatusCode.OK))
        span.end()

    @property
    def capture(self) -> Capture:
        """What this span records of its input and output."""
        return self._capture

    def attach(self) -> Token[Context]:
        """Make the span current; returns the token for ``context.detach``."""
        return context.attach(trace.set_span_in_context(self.span))

    def within(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``function`` with this span current."""
        token = self.attach()
        try:
            return function(*args, **kwargs)
        finally:
            context.detach(token)

    async def within_async(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` with this span current."""
        token = self.attach()
        try:
            return await awaitable
        finally:
            context.detach(token)


def start(
    tracer: trace.Tracer,
    name: str,
    capture: Capture,
    input_value: object,
    conversation_id: str | None,
) -> TracedSpan:
    """Start a span with its input (unless ``MISSING`` or capture is off) and conversation id.

    An explicit conversation id is a start attribute, so the processor's first rule
    makes it the trace's id; without one the processor's precedence applies.
    """
    attributes: dict[str, str] = {}
    if capture.input and input_value is not MISSING:
        attributes[INPUT_VALUE] = capture.dump(input_value)
        attributes[INPUT_MIME_TYPE] = JSON_MIME_TYPE
    if conversation_id is not None:
        attributes[CONVERSATION_ID] = conversation_id
    handle = TracedSpan(tracer.start_span(name, attributes=attributes), capture)
    _open[id(handle.span)] = handle
    return handle


class SpanScope:
    """The context manager returned by ``span()``: starts on enter, finishes on exit."""

    __slots__ = ("_capture", "_conversation_id", "_entered", "_input", "_name", "_tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        capture: Capture,
        input_value: object,
        conversation_id: str | None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._capture = capture
        self._input = input_value
        self._conversation_id = conversation_id
        self._entered: tuple[TracedSpan, Token[Context]] | None = None

    def __enter__(self) -> TracedSpan:
        if self._entered is not None:
            raise RuntimeError("a span() context manager can be entered only once")
        handle = start(self._tracer, self._name, self._capture, self._input, self._conversation_id)
        self._entered = (handle, handle.attach())
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._entered is None:
            raise RuntimeError("span() exited before it was entered")
        handle, token = self._entered
        try:
            handle.finish(exc)
        finally:
            context.detach(token)


def span(
    name: str,
    *,
    input: object = MISSING,
    conversation_id: str | None = None,
    capture_input: bool | None = None,
    capture_output: bool | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> SpanScope:
    """A context manager for a span with input, output and a status on every path.

    ``with span("pipeline", input={"doc": doc}, conversation_id=cid) as s:`` starts
    the span ``name`` as a child of the current span, with ``input.value`` (``input``
    sanitized, if given) and ``gen_ai.conversation.id`` (if given), and makes it
    current. ``s.set_output(value)`` records the output. On exit the status is OK
    (unless ``fail()`` marked it), or ERROR with ``error.type`` and the exception
    recorded for any exception, ``BaseException`` included; the exception propagates.
    """
    return SpanScope(
        tracer_for(tracer_provider),
        check_name(name),
        resolve_capture(
            check_flag("capture_input", capture_input),
            check_flag("capture_output", capture_output),
        ),
        input,
        check_conversation_id(conversation_id),
    )


def _target(span: trace.Span | None) -> trace.Span:
    if span is None:
        return trace.get_current_span()
    if not isinstance(span, trace.Span):
        raise TypeError(f"span must be an opentelemetry Span or None, got {type(span).__name__}")
    return span


def fail(
    reason: str, *, error_type: str = DEFAULT_ERROR_TYPE, span: trace.Span | None = None
) -> None:
    """Mark the current span (or ``span``) as failed without raising.

    Status ERROR with ``reason`` as description, and ``error.type`` = ``error_type``
    (keep it low-cardinality, e.g. ``"max_iterations"``). A ``traced`` function or
    ``span()`` block that then returns normally keeps this status instead of OK.
    """
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a str, got {type(reason).__name__}")
    if not isinstance(error_type, str):
        raise TypeError(f"error_type must be a str, got {type(error_type).__name__}")
    if not error_type:
        raise ValueError("error_type must be a non-empty str")
    target = _target(span)
    target.set_attribute(ERROR_TYPE, error_type)
    target.set_status(Status(StatusCode.ERROR, reason))


def set_output(value: object, *, span: trace.Span | None = None) -> None:
    """Record ``value`` (sanitized) as the output of the current span (or ``span``).

    For a span started by ``traced`` or ``span()`` this follows its capture
    settings and wins over the return value; for any other span, the environment's.
    """
    target = _target(span)
    handle = _open.get(id(target))
    if handle is not None and handle.span is target:
        handle.set_output(value)
    else:
        _write_output(target, environment_capture(), value)


def _write_output(span: trace.Span, capture: Capture, value: object) -> None:
    if capture.output:
        span.set_attributes({OUTPUT_VALUE: capture.dump(value), OUTPUT_MIME_TYPE: JSON_MIME_TYPE})
