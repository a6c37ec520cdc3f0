"""``@traced``: the ``span()`` lifecycle for functions, coroutines and generators.

The decorator is a ``wrapt`` function wrapper, so signatures, introspection
(``inspect.iscoroutinefunction`` and friends), methods, classmethods and
staticmethods keep working. The span starts when the body starts running (for
generators: at the first ``next()``) and is current only while the body runs,
never while a generator's consumer does.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from typing import Any, TypeVar, overload

import wrapt
from opentelemetry import trace

from otel_lifecycle._api.run import (
    MISSING,
    Capture,
    Run,
    check_conversation_id,
    check_flag,
    check_name,
    resolve_capture,
    start,
    tracer_for,
)

_logger = logging.getLogger(__name__)

F = TypeVar("F")
ConversationId = str | Callable[[Mapping[str, Any]], Any] | None
_Body = Callable[["_Plan", Callable[..., Any], object, tuple[Any, ...], dict[str, Any]], object]


class _Plan:
    """What is fixed when a function is decorated: its name, signature and options."""

    __slots__ = (
        "_bound_signature",
        "_capture_input",
        "_capture_output",
        "_conversation_id",
        "_function",
        "_signature",
        "_warned",
        "name",
        "tracer",
    )

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        name: str,
        conversation_id: ConversationId,
        capture_input: bool | None,
        capture_output: bool | None,
        tracer: trace.Tracer,
    ) -> None:
        self.name = name
        self.tracer = tracer
        self._function = function
        self._conversation_id = conversation_id
        self._capture_input = capture_input
        self._capture_output = capture_output
        self._warned = False
        try:
            self._signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):
            self._signature = None
        self._bound_signature = _without_receiver(self._signature)

    def begin(self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Run:
        """Start the span for one call: input = the bound arguments, and the conversation id."""
        capture = resolve_capture(self._capture_input, self._capture_output)
        if instance is None and args and self._is_classmethod_of(args[0]):
            instance, args = args[0], args[1:]
        arguments: Mapping[str, Any] | None = None
        if capture.input or callable(self._conversation_id):
            arguments = self._arguments(instance, args, kwargs)
        return start(
            self.tracer,
            self.name,
            capture,
            MISSING if arguments is None else arguments,
            self._conversation(arguments),
        )

    def _is_classmethod_of(self, first: object) -> bool:
        """Whether ``first`` is the class of a ``classmethod`` over this wrapper.

        Python 3.13 no longer chains ``classmethod`` through the wrapper's
        ``__get__``: it calls the wrapper unbound, with the class as the first
        argument, where earlier versions bound it (``instance`` is the class).
        """
        name = getattr(self._function, "__name__", None)
        if name is None or not isinstance(first, type):
            return False
        for owner in first.__mro__:
            attribute = vars(owner).get(name)
            if attribute is not None:
                return (
                    isinstance(attribute, classmethod)
                    and getattr(attribute.__func__, "__wrapped__", None) is self._function
                )
        return False

    def _arguments(
        self, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Mapping[str, Any]:
        """The call's arguments by parameter name, defaults included (``self``/``cls`` not)."""
        signature = self._signature if instance is None else self._bound_signature
        if signature is not None:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                pass
            else:
                bound.apply_defaults()
                return bound.arguments
        return {"args": args, "kwargs": kwargs}

    def _conversation(self, arguments: Mapping[str, Any] | None) -> str | None:
        conversation_id = self._conversation_id
        if not callable(conversation_id):
            return conversation_id
        try:
            value = conversation_id(arguments or {})
            return None if value is None or value == "" else str(value)
        except Exception:  # user code must never break the traced call
            if not self._warned:
                self._warned = True
                _logger.warning(
                    "otel_lifecycle: conversation_id callable of %s raised; the span has no "
                    "explicit conversation id (logged once)",
                    self.name,
                    exc_info=True,
                )
            return None


def _without_receiver(signature: inspect.Signature | None) -> inspect.Signature | None:
    """The signature seen through a bound method: without its first positional parameter."""
    if signature is None:
        return None
    parameters = list(signature.parameters.values())
    if parameters and parameters[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return signature.replace(parameters=parameters[1:])
    return signature


class _Items:
    """The items a generator yielded, as its output; bounded, since any JSON item takes
    at least 2 characters, past ``max_length // 2`` items the serialized output is cut anyway.
    """

    __slots__ = ("_dropped", "_items", "_limit")

    def __init__(self, capture: Capture) -> None:
        self._items: list[object] = []
        self._limit = capture.max_length // 2 + 1 if capture.output else 0
        self._dropped = 0

    def append(self, item: object) -> None:
        if len(self._items) < self._limit:
            self._items.append(item)
        else:
            self._dropped += 1

    def output(self) -> list[object]:
        if self._dropped:
            return [*self._items, f"<… {self._dropped} more items>"]
        return self._items


def _call(
    plan: _Plan,
    wrapped: Callable[..., Any],
    instance: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> object:
    handle = plan.begin(instance, args, kwargs)
    try:
        result = handle.within(wrapped, *args, **kwargs)
    except BaseException as error:
        handle.finish(error)
        raise
    handle.finish(None, result)
    return result


async def _call_async(
    plan: _Plan,
    wrapped: Callable[..., Awaitable[Any]],
    instance: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> object:
    handle = plan.begin(instance, args, kwargs)
    try:
        result = await handle.within_async(wrapped(*args, **kwargs))
    except BaseException as error:
        handle.finish(error)
        raise
    handle.finish(None, result)
    return result


def _iterate(
    plan: _Plan,
    wrapped: Callable[..., Generator[Any, Any, Any]],
    instance: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Generator[Any, Any, Any]:
    handle = plan.begin(instance, args, kwargs)
    items = _Items(handle.capture)
    try:
        generator = handle.within(wrapped, *args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is None:
                    item = handle.within(generator.send, sent)
                else:
                    item = handle.within(generator.throw, thrown)
            except StopIteration as stop:
                result = stop.value
                break
            items.append(item)
            try:
                sent, thrown = (yield item), None
            except GeneratorExit:
                handle.within(generator.close)
                raise
            except BaseException as error:  # noqa: BLE001 - thrown in by the consumer: passed on
                sent, thrown = None, error
    except BaseException as error:
        handle.finish(error, items.output())
        raise
    handle.finish(None, items.output())
    return result


async def _iterate_async(
    plan: _Plan,
    wrapped: Callable[..., AsyncGenerator[Any, Any]],
    instance: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[Any, Any]:
    handle = plan.begin(instance, args, kwargs)
    items = _Items(handle.capture)
    try:
        generator = handle.within(wrapped, *args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is None:
                    item = await handle.within_async(generator.asend(sent))
                else:
                    item = await handle.within_async(generator.athrow(thrown))
            except StopAsyncIteration:
                break
            items.append(item)
            try:
                sent, thrown = (yield item), None
            except GeneratorExit:
                await handle.within_async(generator.aclose())
                raise
            except BaseException as error:  # noqa: BLE001 - thrown in by the consumer: passed on
                sent, thrown = None, error
    except BaseException as error:
        handle.finish(error, items.output())
        raise
    handle.finish(None, items.output())


def _body_for(function: Callable[..., Any]) -> _Body:
    if inspect.isasyncgenfunction(function):
        return _iterate_async
    if inspect.iscoroutinefunction(function):
        return _call_async
    if inspect.isgeneratorfunction(function):
        return _iterate
    return _call


@overload
def traced(func: F, /) -> F: ...


@overload
def traced(
    func: None = None,
    /,
    *,
    name: str | None = None,
    conversation_id: ConversationId = None,
    capture_input: bool | None = None,
    capture_output: bool | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Callable[[F], F]: ...


def traced(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    conversation_id: ConversationId = None,
    capture_input: bool | None = None,
    capture_output: bool | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Any:
    """Trace each call of a function, coroutine function, generator or async generator.

    Use as ``@traced`` or ``@traced(name=..., conversation_id=...)``. Each call is a
    span named ``name`` (default: the function's qualified name), a child of the
    current span, current while the body runs, with ``input.value`` = the bound
    arguments (defaults included, ``self``/``cls`` left out) as sanitized JSON, and
    ``gen_ai.conversation.id`` from ``conversation_id``: a str, or a callable
    receiving the bound arguments as a dict (if it raises, a warning is logged once
    and the call goes on). On return: ``output.value`` = the return value (for
    generators, the items yielded, also when closed early) and status OK, unless
    ``fail()`` marked the span. On any exception, ``BaseException`` included: status
    ERROR, ``error.type`` = the exception's class name, the exception recorded and
    re-raised unchanged.
    """
    if name is not None:
        check_name(name)
    if conversation_id is not None and not callable(conversation_id):
        check_conversation_id(conversation_id)
    check_flag("capture_input", capture_input)
    check_flag("capture_output", capture_output)
    tracer = tracer_for(tracer_provider)

    def decorate(function: Any) -> Any:
        raw = function.__func__ if isinstance(function, (classmethod, staticmethod)) else function
        if not callable(raw):
            raise TypeError(f"traced() needs a callable, got {type(function).__name__}")
        plan = _Plan(
            raw,
            name=name or getattr(raw, "__qualname__", None) or type(raw).__name__,
            conversation_id=conversation_id,
            capture_input=capture_input,
            capture_output=capture_output,
            tracer=tracer,
        )
        body = _body_for(raw)

        def wrapper(
            wrapped: Callable[..., Any],
            instance: object,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> object:
            return body(plan, wrapped, instance, args, kwargs)

        return wrapt.FunctionWrapper(function, wrapper)

    return decorate if func is None else decorate(func)
