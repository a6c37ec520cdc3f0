"""A processor's settings: each argument given wins over its variable, and says so."""

from __future__ import annotations

import pytest

from otel_lifecycle._settings.processor import processor_settings

NONE_GIVEN = {
    "root_timeout": None,
    "on_flush": None,
    "conversation_ids": None,
    "conversation_id_keys": None,
    "conversation_id_fallback": None,
    "max_tracked_spans": None,
    "shutdown_timeout": None,
    "journal": None,
    "handle_signals": None,
    "drain_timeout": None,
}


def test_arguments_win_over_variables_and_are_marked_as_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two arguments given, two variables set: the arguments win, the other variable holds."""
    monkeypatch.setenv("OTEL_LIFECYCLE_MAX_TRACKED_SPANS", "50")
    monkeypatch.setenv("OTEL_LIFECYCLE_SHUTDOWN_TIMEOUT", "7")

    settings = processor_settings(
        {**NONE_GIVEN, "max_tracked_spans": 5, "conversation_id_keys": ["tenant.session"]}
    )

    assert (settings.max_tracked_spans, settings.shutdown_timeout) == (5, 7.0)
    assert settings.conversation_id_keys == ("tenant.session",)
    assert {name: settings.sources[name] for name in NONE_GIVEN} == {
        "root_timeout": "default",
        "on_flush": "default",
        "conversation_ids": "default",
        "conversation_id_keys": "argument",
        "conversation_id_fallback": "default",
        "max_tracked_spans": "argument",
        "shutdown_timeout": "environment",
        "journal": "default",
        "handle_signals": "default",
        "drain_timeout": "default",
    }


def test_a_root_timeout_of_zero_means_off() -> None:
    """``root_timeout=0`` turns the timeout off, as ``OTEL_LIFECYCLE_ROOT_TIMEOUT=0`` does."""
    assert processor_settings({**NONE_GIVEN, "root_timeout": 0}).root_timeout is None


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("on_flush", "sometimes", ValueError),
        ("max_tracked_spans", 0, ValueError),
        ("drain_timeout", "5", TypeError),
        ("handle_signals", 1, TypeError),
        ("conversation_ids", "false", TypeError),
    ],
)
def test_a_bad_argument_raises_naming_it(name: str, value: object, error: type) -> None:
    """The error is a TypeError or ValueError that names the parameter."""
    with pytest.raises(error, match=name):
        processor_settings({**NONE_GIVEN, name: value})
