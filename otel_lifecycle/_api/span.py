"""The public lifecycle API: the ``span()`` context manager, ``fail()`` and ``set_output()``."""

from __future__ import annotations

from contextvars import Token
from types import TracebackType

from opentelemetry import context, trace
from opentelemetry.context import Context

from otel_lifecycle._api.run import (
    MISSING,
    Capture,
    Run,
    check_conversation_id,
    check_flag,
    check_name,
    environment_capture,
    resolve_capture,
    run_of,
    start,
    tracer_for,
    write_output,
)
from otel_lifecycle._core.finalize import fail_span
from otel_lifecycle._settings.checks import check_text

DEFAULT_ERROR_TYPE = "_OTHER"
"""``error.type`` written by ``fail()`` when none is given (the semantic conventions' fallback)."""


class TracedSpan:
    """The span of a ``span()`` block, as the ``with`` statement gives it."""

    __slots__ = ("_run",)

    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def span(self) -> trace.Span:
        """The OpenTelemetry span."""
        return self._run.span

    def set_output(self, value: object) -> None:
        """Record ``value`` (sanitized) as ``output.value``, unless output capture is off."""
        self._run.set_output(value)

    def fail(self, reason: str, *, error_type: str = DEFAULT_ERROR_TYPE) -> None:
        """Mark this span as failed (status ERROR) without raising; see ``fail()``."""
        fail(reason, error_type=error_type, span=self._run.span)


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
        self._entered: tuple[Run, Token[Context]] | None = None

    def __enter__(self) -> TracedSpan:
        if self._entered is not None:
            raise RuntimeError("a span() context manager can be entered only once")
        run = start(self._tracer, self._name, self._capture, self._input, self._conversation_id)
        self._entered = (run, run.attach())
        return TracedSpan(run)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._entered is None:
            raise RuntimeError("span() exited before it was entered")
        run, token = self._entered
        try:
            run.finish(exc)
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
    check_text("error_type", error_type)
    fail_span(_target(span), error_type, reason)


def set_output(value: object, *, span: trace.Span | None = None) -> None:
    """Record ``value`` (sanitized) as the output of the current span (or ``span``).

    For a span started by ``traced`` or ``span()`` this follows its capture
    settings and wins over the return value; for any other span, the environment's.
    """
    target = _target(span)
    run = run_of(target)
    if run is not None:
        run.set_output(value)
    else:
        write_output(target, environment_capture(), value)
