"""``@traced``: every kind of callable, every way out, input, output and conversation id."""

from __future__ import annotations

import asyncio
import inspect
import logging
import subprocess
import sys
import threading
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import otel_lifecycle
from otel_lifecycle import traced
from tests.api._helpers import assert_error, attrs, exception_events, input_of, output_of
from tests.conftest import Harness
from tests.processor._pins import PinnedLock, pin

MakeHarness = Callable[..., Harness]


def test_sync_success_records_name_input_output_and_ok(harness: Harness) -> None:
    @traced(name="agent.run", conversation_id="conv-1", tracer_provider=harness.provider)
    def run(question: str, retries: int = 2, *extra: int, **options: str) -> str:
        return question.upper()

    assert run("hi", 3, 4, mode="fast") == "HI"

    span = harness.exported()["agent.run"]
    assert input_of(span) == {
        "question": "hi",
        "retries": 3,
        "extra": [4],
        "options": {"mode": "fast"},
    }
    assert output_of(span) == "HI"
    assert attrs(span)["gen_ai.conversation.id"] == "conv-1"
    assert span.status.status_code is StatusCode.OK
    assert "error.type" not in attrs(span)
    assert span.parent is None


def test_defaults_are_part_of_the_input_and_name_defaults_to_qualname(harness: Harness) -> None:
    @traced(tracer_provider=harness.provider)
    def lookup(key: str, limit: int = 10) -> None:
        return None

    lookup("k")

    (span,) = harness.exporter.get_finished_spans()
    assert (
        span.name
        == "test_defaults_are_part_of_the_input_and_name_defaults_to_qualname.<locals>.lookup"
    )
    assert input_of(span) == {"key": "k", "limit": 10}
    assert output_of(span) is None


def test_conversation_id_from_a_callable_of_the_bound_arguments(harness: Harness) -> None:
    seen: list[dict[str, Any]] = []

    def pick(args: Mapping[str, Any]) -> str:
        seen.append(dict(args))
        return str(args["session"])

    @traced(name="agent.run", conversation_id=pick, tracer_provider=harness.provider)
    def run(question: str, session: str = "s-default") -> str:
        with harness.tracer.start_as_current_span("tool"):
            return "answer"

    run("q")
    run("q", session="s-42")

    assert seen == [
        {"question": "q", "session": "s-default"},
        {"question": "q", "session": "s-42"},
    ]
    spans = harness.exporter.get_finished_spans()
    assert [(s.name, attrs(s)["gen_ai.conversation.id"]) for s in spans] == [
        ("tool", "s-default"),
        ("agent.run", "s-default"),
        ("tool", "s-42"),
        ("agent.run", "s-42"),
    ]


def test_without_an_explicit_id_the_processor_precedence_applies(harness: Harness) -> None:
    @traced(name="agent.run", tracer_provider=harness.provider)
    def run() -> None:
        return None

    with otel_lifecycle.conversation("from-scope"):
        run()
    run()

    first, second = harness.exporter.get_finished_spans()
    assert attrs(first)["gen_ai.conversation.id"] == "from-scope"
    assert "gen_ai.conversation.id" not in attrs(second)


def test_a_conversation_id_callable_that_raises_warns_once_and_the_call_goes_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    @traced(
        name="run", conversation_id=lambda args: args["missing"], tracer_provider=harness.provider
    )
    def run(x: int) -> int:
        return x + 1

    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        assert [run(1), run(2)] == [2, 3]

    warnings = [r for r in caplog.records if "conversation_id callable of run raised" in r.message]
    assert len(warnings) == 1
    spans = harness.exporter.get_finished_spans()
    assert [span.status.status_code for span in spans] == [StatusCode.OK, StatusCode.OK]
    assert all("gen_ai.conversation.id" not in attrs(span) for span in spans)


def test_max_iterations_via_fail_returns_normally_with_error_status(harness: Harness) -> None:
    @traced(name="agent.run", tracer_provider=harness.provider)
    def run(question: str, max_iterations: int = 3) -> str:
        for _ in range(max_iterations):
            with harness.tracer.start_as_current_span("step"):
                pass
        otel_lifecycle.fail("stopped after 3 iterations", error_type="max_iterations")
        return "best effort"

    assert run("q") == "best effort"

    spans = harness.exporter.get_finished_spans()
    assert [span.name for span in spans] == ["step", "step", "step", "agent.run"]
    root = spans[-1]
    assert_error(root, "max_iterations", "stopped after 3 iterations")
    assert output_of(root) == "best effort"
    assert input_of(root) == {"question": "q", "max_iterations": 3}
    assert all(span.status.status_code is StatusCode.UNSET for span in spans[:3])


def test_fail_without_error_type_uses_the_semconv_fallback(harness: Harness) -> None:
    @traced(name="run", tracer_provider=harness.provider)
    def run() -> None:
        otel_lifecycle.fail("gave up")

    run()

    assert_error(harness.exported()["run"], "_OTHER", "gave up")


def test_an_exception_is_recorded_and_reraised_unchanged(harness: Harness) -> None:
    error = ValueError("bad input")

    @traced(name="run", tracer_provider=harness.provider)
    def run() -> None:
        raise error

    with pytest.raises(ValueError, match="bad input") as raised:
        run()

    assert raised.value is error
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert frames[-1] == "run"
    span = harness.exported()["run"]
    assert_error(span, "ValueError", "ValueError: bad input")
    (event,) = exception_events(span)
    assert event["exception.type"] == "ValueError"
    assert event["exception.message"] == "bad input"
    assert event["exception.escaped"] == "True"
    assert "output.value" not in attrs(span)


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_end_the_span_with_error_type(
    harness: Harness, kind: type[BaseException]
) -> None:
    @traced(name="run", tracer_provider=harness.provider)
    def run() -> None:
        raise kind()

    with pytest.raises(kind):
        run()

    span = harness.exported()["run"]
    assert_error(span, kind.__name__, kind.__name__)
    assert [event["exception.type"] for event in exception_events(span)] == [kind.__name__]


def test_an_exception_whose_str_raises_still_ends_the_span(harness: Harness) -> None:
    class HostileError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    @traced(name="run", tracer_provider=harness.provider)
    def run() -> None:
        raise HostileError

    with pytest.raises(HostileError):
        run()

    assert_error(harness.exported()["run"], "HostileError", "HostileError: <str failed>")


def test_async_function_success_and_error(harness: Harness) -> None:
    @traced(
        name="agent.run", conversation_id=lambda a: a["session"], tracer_provider=harness.provider
    )
    async def run(question: str, session: str) -> str:
        assert trace.get_current_span().get_span_context().is_valid
        await asyncio.sleep(0)
        if question == "boom":
            raise RuntimeError("async boom")
        return f"answer to {question}"

    assert asyncio.run(run("q", "s-1")) == "answer to q"
    with pytest.raises(RuntimeError, match="async boom"):
        asyncio.run(run("boom", "s-2"))

    ok, failed = harness.exporter.get_finished_spans()
    assert ok.status.status_code is StatusCode.OK
    assert output_of(ok) == "answer to q"
    assert attrs(ok)["gen_ai.conversation.id"] == "s-1"
    assert_error(failed, "RuntimeError", "RuntimeError: async boom")
    assert attrs(failed)["gen_ai.conversation.id"] == "s-2"


def test_cancelling_an_asyncio_task_ends_the_span_with_cancelled_error(harness: Harness) -> None:
    @traced(name="agent.run", tracer_provider=harness.provider)
    async def run(entered: asyncio.Event) -> None:
        entered.set()
        await asyncio.get_running_loop().create_future()

    async def main() -> None:
        entered = asyncio.Event()
        task = asyncio.create_task(run(entered))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    span = harness.exported()["agent.run"]
    assert_error(span, "CancelledError", "CancelledError")
    assert input_of(span)["entered"].startswith("<asyncio.locks.Event object")


def test_a_generator_span_covers_the_whole_iteration(harness: Harness) -> None:
    inside: list[bool] = []

    @traced(name="stream", tracer_provider=harness.provider)
    def stream(n: int) -> Iterator[int]:
        for i in range(n):
            inside.append(trace.get_current_span().get_span_context().is_valid)
            with harness.tracer.start_as_current_span(f"item{i}"):
                yield i

    generator = stream(3)
    assert harness.exporter.get_finished_spans() == ()
    outside: list[bool] = []
    for _ in generator:
        outside.append(trace.get_current_span().get_span_context().is_valid)

    assert (inside, outside) == ([True] * 3, [False] * 3)
    spans = harness.exported()
    root = spans["stream"]
    assert output_of(root) == [0, 1, 2]
    assert input_of(root) == {"n": 3}
    assert root.status.status_code is StatusCode.OK
    assert all(spans[f"item{i}"].parent == root.context for i in range(3))


def test_a_generator_closed_early_keeps_its_partial_output(harness: Harness) -> None:
    cleaned_up: list[bool] = []

    @traced(name="stream", tracer_provider=harness.provider)
    def stream() -> Iterator[str]:
        try:
            yield from ("a", "b", "c", "d")
        finally:
            cleaned_up.append(trace.get_current_span().get_span_context().is_valid)

    for item in stream():
        if item == "b":
            break

    assert cleaned_up == [True]
    span = harness.exported()["stream"]
    assert output_of(span) == ["a", "b"]
    assert_error(span, "GeneratorExit", "GeneratorExit")


def test_generator_send_throw_and_return_value_pass_through(harness: Harness) -> None:
    @traced(name="echo", tracer_provider=harness.provider)
    def echo() -> Any:
        received = yield "ready"
        while received != "stop":
            try:
                received = yield f"got {received}"
            except KeyError as error:
                received = yield f"handled {error.args[0]}"
        return "done"

    def consume() -> Any:
        return (yield from echo())

    generator = consume()
    assert next(generator) == "ready"
    assert generator.send("x") == "got x"
    assert generator.throw(KeyError("k")) == "handled k"
    with pytest.raises(StopIteration) as stopped:
        generator.send("stop")

    assert stopped.value.value == "done"
    span = harness.exported()["echo"]
    assert output_of(span) == ["ready", "got x", "handled k"]
    assert span.status.status_code is StatusCode.OK


def test_an_exception_inside_a_generator_keeps_the_output_so_far(harness: Harness) -> None:
    @traced(name="stream", tracer_provider=harness.provider)
    def stream() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(stream())

    span = harness.exported()["stream"]
    assert output_of(span) == [1]
    assert_error(span, "OSError", "OSError: disk gone")


def test_a_long_generator_keeps_a_bounded_output(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_MAX_VALUE_LENGTH", "100")

    @traced(name="stream", tracer_provider=harness.provider)
    def stream() -> Iterator[int]:
        yield from range(100_000)

    assert sum(stream()) == sum(range(100_000))

    value = attrs(harness.exported()["stream"])["output.value"]
    assert len(value) == 100
    assert value.startswith("[0,1,2,3,")
    assert value.endswith(" chars]")


def test_an_async_generator_full_and_closed_early(harness: Harness) -> None:
    @traced(name="astream", tracer_provider=harness.provider)
    async def astream(n: int) -> AsyncGenerator[int, None]:
        for i in range(n):
            await asyncio.sleep(0)
            assert trace.get_current_span().get_span_context().is_valid
            yield i

    async def main() -> tuple[list[int], list[bool]]:
        outside = [trace.get_current_span().get_span_context().is_valid async for _ in astream(2)]
        partial = astream(5)
        first = [await partial.__anext__(), await partial.__anext__()]
        await partial.aclose()
        return first, outside

    assert asyncio.run(main()) == ([0, 1], [False, False])

    full, closed = harness.exporter.get_finished_spans()
    assert (output_of(full), full.status.status_code) == ([0, 1], StatusCode.OK)
    assert output_of(closed) == [0, 1]
    assert_error(closed, "GeneratorExit", "GeneratorExit")


def test_an_async_generator_athrow_and_errors(harness: Harness) -> None:
    @traced(name="astream", tracer_provider=harness.provider)
    async def astream() -> AsyncGenerator[str, None]:
        try:
            yield "first"
        except KeyError:
            yield "recovered"
        raise ValueError("after recovery")

    async def main() -> list[str]:
        generator = astream()
        seen = [await generator.__anext__(), await generator.athrow(KeyError("k"))]
        with pytest.raises(ValueError, match="after recovery"):
            await generator.__anext__()
        return seen

    assert asyncio.run(main()) == ["first", "recovered"]
    span = harness.exported()["astream"]
    assert output_of(span) == ["first", "recovered"]
    assert_error(span, "ValueError", "ValueError: after recovery")


def test_methods_classmethods_and_staticmethods(make_harness: MakeHarness) -> None:
    """The same input on every Python: 3.13 calls a classmethod's wrapper with the class first."""
    harness = make_harness()
    provider = harness.provider

    class Agent:
        secret_state = "never in input"

        @traced(tracer_provider=provider)
        def method(self, x: int, y: int = 1) -> int:
            return x + y

        @traced(tracer_provider=provider)
        @classmethod
        def outer_classmethod(cls, x: int) -> str:
            return cls.__name__ + str(x)

        @classmethod
        @traced(tracer_provider=provider)
        def inner_classmethod(cls, x: int) -> str:
            return cls.__name__ + str(x)

        @traced(tracer_provider=provider)
        @staticmethod
        def outer_staticmethod(x: int) -> int:
            return -x

        @staticmethod
        @traced(tracer_provider=provider)
        def inner_staticmethod(x: int) -> int:
            return -x

    class SubAgent(Agent):
        pass

    agent = Agent()
    assert agent.method(1) == 2
    assert Agent.method(agent, 2, y=3) == 5
    assert Agent.outer_classmethod(4) == "Agent4"
    assert agent.inner_classmethod(5) == "Agent5"
    assert Agent.outer_staticmethod(6) == -6
    assert agent.inner_staticmethod(7) == -7
    assert SubAgent.inner_classmethod(8) == "SubAgent8"

    got = [
        (span.name.rsplit(".", 1)[-1], input_of(span), output_of(span))
        for span in harness.exporter.get_finished_spans()
    ]
    assert got == [
        ("method", {"x": 1, "y": 1}, 2),
        ("method", {"x": 2, "y": 3}, 5),
        ("outer_classmethod", {"x": 4}, "Agent4"),
        ("inner_classmethod", {"x": 5}, "Agent5"),
        ("outer_staticmethod", {"x": 6}, -6),
        ("inner_staticmethod", {"x": 7}, -7),
        ("inner_classmethod", {"x": 8}, "SubAgent8"),
    ]
    assert str(inspect.signature(agent.method)) == "(x: 'int', y: 'int' = 1) -> 'int'"
    assert str(inspect.signature(Agent.inner_classmethod)) == "(x: 'int') -> 'str'"
    assert str(inspect.signature(Agent.outer_staticmethod)) == "(x: 'int') -> 'int'"


def test_introspection_is_preserved() -> None:
    async def coroutine(a: int) -> int:
        """Doc of coroutine."""
        return a

    def generator(a: int) -> Iterator[int]:
        yield a

    async def agenerator(a: int) -> AsyncIterator[int]:
        yield a

    def plain(a: int, *, b: str = "x") -> str:
        return b

    for function in (coroutine, generator, agenerator, plain):
        decorated = traced(function)
        assert decorated.__name__ == function.__name__
        assert decorated.__qualname__ == function.__qualname__
        assert decorated.__doc__ == function.__doc__
        assert inspect.unwrap(decorated) is function
        assert inspect.signature(decorated) == inspect.signature(function)
        for check in (
            inspect.iscoroutinefunction,
            inspect.isgeneratorfunction,
            inspect.isasyncgenfunction,
        ):
            assert check(decorated) == check(function), (function.__name__, check.__name__)


def test_a_call_with_bad_arguments_raises_its_own_type_error(harness: Harness) -> None:
    @traced(name="run", tracer_provider=harness.provider)
    def run(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="unexpected keyword argument 'y'"):
        run(1, y=2)  # type: ignore[call-arg]

    span = harness.exported()["run"]
    assert input_of(span) == {"args": [1], "kwargs": {"y": 2}}
    assert attrs(span)["error.type"] == "TypeError"


def test_explicit_set_output_wins_over_the_return_value(harness: Harness) -> None:
    @traced(name="run", tracer_provider=harness.provider)
    def run() -> str:
        otel_lifecycle.set_output({"summary": "short"})
        return "a very long raw return value"

    assert run() == "a very long raw return value"
    assert output_of(harness.exported()["run"]) == {"summary": "short"}


def test_set_output_in_a_generator_a_coroutine_and_an_async_generator_wins(
    harness: Harness,
) -> None:
    """Set in a body resumed after a yield or an await, or in a thread it awaits: the output."""

    @traced(name="stream", tracer_provider=harness.provider)
    def stream() -> Iterator[int]:
        yield 1
        otel_lifecycle.set_output("stream summary")
        yield 2

    @traced(name="coro", tracer_provider=harness.provider)
    async def coro() -> str:
        await asyncio.sleep(0)
        otel_lifecycle.set_output("coro summary")
        return "raw"

    @traced(name="astream", tracer_provider=harness.provider)
    async def astream() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(0)
        otel_lifecycle.set_output("astream summary")
        yield 2

    @traced(name="delegating", tracer_provider=harness.provider)
    async def delegating() -> str:
        await asyncio.to_thread(otel_lifecycle.set_output, "from a worker thread")
        return "raw"

    async def main() -> tuple[str, list[int], str]:
        return await coro(), [item async for item in astream()], await delegating()

    assert list(stream()) == [1, 2]
    assert asyncio.run(main()) == ("raw", [1, 2], "raw")
    spans = harness.exported()
    names = ("stream", "coro", "astream", "delegating")
    assert {name: output_of(spans[name]) for name in names} == {
        "stream": "stream summary",
        "coro": "coro summary",
        "astream": "astream summary",
        "delegating": "from a worker thread",
    }


def test_set_output_follows_capture_off_in_every_kind_of_body(harness: Harness) -> None:
    """With capture off, ``set_output()`` in a body, resumed or not, records nothing either."""
    quiet = traced(capture_input=False, capture_output=False, tracer_provider=harness.provider)

    @quiet
    def call() -> str:
        otel_lifecycle.set_output("secret")
        return "secret"

    @quiet
    def stream() -> Iterator[int]:
        yield 1
        otel_lifecycle.set_output("secret")

    @quiet
    async def coro() -> str:
        await asyncio.sleep(0)
        otel_lifecycle.set_output("secret")
        return "secret"

    @quiet
    async def astream() -> AsyncIterator[int]:
        await asyncio.sleep(0)
        otel_lifecycle.set_output("secret")
        yield 1

    async def main() -> tuple[str, list[int]]:
        return await coro(), [item async for item in astream()]

    async def async_block() -> None:
        with otel_lifecycle.span(
            "async_block", capture_output=False, tracer_provider=harness.provider
        ):
            await asyncio.sleep(0)
            otel_lifecycle.set_output("secret")

    assert (call(), list(stream()), asyncio.run(main())) == ("secret", [1], ("secret", [1]))
    with otel_lifecycle.span("block", capture_output=False, tracer_provider=harness.provider):
        otel_lifecycle.set_output("secret")
    asyncio.run(async_block())
    spans = harness.exporter.get_finished_spans()
    assert [span.name.rpartition(".")[2] for span in spans] == [
        "call",
        "stream",
        "coro",
        "astream",
        "block",
        "async_block",
    ]
    assert [attrs(span) for span in spans] == [{}, {}, {}, {}, {}, {}]


def test_set_output_on_an_outer_span_from_a_nested_traced_call(harness: Harness) -> None:
    @traced(name="inner", tracer_provider=harness.provider)
    def inner(outer_span: trace.Span) -> str:
        otel_lifecycle.set_output("for the outer run", span=outer_span)
        return "inner result"

    @traced(name="outer", tracer_provider=harness.provider)
    def outer() -> str:
        inner(trace.get_current_span())
        return "outer result"

    assert outer() == "outer result"
    spans = harness.exported()
    assert output_of(spans["outer"]) == "for the outer run"
    assert output_of(spans["inner"]) == "inner result"


def test_set_output_on_a_given_span_from_a_thread_follows_its_run(harness: Harness) -> None:
    """A thread that does not carry the context: the span given still finds its run."""

    def report(span: trace.Span, value: str) -> None:
        worker = threading.Thread(
            target=otel_lifecycle.set_output, args=(value,), kwargs={"span": span}
        )
        worker.start()
        worker.join()

    @traced(name="loud", tracer_provider=harness.provider)
    def loud() -> str:
        report(trace.get_current_span(), "from a thread")
        return "raw"

    @traced(
        name="quiet", capture_input=False, capture_output=False, tracer_provider=harness.provider
    )
    def quiet() -> str:
        report(trace.get_current_span(), "secret")
        return "secret"

    assert (loud(), quiet()) == ("raw", "secret")
    with otel_lifecycle.span(
        "block", capture_output=False, tracer_provider=harness.provider
    ) as block:
        report(block.span, "secret")
    spans = harness.exported()
    assert output_of(spans["loud"]) == "from a thread"
    assert attrs(spans["quiet"]) == {}
    assert attrs(spans["block"]) == {}


def test_a_root_finalized_while_its_body_runs_is_exported_once_with_input_and_id(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    @traced(name="agent.run", conversation_id="conv-9", tracer_provider=harness.provider)
    def run(question: str) -> str:
        assert harness.processor.finalize_open_spans("shutdown") == 1
        return "late answer"

    with caplog.at_level(logging.WARNING):
        assert run("still there?") == "late answer"

    span = harness.exported()["agent.run"]
    assert_error(span, "shutdown", "span not ended before tracer provider shutdown")
    assert input_of(span) == {"question": "still there?"}
    assert attrs(span)["gen_ai.conversation.id"] == "conv-9"
    assert "output.value" not in attrs(span)
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == [
        "otel_lifecycle: finalized 1 open span(s) at shutdown (error.type=shutdown)"
    ]


GLOBAL_PROVIDER_SCRIPT = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otel_lifecycle

@otel_lifecycle.traced
def run(x):
    return x * 2

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(otel_lifecycle.LifecycleSpanProcessor(SimpleSpanProcessor(exporter)))
trace.set_tracer_provider(provider)
run(21)
(span,) = exporter.get_finished_spans()
print(span.name, span.instrumentation_scope.name, span.attributes["output.value"])
"""


def test_bare_decorator_uses_the_global_provider_set_after_decorating() -> None:
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "run otel_lifecycle 42\n"


@pytest.mark.parametrize(
    ("options", "error", "parameter"),
    [
        ({"name": 5}, TypeError, "name"),
        ({"name": ""}, ValueError, "name"),
        ({"conversation_id": 3}, TypeError, "conversation_id"),
        ({"conversation_id": ""}, ValueError, "conversation_id"),
        ({"capture_input": "yes"}, TypeError, "capture_input"),
        ({"capture_output": 1}, TypeError, "capture_output"),
        ({"tracer_provider": object()}, TypeError, "tracer_provider"),
    ],
)
def test_bad_arguments_raise_naming_the_parameter(
    options: dict[str, Any], error: type[Exception], parameter: str
) -> None:
    with pytest.raises(error, match=parameter):
        traced(**options)


def test_decorating_a_non_callable_raises_type_error() -> None:
    with pytest.raises(TypeError, match="traced\\(\\) needs a callable, got int"):
        traced(5)


def test_a_finalizer_that_loses_to_the_body_leaves_the_run_as_it_ended(harness: Harness) -> None:
    """A finalizer claims the open root; the body returns first: the root is OK, with output."""
    finalizer = threading.Thread(target=harness.processor.finalize_open_spans, args=("shutdown",))
    pinned: list[PinnedLock] = []

    @traced(name="agent.run", conversation_id="conv-7", tracer_provider=harness.provider)
    def run() -> str:
        pinned.append(pin(trace.get_current_span(), finalizer))
        finalizer.start()
        assert pinned[0].reached.wait(10)  # claimed, not yet ended by the finalizer
        return "answer"

    assert run() == "answer"
    pinned[0].go.set()
    finalizer.join()

    span = harness.exported()["agent.run"]
    assert span.status.status_code is StatusCode.OK
    assert output_of(span) == "answer"
    assert attrs(span)["gen_ai.conversation.id"] == "conv-7"
    assert "error.type" not in attrs(span)
    assert "otel_lifecycle.finalized_by" not in attrs(span)
    assert dict(harness.processor.stats().finalized) == {}
