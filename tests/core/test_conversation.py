"""Conversation ids: the resolution order, the conversation() scope, late ids, their memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import baggage, trace
from opentelemetry.context import attach, detach
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lifecycle import LifecycleSpanProcessor, conversation
from otel_lifecycle._core.conversation import Conversations, NoConversations
from tests.conftest import Harness

MakeHarness = Callable[..., Harness]


def cid(harness: Harness, name: str) -> object:
    span = harness.exported()[name]
    return (span.attributes or {}).get("gen_ai.conversation.id")


def test_span_attribute_keys_are_read_in_order(make_harness: MakeHarness) -> None:
    harness = make_harness()
    harness.tracer.start_span(
        "session", attributes={"session.id": "s", "conversation_id": "c"}
    ).end()
    harness.tracer.start_span("plain", attributes={"conversation_id": "c"}).end()
    assert cid(harness, "session") == "s"
    assert cid(harness, "plain") == "c"


def test_configured_keys_replace_the_defaults(make_harness: MakeHarness) -> None:
    harness = make_harness(conversation_id_keys=["thread"])
    harness.tracer.start_span("custom", attributes={"thread": 7, "session.id": "s"}).end()
    assert cid(harness, "custom") == "7"


def test_a_span_that_sets_its_own_id_keeps_it(make_harness: MakeHarness) -> None:
    harness = make_harness()
    root = harness.tracer.start_span("root", attributes={"session.id": "trace-id"})
    ctx = trace.set_span_in_context(root)
    harness.tracer.start_span(
        "own", context=ctx, attributes={"gen_ai.conversation.id": "mine"}
    ).end()
    harness.tracer.start_span("inherits", context=ctx).end()
    root.end()
    assert (cid(harness, "own"), cid(harness, "inherits"), cid(harness, "root")) == (
        "mine",
        "trace-id",
        "trace-id",
    )


def test_children_in_a_thread_pool_inherit_the_trace_id(make_harness: MakeHarness) -> None:
    harness = make_harness()
    with conversation("conv-1"):
        root = harness.tracer.start_span("root")
    ctx = trace.set_span_in_context(root)

    def work(index: int) -> None:
        harness.tracer.start_span(f"unscoped-{index}").end()
        with conversation("other"):
            harness.tracer.start_span(f"worker-{index}", context=ctx).end()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(work, range(4)))
    root.end()
    assert {cid(harness, f"worker-{index}") for index in range(4)} == {"conv-1"}
    assert {cid(harness, f"unscoped-{index}") for index in range(4)} == {None}


def test_finalization_rereads_the_live_span(make_harness: MakeHarness) -> None:
    harness = make_harness()
    with conversation("scoped"):
        root = harness.tracer.start_span("root")
    root.set_attribute("gen_ai.conversation.id", "changed")
    harness.processor.finalize_open_spans("shutdown")
    assert cid(harness, "root") == "changed"


def test_baggage_beats_the_scope(make_harness: MakeHarness) -> None:
    harness = make_harness()
    token = attach(baggage.set_baggage("session.id", "from-baggage"))
    try:
        with conversation("from-scope"):
            harness.tracer.start_span("root").end()
    finally:
        detach(token)
    assert cid(harness, "root") == "from-baggage"


def test_scope_beats_the_resolver_and_the_resolver_beats_the_fallback(
    make_harness: MakeHarness,
) -> None:
    harness = make_harness(
        conversation_id_resolver=lambda span: f"resolved-{span.name}",
        conversation_id_fallback="uuid",
    )
    with conversation("from-scope"):
        harness.tracer.start_span("scoped").end()
    harness.tracer.start_span("resolved").end()
    assert (cid(harness, "scoped"), cid(harness, "resolved")) == ("from-scope", "resolved-resolved")


def test_resolver_returning_none_falls_through(make_harness: MakeHarness) -> None:
    harness = make_harness(conversation_id_resolver=lambda span: None)
    harness.tracer.start_span("root").end()
    assert cid(harness, "root") is None


def test_trace_id_fallback(make_harness: MakeHarness) -> None:
    harness = make_harness(conversation_id_fallback="trace_id")
    root = harness.tracer.start_span("root")
    root.end()
    assert cid(harness, "root") == trace.format_trace_id(root.get_span_context().trace_id)


def test_uuid_fallback_is_shared_by_the_whole_trace(make_harness: MakeHarness) -> None:
    harness = make_harness(conversation_id_fallback="uuid")
    root = harness.tracer.start_span("root")
    harness.tracer.start_span("child", context=trace.set_span_in_context(root)).end()
    root.end()
    harness.tracer.start_span("other").end()
    value = cid(harness, "root")
    assert isinstance(value, str)
    assert uuid.UUID(value)
    assert cid(harness, "child") == value
    assert cid(harness, "other") not in (None, value)


def test_no_fallback_leaves_the_attribute_unset(make_harness: MakeHarness) -> None:
    harness = make_harness()
    harness.tracer.start_span("root").end()
    assert "gen_ai.conversation.id" not in (harness.exported()["root"].attributes or {})


def test_turned_off_the_processor_gives_no_span_an_id(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys, baggage, scope and the fallback's variable are all ignored; the app's own id is kept.

    Nothing is resolved or remembered (the processor has no ``Conversations``), and
    neither the in-progress marker nor the span finalized at shutdown gets an id.
    """
    monkeypatch.setenv("OTEL_LIFECYCLE_CONVERSATION_ID_FALLBACK", "uuid")
    harness = make_harness(conversation_ids=False)
    token = attach(baggage.set_baggage("session.id", "from-baggage"))
    try:
        with conversation("from-scope"):
            root = harness.tracer.start_span("root", attributes={"session.id": "s"})
            context = trace.set_span_in_context(root)
            harness.tracer.start_span("child", context=context).end()
            harness.tracer.start_span(
                "own", context=context, attributes={"gen_ai.conversation.id": "mine"}
            ).end()
    finally:
        detach(token)
    assert harness.processor.force_flush()
    harness.processor.finalize_open_spans("shutdown")

    exported = [
        (
            span.name,
            (span.attributes or {}).get("gen_ai.conversation.id"),
            (span.attributes or {}).get("otel_lifecycle.state"),
            (span.attributes or {}).get("otel_lifecycle.finalized_by"),
        )
        for span in harness.exporter.get_finished_spans()
    ]
    assert exported == [
        ("child", None, None, None),
        ("own", "mine", None, None),
        ("root", None, "in_progress", None),
        ("root", None, None, "shutdown"),
    ]
    assert isinstance(harness.processor._conversations, NoConversations)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"conversation_id_keys": ["thread"]}, "conversation_id_keys"),
        ({"conversation_id_fallback": "uuid"}, "conversation_id_fallback"),
        ({"conversation_id_resolver": lambda span: "r"}, "conversation_id_resolver"),
    ],
)
def test_turning_them_off_with_an_option_they_need_raises(
    options: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=f"conversation_ids=False ignores {named}: "):
        LifecycleSpanProcessor(
            SimpleSpanProcessor(InMemorySpanExporter()),
            conversation_ids=False,
            **options,  # type: ignore[arg-type]
        )


def test_the_variable_turns_them_off(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's choice wins over the application's resolver: no error, no id."""
    monkeypatch.setenv("OTEL_LIFECYCLE_CONVERSATION_IDS", "false")
    harness = make_harness(conversation_id_resolver=lambda span: "resolved")
    with conversation("from-scope"):
        harness.tracer.start_span("root").end()
    assert cid(harness, "root") is None


def test_conversation_scope_nests_and_restores(make_harness: MakeHarness) -> None:
    harness = make_harness()
    harness.tracer.start_span("before").end()
    with conversation("outer"):
        with conversation("inner") as value:
            harness.tracer.start_span("inner").end()
        harness.tracer.start_span("outer").end()
    harness.tracer.start_span("after").end()
    assert value == "inner"
    names = ("before", "inner", "outer", "after")
    assert [cid(harness, name) for name in names] == [None, "inner", "outer", None]


def test_conversation_scope_is_restored_after_an_exception(make_harness: MakeHarness) -> None:
    harness = make_harness()
    with conversation("outer"):
        with pytest.raises(RuntimeError), conversation("c"):
            raise RuntimeError
        harness.tracer.start_span("outer").end()
    harness.tracer.start_span("after").end()
    assert (cid(harness, "outer"), cid(harness, "after")) == ("outer", None)


def test_conversation_scope_is_isolated_between_asyncio_tasks(make_harness: MakeHarness) -> None:
    harness = make_harness()

    async def main() -> None:
        inside = {"a": asyncio.Event(), "b": asyncio.Event()}

        async def handle(name: str, other: str) -> None:
            with conversation(name):
                inside[name].set()
                await inside[other].wait()
                harness.tracer.start_span(name).end()

        await asyncio.gather(handle("a", "b"), handle("b", "a"))

    asyncio.run(main())
    assert (cid(harness, "a"), cid(harness, "b")) == ("a", "b")


@pytest.mark.parametrize(
    ("value", "error"), [(None, TypeError), (5, TypeError), ("", ValueError), ("  ", ValueError)]
)
def test_conversation_rejects_bad_ids(value: object, error: type) -> None:
    with pytest.raises(error, match="conversation_id"), conversation(value):  # type: ignore[arg-type]
        pass


def test_the_conversation_memory_forgets_the_oldest_trace_first() -> None:
    """A memory of 8 holds the 8 newest traces' ids, never more, after 18 traces."""
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("tests")
    conversations = Conversations(("gen_ai.conversation.id",), None, "none", memory=8)
    trace_ids: list[int] = []
    for number in range(18):
        span = tracer.start_span("root", attributes={"gen_ai.conversation.id": f"c{number}"})
        trace_id = span.get_span_context().trace_id
        conversations.on_start(span, trace_id, None)  # type: ignore[arg-type]
        span.end()
        trace_ids.append(trace_id)
        assert conversations.remembered() == min(number + 1, 8)
    assert [conversations.of_trace(trace_id) for trace_id in trace_ids] == [None] * 10 + [
        f"c{number}" for number in range(10, 18)
    ]
