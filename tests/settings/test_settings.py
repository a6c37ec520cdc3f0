"""Environment parsing of every ``OTEL_LIFECYCLE_*`` variable: valid, invalid, blank, mixed case."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

import otel_lifecycle
from otel_lifecycle._settings.environment import VARIABLES, Variable, load_settings
from tests._paths import ROOT
from tests.conftest import Harness

BY_NAME = {variable.name: variable for variable in VARIABLES}

VALID: list[tuple[str, str, object]] = [
    ("OTEL_LIFECYCLE_ENABLED", "true", True),
    ("OTEL_LIFECYCLE_ENABLED", "False", False),
    ("OTEL_LIFECYCLE_ENABLED", " TRUE\t", True),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", "30", 30.0),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", " 0.5 ", 0.5),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", "1E1", 10.0),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", "0", None),
    ("OTEL_LIFECYCLE_ON_FLUSH", "snapshot", "snapshot"),
    ("OTEL_LIFECYCLE_ON_FLUSH", "FINALIZE", "finalize"),
    ("OTEL_LIFECYCLE_ON_FLUSH", "  None ", "none"),
    ("OTEL_LIFECYCLE_CONVERSATION_IDS", "False", False),
    ("OTEL_LIFECYCLE_CONVERSATION_IDS", " true ", True),
    ("OTEL_LIFECYCLE_CONVERSATION_ID_KEYS", "thread.id", ("thread.id",)),
    ("OTEL_LIFECYCLE_CONVERSATION_ID_KEYS", " a , ,Session.Id ", ("a", "Session.Id")),
    ("OTEL_LIFECYCLE_CONVERSATION_ID_FALLBACK", "trace_id", "trace_id"),
    ("OTEL_LIFECYCLE_CONVERSATION_ID_FALLBACK", " UUID ", "uuid"),
    ("OTEL_LIFECYCLE_CONVERSATION_ID_FALLBACK", "None", "none"),
    ("OTEL_LIFECYCLE_MAX_TRACKED_SPANS", "10", 10),
    ("OTEL_LIFECYCLE_MAX_TRACKED_SPANS", " 250000\n", 250_000),
    ("OTEL_LIFECYCLE_SHUTDOWN_TIMEOUT", "2.5", 2.5),
    ("OTEL_LIFECYCLE_SHUTDOWN_TIMEOUT", " 10 ", 10.0),
    ("OTEL_LIFECYCLE_STRICT", "tRuE", True),
    ("OTEL_LIFECYCLE_STRICT", "false", False),
]

INVALID: list[tuple[str, str]] = [
    ("OTEL_LIFECYCLE_ENABLED", "yes"),
    ("OTEL_LIFECYCLE_ENABLED", "1"),
    ("OTEL_LIFECYCLE_ENABLED", "tr ue"),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", "-1"),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", "30s"),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", "inf"),
    ("OTEL_LIFECYCLE_ROOT_TIMEOUT", "nan"),
    ("OTEL_LIFECYCLE_ON_FLUSH", "always"),
    ("OTEL_LIFECYCLE_CONVERSATION_IDS", "off"),
    ("OTEL_LIFECYCLE_CONVERSATION_ID_KEYS", " , ,"),
    ("OTEL_LIFECYCLE_CONVERSATION_ID_FALLBACK", "trace-id"),
    ("OTEL_LIFECYCLE_MAX_TRACKED_SPANS", "0"),
    ("OTEL_LIFECYCLE_MAX_TRACKED_SPANS", "1.5"),
    ("OTEL_LIFECYCLE_MAX_TRACKED_SPANS", "-3"),
    ("OTEL_LIFECYCLE_SHUTDOWN_TIMEOUT", "0"),
    ("OTEL_LIFECYCLE_SHUTDOWN_TIMEOUT", "soon"),
    ("OTEL_LIFECYCLE_STRICT", "on"),
]


def ids(variable: Variable[object]) -> str:
    return variable.name


@pytest.mark.parametrize("variable", VARIABLES, ids=ids)
@pytest.mark.parametrize(
    "raw", [None, "", "   ", "\t\n"], ids=["unset", "empty", "spaces", "blank"]
)
def test_unset_empty_or_blank_means_the_default(
    caplog: pytest.LogCaptureFixture, variable: Variable[object], raw: str | None
) -> None:
    environ = {} if raw is None else {variable.name: raw}
    settings = load_settings(environ)
    assert getattr(settings, variable.setting) == variable.default
    assert settings.sources[variable.setting] == "default"
    assert settings.problems == ()
    assert caplog.records == []


@pytest.mark.parametrize("variable", VARIABLES, ids=ids)
def test_every_variable_is_documented_in_the_readme(variable: Variable[object]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"| `{variable.name}` |" in readme


@pytest.mark.parametrize(("name", "raw", "expected"), VALID)
def test_valid_values(
    caplog: pytest.LogCaptureFixture, name: str, raw: str, expected: object
) -> None:
    variable = BY_NAME[name]
    settings = load_settings({name: raw})
    assert getattr(settings, variable.setting) == expected
    assert settings.sources[variable.setting] == "environment"
    assert settings.problems == ()
    assert caplog.records == []


@pytest.mark.parametrize(("name", "raw"), INVALID)
def test_invalid_values_warn_once_and_use_the_default(
    caplog: pytest.LogCaptureFixture, name: str, raw: str
) -> None:
    variable = BY_NAME[name]
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        settings = load_settings({name: raw})
    assert getattr(settings, variable.setting) == variable.default
    assert settings.sources[variable.setting] == "default"
    [record] = caplog.records
    message = record.getMessage()
    assert name in message
    assert variable.accepted in message
    assert settings.problems == (message.removeprefix("otel_lifecycle: "),)


def test_an_invalid_variable_is_warned_once_per_process(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    make_harness: Callable[..., Harness],
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_CAPTURE", "maybe")
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        first = make_harness()
        make_harness()

        @otel_lifecycle.traced(tracer_provider=first.provider)
        def answer() -> int:
            return 42

        assert answer() == 42
        again = load_settings()
    [record] = caplog.records
    assert record.getMessage() == (
        "otel_lifecycle: invalid value 'maybe' for OTEL_LIFECYCLE_CAPTURE: expected true or"
        " false; using the default true"
    )
    assert again.problems == (record.getMessage().removeprefix("otel_lifecycle: "),)
