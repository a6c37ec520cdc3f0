"""The settings of one processor: each argument given, else its variable, else its default."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from otel_lifecycle._settings.checks import (
    check_bool,
    check_choice,
    check_keys,
    check_path,
    check_positive_int,
    check_seconds,
)
from otel_lifecycle._settings.environment import (
    FALLBACK_VALUES,
    ON_FLUSH_VALUES,
    Settings,
    load_settings,
)

_CHECKS: Mapping[str, Callable[[str, object], object]] = {
    "root_timeout": lambda name, value: check_seconds(name, value, allow_zero=True) or None,
    "on_flush": lambda name, value: check_choice(name, value, ON_FLUSH_VALUES),
    "conversation_ids": check_bool,
    "conversation_id_keys": check_keys,
    "conversation_id_fallback": lambda name, value: check_choice(name, value, FALLBACK_VALUES),
    "max_tracked_spans": check_positive_int,
    "shutdown_timeout": lambda name, value: check_seconds(name, value, allow_zero=False),
    "journal": check_path,
    "handle_signals": check_bool,
    "drain_timeout": lambda name, value: check_seconds(name, value, allow_zero=True),
}
"""How each keyword argument of ``LifecycleSpanProcessor`` backed by a variable is checked."""


def processor_settings(arguments: Mapping[str, object]) -> Settings:
    """The environment's settings with each argument that is not None checked and applied.

    A bad argument raises ``TypeError``/``ValueError`` naming it; its source
    becomes ``"argument"``.
    """
    settings = load_settings()
    given = {
        name: _CHECKS[name](name, value) for name, value in arguments.items() if value is not None
    }
    sources = {**settings.sources, **dict.fromkeys(given, "argument")}
    return dataclasses.replace(settings, **given, sources=sources)  # type: ignore[arg-type]
