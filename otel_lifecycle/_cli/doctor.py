"""``otel-lifecycle doctor``: the effective configuration and what would go wrong with it.

Every check prints one line, and each problem is printed once, on the line of
the check that found it. Reading the settings here must not also log their
warnings (they would reach the terminal a second time), so the settings
module's logger is silenced while the doctor reads them. Nothing is created or
changed: the journal path is only examined, the endpoint only connected to.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER

from otel_lifecycle._journal.store import is_journal, journal_problem
from otel_lifecycle._settings.environment import (
    OTLP_PROTOCOLS,
    VARIABLES,
    Settings,
    display,
    load_settings,
    otlp_traces_protocol,
)
from otel_lifecycle._setup.entry_points import find_entry_points

_NAME = "otel_lifecycle"
_CONFIGURATOR_GROUP = "opentelemetry_configurator"
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_CONFIGURATOR_VARIABLE = "OTEL_PYTHON_CONFIGURATOR"
_CONFIG_FILE_VARIABLE = "OTEL_CONFIG_FILE"
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_TRACES_ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
_ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
_DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
_HTTP_TRACES_PATH = "v1/traces"
_DEFAULT_PORTS = {"http": 80, "https": 443}

ENDPOINT_TIMEOUT = 2.0
"""Seconds ``--check-endpoint`` waits for a TCP connection."""


@dataclass(frozen=True)
class Finding:
    """One line of the report, and whether it is a problem."""

    line: str
    problem: bool = False


@contextmanager
def _settings_warnings_silenced() -> Iterator[None]:
    logger = logging.getLogger(load_settings.__module__)
    disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = disabled


def _registered(group: str) -> bool:
    return bool(find_entry_points(group, _NAME))


def _first_configurator() -> str | None:
    """The configurator ``opentelemetry-instrument`` loads when none is selected."""
    return next((entry.name for entry in find_entry_points(_CONFIGURATOR_GROUP)), None)


def instrument_verdict(settings: Settings, environ: Mapping[str, str]) -> Finding:
    """Whether, and how, ``opentelemetry-instrument`` will load the processor."""
    if not settings.enabled:
        return Finding("no: OTEL_LIFECYCLE_ENABLED is false")
    if importlib.util.find_spec("opentelemetry.instrumentation") is None:
        return Finding(
            "no: opentelemetry-instrument is not installed (pip install opentelemetry-distro)"
        )
    if not _registered("opentelemetry_post_instrument"):
        return Finding(
            "no: the otel_lifecycle entry point is not installed (reinstall otel-lifecycle)",
            problem=True,
        )
    if environ.get(_CONFIG_FILE_VARIABLE, "").strip():
        return Finding(
            f"yes, after instrumentation (post-instrument hook): {_CONFIG_FILE_VARIABLE} "
            "is set, so configurators are bypassed"
        )
    selected = environ.get(_CONFIGURATOR_VARIABLE)
    installed = [entry.name for entry in find_entry_points(_CONFIGURATOR_GROUP)]
    if selected is not None and selected not in installed:
        return Finding(
            f"no: {_CONFIGURATOR_VARIABLE}={selected!r} names no installed configurator "
            f"(installed: {', '.join(installed) or 'none'}), so opentelemetry-instrument runs "
            f"none and nothing sets an SDK tracer provider; unset {_CONFIGURATOR_VARIABLE}"
            + (" (otel_lifecycle needs no configurator of its own)" if selected == _NAME else ""),
            problem=True,
        )
    configurator = selected or _first_configurator()
    if configurator is None:
        return Finding(
            "no: no configurator is installed, so nothing sets an SDK tracer provider "
            "(pip install opentelemetry-distro)",
            problem=True,
        )
    return Finding(
        f"yes, after instrumentation (post-instrument hook), in charge of the processors "
        f"the {configurator!r} configurator registers, if it sets an SDK tracer provider"
    )


def _setting_rows(settings: Settings, environ: Mapping[str, str]) -> list[Finding]:
    width = max(len(variable.name) for variable in VARIABLES)
    rows = []
    for variable in VARIABLES:
        value = display(getattr(settings, variable.setting))
        source = settings.sources[variable.setting]
        raw = environ.get(variable.name, "")
        if source == "default" and raw.strip():
            note = f"invalid {raw!r}: expected {variable.accepted}; using the default"
            rows.append(Finding(f"  {variable.name:<{width}}  {value}  ({note})", problem=True))
        else:
            rows.append(Finding(f"  {variable.name:<{width}}  {value}  ({source})"))
    return rows


def journal_finding(path: str | None) -> Finding:
    """The crash journal path: off, fine (existing or to be created), or why it cannot be used."""
    if path is None:
        return Finding("crash journal: off")
    problem = journal_problem(path)
    if problem is not None:
        return Finding(
            f"crash journal: {path}: problem: {problem}; journaling would be off", problem=True
        )
    state = "an otel_lifecycle journal" if is_journal(path) else "will be created"
    return Finding(f"crash journal: {path}: ok, {state}")


@dataclass(frozen=True)
class OtlpTarget:
    """The OTLP protocol and endpoint the standard variables select, and where each came from."""

    protocol: str
    protocol_source: str
    endpoint: str
    endpoint_source: str


def otlp_target(environ: Mapping[str, str]) -> tuple[OtlpTarget, Finding | None]:
    """What the OTLP trace exporter would use; with a problem if the protocol is invalid."""
    protocol = otlp_traces_protocol(environ)
    variable = next((name for name in _PROTOCOL_VARIABLES if environ.get(name, "").strip()), None)
    problem = None
    if variable is not None:
        raw = environ[variable].strip().lower()
        if raw not in OTLP_PROTOCOLS:
            problem = Finding(
                f"exporter otlp: invalid {raw!r} in {variable}: expected "
                f"{' or '.join(OTLP_PROTOCOLS)}; using {protocol}",
                problem=True,
            )
    traces_endpoint = environ.get(_TRACES_ENDPOINT_VARIABLE, "").strip()
    base = environ.get(_ENDPOINT_VARIABLE, "").strip()
    if traces_endpoint:
        endpoint, endpoint_source = traces_endpoint, _TRACES_ENDPOINT_VARIABLE
    else:
        endpoint_source = _ENDPOINT_VARIABLE if base else "default"
        endpoint = base or _DEFAULT_ENDPOINTS[protocol]
        if protocol == "http/protobuf":
            endpoint = f"{endpoint.rstrip('/')}/{_HTTP_TRACES_PATH}"
    target = OtlpTarget(protocol, variable or "default", endpoint, endpoint_source)
    return target, problem


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The names in ``OTEL_TRACES_EXPORTER``, read as ``configure()`` reads them."""
    names = [name.strip().lower() for name in environ.get(OTEL_TRACES_EXPORTER, "").split(",")]
    return list(dict.fromkeys(name for name in names if name)) or ["otlp"]


def endpoint_address(endpoint: str) -> tuple[str, int]:
    """The host and TCP port of an OTLP endpoint URL (or ``host:port``); ValueError if none."""
    parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if not parts.hostname or port is None:
        raise ValueError(f"no host and port in {endpoint!r}")
    return parts.hostname, port


def endpoint_finding(endpoint: str, timeout: float = ENDPOINT_TIMEOUT) -> Finding:
    """Whether a TCP connection to the endpoint's host and port opens within ``timeout``."""
    try:
        host, port = endpoint_address(endpoint)
    except ValueError as error:
        return Finding(f"endpoint {endpoint}: problem: {error}", problem=True)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        return Finding(f"endpoint {host}:{port}: not reachable ({reason})", problem=True)
    return Finding(f"endpoint {host}:{port}: reachable")


def exporter_findings(environ: Mapping[str, str], *, check_endpoint: bool) -> list[Finding]:
    """One line per exporter ``OTEL_TRACES_EXPORTER`` selects, and the endpoint check."""
    names = exporter_names(environ)
    if "none" in names:
        return [Finding(f"exporter: none ({OTEL_TRACES_EXPORTER}=none): spans are not exported")]
    findings = []
    for name in names:
        if name == "otlp":
            target, problem = otlp_target(environ)
            if problem is not None:
                findings.append(problem)
            findings.append(
                Finding(
                    f"exporter otlp: protocol {target.protocol} ({target.protocol_source}), "
                    f"endpoint {target.endpoint} ({target.endpoint_source})"
                )
            )
            if check_endpoint:
                findings.append(endpoint_finding(target.endpoint))
        elif find_entry_points(_EXPORTER_GROUP, name):
            findings.append(Finding(f"exporter {name}: installed"))
        else:
            findings.append(
                Finding(
                    f"exporter {name}: problem: no installed {_EXPORTER_GROUP} entry point "
                    "of that name; it would be skipped",
                    problem=True,
                )
            )
    if check_endpoint and "otlp" not in names:
        findings.append(Finding("endpoint: none to check (no otlp exporter selected)"))
    return findings


def run_doctor(
    environ: Mapping[str, str],
    print_line: Callable[[str], None] = print,
    *,
    check_endpoint: bool = False,
) -> int:
    """Print the effective configuration and its problems; return 1 if there are any, else 0."""
    with _settings_warnings_silenced():
        settings = load_settings(environ)
        findings = [
            Finding("otel_lifecycle settings:"),
            *_setting_rows(settings, environ),
            journal_finding(settings.journal),
            *exporter_findings(environ, check_endpoint=check_endpoint),
        ]
    verdict = instrument_verdict(settings, environ)
    findings.append(Finding(f"opentelemetry-instrument: {verdict.line}", verdict.problem))
    for finding in findings:
        print_line(finding.line)
    problems = sum(finding.problem for finding in findings)
    print_line(f"{problems} problem(s) found" if problems else "no problems found")
    return 1 if problems else 0
