"""``otel-lifecycle doctor``: the effective configuration and how auto-instrumentation loads it."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Callable

from otel_lifecycle._entry_points import find_entry_points
from otel_lifecycle._settings import VARIABLES, Settings, display, load_settings

_NAME = "otel_lifecycle"
_CONFIGURATOR_VARIABLE = "OTEL_PYTHON_CONFIGURATOR"
_CONFIG_FILE_VARIABLE = "OTEL_CONFIG_FILE"


def _registered(group: str) -> bool:
    return bool(find_entry_points(group, _NAME))


def _first_configurator() -> str | None:
    """The configurator ``opentelemetry-instrument`` loads when none is selected."""
    return next((entry.name for entry in find_entry_points("opentelemetry_configurator")), None)


def instrument_verdict(settings: Settings, environ: Mapping[str, str]) -> str:
    """Whether, and how, ``opentelemetry-instrument`` will load the processor."""
    if not settings.enabled:
        return "no: OTEL_LIFECYCLE_ENABLED is false"
    if importlib.util.find_spec("opentelemetry.instrumentation") is None:
        return "no: opentelemetry-instrument is not installed (pip install opentelemetry-distro)"
    if not (
        _registered("opentelemetry_configurator") and _registered("opentelemetry_post_instrument")
    ):
        return "no: the otel_lifecycle entry points are not installed (reinstall otel-lifecycle)"
    if environ.get(_CONFIG_FILE_VARIABLE, "").strip():
        return (
            f"yes, after instrumentation (post-instrument hook): {_CONFIG_FILE_VARIABLE} "
            "is set, so configurators are bypassed"
        )
    configurator = environ.get(_CONFIGURATOR_VARIABLE, "").strip() or _first_configurator()
    if configurator == _NAME:
        return "yes, in front of every exporter (the otel_lifecycle configurator)"
    return (
        f"yes, after instrumentation (post-instrument hook), if the {configurator!r} "
        "configurator sets an SDK "
        f"tracer provider; set {_CONFIGURATOR_VARIABLE}={_NAME} to put it in front of "
        "the exporters"
    )


def run_doctor(environ: Mapping[str, str], print_line: Callable[[str], None] = print) -> int:
    """Print the effective configuration; return 1 if a value is invalid, else 0."""
    settings = load_settings(environ)
    print_line("otel_lifecycle settings:")
    width = max(len(variable.name) for variable in VARIABLES)
    for variable in VARIABLES:
        value = display(getattr(settings, variable.setting))
        source = settings.sources[variable.setting]
        print_line(f"  {variable.name:<{width}}  {value}  ({source})")
    for problem in settings.problems:
        print_line(f"warning: {problem}")
    print_line(f"opentelemetry-instrument: {instrument_verdict(settings, environ)}")
    return 1 if settings.problems else 0
