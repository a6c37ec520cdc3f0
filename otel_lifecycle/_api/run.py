"""One traced run: start a span with its input and conversation id, finish it with a status.

Shared by the ``span()`` context manager and the ``traced`` decorator, so both
record input, output, conversation id and status the same way; also the capture
settings (what is recorded, how it is sanitized) and the argument checks.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Awaitable, Callable
from contextvars import Token
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

from otel_lifecycle._api.sanitize import describe_exception, sanitize
from otel_lifecycle._core.finalize import fail_span
from otel_lifecycle._core.semconv import (
    CONVERSATION_ID,
    INPUT_MIME_TYPE,
    INPUT_VALUE,
    JSON_MIME_TYPE,
    OUTPUT_MIME_TYPE,
    OUTPUT_VALUE,
)
from otel_lifecycle._settings.checks import check_text
from otel_lifecycle._settings.environment import load_settings

_logger = logging.getLogger(__name__)

T = TypeVar("T")

TRACER_NAME = "otel_lifecycle"
_GLOBAL_TRACER = trace.get_tracer(TRACER_NAME)
MISSING = object()
"""No input given (``None`` is a value)."""


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
    return check_text("name", value)


def check_conversation_id(value: object) -> str | None:
    """Validate an optional conversation id string argument."""
    return None if value is None else check_text("conversation_id", value)


def tracer_for(provider: object) -> trace.Tracer:
    """The package's tracer from ``provider``, or from the global provider if None."""
    if provider is None:
        return _GLOBAL_TRACER
    if not isinstance(provider, trace.TracerProvider):
        raise TypeError(
            f"tracer_provider must be a TracerProvider or None, got {type(provider).__name__}"
        )
    return provider.get_tracer(TRACER_NAME)


_runs: weakref.WeakValueDictionary[int, Run] = weakref.WeakValueDictionary()
"""The unfinished runs by ``id(span)``, for ``set_output(span=...)`` from any thread or context.

Weak: a run is held by the code running its body (the decorator's frame, the
``span()`` block), and its entry goes with it if that code is dropped before it
finishes. Being alive, a run's span is too, so no other span can have its id.
"""


def run_of(span: trace.Span) -> Run | None:
    """The unfinished run of ``span``, if ``traced`` or ``span()`` started it."""
    return _runs.get(id(span))


class Run:
    """A span started by ``span()`` or ``traced``, and what it records until it finishes."""

    __slots__ = ("__weakref__", "_output_set", "capture", "span")

    def __init__(self, span: trace.Span, capture: Capture) -> None:
        self.span = span
        self.capture = capture
        self._output_set = False

    def set_output(self, value: object) -> None:
        """Record ``value`` as ``output.value`` (sanitized), unless output capture is off.

        An explicit output wins over the return value the decorator would record.
        """
        self._output_set = True
        write_output(self.span, self.capture, value)

    def finish(self, error: BaseException | None, output: object = MISSING) -> None:
        """End the span: ERROR with the exception, else OK unless it already failed."""
        _runs.pop(id(self.span), None)
        span = self.span
        if not span.is_recording():
            return
        if output is not MISSING and not self._output_set:
            self.set_output(output)
        if error is not None:
            fail_span(span, type(error).__name__, describe_exception(error))
            try:
                span.record_exception(error, escaped=True)
            except Exception:  # noqa: BLE001 - e.g. an exception whose str() raises
                _logger.debug("otel_lifecycle: could not record %s", type(error).__name__)
        elif getattr(span, "status", Status()).status_code is not StatusCode.ERROR:
            span.set_status(Status(StatusCode.OK))
        span.end()

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
) -> Run:
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
    run = Run(tracer.start_span(name, attributes=attributes), capture)
    _runs[id(run.span)] = run
    return run


def write_output(span: trace.Span, capture: Capture, value: object) -> None:
    """Record ``value`` as the output of ``span`` if ``capture`` says so."""
    if capture.output:
        span.set_attributes({OUTPUT_VALUE: capture.dump(value), OUTPUT_MIME_TYPE: JSON_MIME_TYPE})
