"""``span()``, ``fail()``, ``set_output()``: statuses, sanitizing, capture switches, OTLP."""

from __future__ import annotations

import contextvars
import gc
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

import otel_lifecycle
from otel_lifecycle import LifecycleSpanProcessor, span, traced
from otel_lifecycle._settings.environment import DEFAULT_REDACT_KEYS, load_settings
from tests.api._helpers import assert_error, attrs, exception_events, input_of, output_of
from tests.conftest import Harness
from tests.receiver import OtlpReceiver, ReceivedSpan


def test_span_success_with_input_output_and_conversation_id(harness: Harness) -> None:
    with span(
        "pipeline",
        input={"doc": "text"},
        conversation_id="c-1",
        tracer_provider=harness.provider,
    ) as s:
        with harness.tracer.start_as_current_span("step"):
            pass
        s.set_output({"pages": 2})

    spans = harness.exported()
    root = spans["pipeline"]
    assert input_of(root) == {"doc": "text"}
    assert output_of(root) == {"pages": 2}
    assert attrs(root)["gen_ai.conversation.id"] == "c-1"
    assert root.status.status_code is StatusCode.OK
    assert spans["step"].parent == root.context
    assert attrs(spans["step"])["gen_ai.conversation.id"] == "c-1"


def test_span_without_input_or_output_records_neither(harness: Harness) -> None:
    with span("bare", tracer_provider=harness.provider) as s:
        assert s.span.is_recording()

    recorded = attrs(harness.exported()["bare"])
    assert recorded == {}


def test_span_exception_and_base_exception(harness: Harness) -> None:
    with pytest.raises(LookupError), span("lookup", tracer_provider=harness.provider):
        raise LookupError("nothing")
    with pytest.raises(KeyboardInterrupt), span("interrupted", tracer_provider=harness.provider):
        raise KeyboardInterrupt

    spans = harness.exported()
    assert_error(spans["lookup"], "LookupError", "LookupError: nothing")
    assert len(exception_events(spans["lookup"])) == 1
    assert_error(spans["interrupted"], "KeyboardInterrupt", "KeyboardInterrupt")


def test_span_fail_through_the_handle_and_the_module_function(harness: Harness) -> None:
    with span("handle", tracer_provider=harness.provider) as s:
        s.fail("limit reached", error_type="max_iterations")
    with span("current", tracer_provider=harness.provider):
        otel_lifecycle.fail("no answer", error_type="no_answer")

    spans = harness.exported()
    assert_error(spans["handle"], "max_iterations", "limit reached")
    assert_error(spans["current"], "no_answer", "no answer")


def test_an_exception_after_fail_wins(harness: Harness) -> None:
    def body() -> None:
        with span("s", tracer_provider=harness.provider):
            otel_lifecycle.fail("first", error_type="soft")
            raise ValueError("later")

    with pytest.raises(ValueError, match="later"):
        body()

    assert_error(harness.exported()["s"], "ValueError", "ValueError: later")


def test_a_span_enters_once(harness: Harness) -> None:
    scope = span("once", tracer_provider=harness.provider)
    with scope:
        pass
    with pytest.raises(RuntimeError, match="entered only once"), scope:
        pass
    assert list(harness.exported()) == ["once"]


def test_fail_and_set_output_on_a_given_span(harness: Harness) -> None:
    other = harness.tracer.start_span("other")
    otel_lifecycle.set_output(["result", {"token": "t"}], span=other)
    otel_lifecycle.fail("upstream failed", error_type="upstream", span=other)
    other.end()

    exported = harness.exported()["other"]
    assert output_of(exported) == ["result", {"token": "[REDACTED]"}]
    assert_error(exported, "upstream", "upstream failed")


def test_a_span_block_left_unfinished_is_not_kept_alive() -> None:
    """Nothing of the package holds a ``span()`` whose block was dropped before it ended."""
    provider = TracerProvider(shutdown_on_exit=False)  # no processor holds an open span

    def abandon() -> weakref.ref[trace.Span]:
        scope = span("abandoned", tracer_provider=provider)
        return weakref.ref(scope.__enter__().span)

    abandoned = contextvars.copy_context().run(abandon)
    gc.collect()
    assert abandoned() is None


def test_fail_and_set_output_with_no_current_span_do_nothing() -> None:
    otel_lifecycle.fail("nobody listens")
    otel_lifecycle.set_output("nobody listens")


@pytest.mark.parametrize(
    ("call", "error", "parameter"),
    [
        (lambda: span(5), TypeError, "name"),  # type: ignore[arg-type]
        (lambda: span(""), ValueError, "name"),
        (lambda: span("s", conversation_id=lambda a: "x"), TypeError, "conversation_id"),  # type: ignore[arg-type]
        (lambda: span("s", capture_output="no"), TypeError, "capture_output"),  # type: ignore[arg-type]
        (lambda: span("s", tracer_provider="p"), TypeError, "tracer_provider"),  # type: ignore[arg-type]
        (lambda: otel_lifecycle.fail(3), TypeError, "reason"),  # type: ignore[arg-type]
        (lambda: otel_lifecycle.fail("r", error_type=3), TypeError, "error_type"),  # type: ignore[arg-type]
        (lambda: otel_lifecycle.fail("r", error_type=""), ValueError, "error_type"),
        (lambda: otel_lifecycle.fail("r", span="s"), TypeError, "span"),  # type: ignore[arg-type]
        (lambda: otel_lifecycle.set_output(1, span=object()), TypeError, "span"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_naming_the_parameter(
    call: Callable[[], object], error: type[Exception], parameter: str
) -> None:
    with pytest.raises(error, match=parameter):
        call()


def test_secrets_are_redacted_at_any_depth(harness: Harness) -> None:
    @traced(name="login", tracer_provider=harness.provider)
    def login(user: str, password: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"user": user, "session": {"Authorization": "Bearer abc", "cookie": "c=1"}}

    config = {"db": {"hosts": [{"name": "h1", "API-Key": "k1", "private_key": "pk"}]}}
    login("ann", "hunter2", config)

    span_ = harness.exported()["login"]
    assert input_of(span_) == {
        "user": "ann",
        "password": "[REDACTED]",
        "config": {
            "db": {"hosts": [{"name": "h1", "API-Key": "[REDACTED]", "private_key": "[REDACTED]"}]}
        },
    }
    assert output_of(span_) == {
        "user": "ann",
        "session": {"Authorization": "[REDACTED]", "cookie": "[REDACTED]"},
    }
    raw = attrs(span_)["input.value"] + attrs(span_)["output.value"]
    for secret in ("hunter2", "k1", "pk", "Bearer abc", "c=1"):
        assert secret not in raw


def test_redact_keys_and_max_length_from_the_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_REDACT_KEYS", "ssn, card")
    monkeypatch.setenv("OTEL_LIFECYCLE_MAX_VALUE_LENGTH", "80")

    with span(
        "env",
        input={"SSN": "123", "password": "visible now", "blob": "x" * 500},
        tracer_provider=harness.provider,
    ):
        pass

    value = attrs(harness.exported()["env"])["input.value"]
    assert len(value) == 80
    assert value.startswith('{"SSN":"[REDACTED]","password":"visible now","blob":"xxx')
    assert value.endswith(" chars]")


def test_hostile_objects_serialize_to_something_readable(harness: Harness) -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("repr exploded")

    cycle: list[Any] = [1]
    cycle.append(cycle)
    nested: dict[str, Any] = {}
    deepest = nested
    for _ in range(100):
        deepest["next"] = {}
        deepest = deepest["next"]

    @traced(name="hostile", tracer_provider=harness.provider)
    def hostile(bad: Any, cycle: Any, nested: Any, data: bytes, huge: str) -> Any:
        return BadRepr()

    hostile(BadRepr(), cycle, nested, b"\x00\xff", "y" * 10_000)

    span_ = harness.exported()["hostile"]
    value = attrs(span_)["input.value"]
    assert len(value) == 4096
    assert value.startswith(
        '{"bad":"<BadRepr object (repr failed)>","cycle":[1,"<cycle>"],"nested":{"next":'
    )
    assert '"<max depth>"' in value
    assert '"data":"<bytes len=2>","huge":"yyy' in value
    assert value.endswith(" chars]")
    assert output_of(span_) == "<BadRepr object (repr failed)>"
    assert span_.status.status_code is StatusCode.OK


def test_capture_off_by_argument(harness: Harness) -> None:
    @traced(
        name="quiet", capture_input=False, capture_output=False, tracer_provider=harness.provider
    )
    def quiet(secret_doc: str) -> str:
        otel_lifecycle.set_output("explicit")
        return secret_doc

    quiet("private")
    with span(
        "quiet_span", input="private", capture_input=False, tracer_provider=harness.provider
    ) as s:
        s.set_output("kept")

    spans = harness.exported()
    assert attrs(spans["quiet"]) == {}
    assert spans["quiet"].status.status_code is StatusCode.OK
    assert attrs(spans["quiet_span"]) == {
        "output.value": '"kept"',
        "output.mime_type": "application/json",
    }


def test_capture_off_by_environment_and_an_argument_overrides_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_CAPTURE", "FALSE")

    @traced(name="off", tracer_provider=harness.provider)
    def off(x: int) -> int:
        return x

    @traced(name="input_on", capture_input=True, tracer_provider=harness.provider)
    def input_on(x: int) -> int:
        return x

    off(1)
    input_on(2)
    other = harness.tracer.start_span("other")
    otel_lifecycle.set_output("nope", span=other)
    other.end()

    spans = harness.exported()
    assert attrs(spans["off"]) == {}
    assert attrs(spans["input_on"]) == {
        "input.value": '{"x":2}',
        "input.mime_type": "application/json",
    }
    assert attrs(spans["other"]) == {}


@pytest.mark.parametrize(
    ("variable", "raw", "setting", "default"),
    [
        ("OTEL_LIFECYCLE_CAPTURE", "maybe", "capture", True),
        (
            "OTEL_LIFECYCLE_REDACT_KEYS",
            " , ",
            "redact_keys",
            DEFAULT_REDACT_KEYS,
        ),
        ("OTEL_LIFECYCLE_MAX_VALUE_LENGTH", "63", "max_value_length", 4096),
        ("OTEL_LIFECYCLE_MAX_VALUE_LENGTH", "lots", "max_value_length", 4096),
    ],
)
def test_bad_environment_values_warn_once_and_use_the_default(
    caplog: pytest.LogCaptureFixture, variable: str, raw: str, setting: str, default: object
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        settings = load_settings({variable: raw})

    assert getattr(settings, setting) == default
    assert settings.sources[setting] == "default"
    (record,) = caplog.records
    assert variable in record.getMessage()


def test_over_real_otlp_an_agent_that_fails_and_one_that_raises(receiver: OtlpReceiver) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        LifecycleSpanProcessor(OTLPSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True))
    )

    @traced(name="agent.run", conversation_id=lambda a: a["session"], tracer_provider=provider)
    def run(question: str, session: str, api_key: str) -> str:
        with span("tool", input={"q": question}, tracer_provider=provider) as tool:
            tool.set_output("partial")
        if question == "crash":
            raise RuntimeError("tool crashed")
        otel_lifecycle.fail("hit max iterations", error_type="max_iterations")
        return "partial"

    run("loop", "s-1", "sk-live")
    with pytest.raises(RuntimeError):
        run("crash", "s-2", "sk-live")
    provider.shutdown()

    def by_session(spans: tuple[ReceivedSpan, ...]) -> dict[tuple[str, object], ReceivedSpan]:
        return {(s.name, s.attributes.get("gen_ai.conversation.id")): s for s in spans}

    assert receiver.wait_for(lambda spans: len(by_session(spans)) == 4, timeout=10)
    spans = by_session(receiver.spans())
    assert len(receiver.spans()) == 4
    looped, crashed = spans["agent.run", "s-1"], spans["agent.run", "s-2"]
    assert (looped.status_code, looped.status_message) == ("ERROR", "hit max iterations")
    assert looped.attributes["error.type"] == "max_iterations"
    assert json.loads(str(looped.attributes["input.value"])) == {
        "question": "loop",
        "session": "s-1",
        "api_key": "[REDACTED]",
    }
    assert looped.attributes["output.value"] == '"partial"'
    assert crashed.status_code == "ERROR"
    assert crashed.attributes["error.type"] == "RuntimeError"
    assert [event.name for event in crashed.events] == ["exception"]
    tool = spans["tool", "s-2"]
    assert tool.status_code == "OK"
    assert tool.parent_span_id == crashed.span_id
