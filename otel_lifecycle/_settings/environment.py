"""Settings: every ``OTEL_LIFECYCLE_*`` environment variable is read here, and only here.

Precedence is explicit argument > environment variable > default. A bad explicit
argument raises ``ValueError``/``TypeError`` naming the parameter (a programming
error); a bad environment value logs one warning naming the variable and the
accepted values, and the default is used (an exception while
``opentelemetry-instrument`` loads would kill the host application). The settings
are read by every processor and at the first traced call, so each variable is
warned about once per process, however often it is read.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar, cast

_logger = logging.getLogger(__name__)

T = TypeVar("T")

OnFlush = Literal["snapshot", "finalize", "none"]
Fallback = Literal["none", "trace_id", "uuid"]
Source = Literal["argument", "environment", "default"]

ON_FLUSH_VALUES: tuple[OnFlush, ...] = ("snapshot", "finalize", "none")
FALLBACK_VALUES: tuple[Fallback, ...] = ("none", "trace_id", "uuid")
DEFAULT_CONVERSATION_ID_KEYS: tuple[str, ...] = (
    "gen_ai.conversation.id",
    "session.id",
    "conversation_id",
)
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session_key",
    "private_key",
)
DEFAULT_MAX_VALUE_LENGTH = 4096
MIN_MAX_VALUE_LENGTH = 64
DEFAULT_MAX_TRACKED_SPANS = 10_000
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
DEFAULT_DRAIN_TIMEOUT = 25.0
"""Seconds of drain after SIGTERM when no server says otherwise: Kubernetes' default
grace period of 30 s, less time to export."""

_warned: set[str] = set()
"""Variables whose invalid value was already logged in this process."""
_warned_lock = threading.Lock()


def first_warning(name: str) -> bool:
    """True the first time in this process that ``name`` is reported invalid."""
    with _warned_lock:
        first = name not in _warned
        _warned.add(name)
    return first


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError


def _parse_seconds_or_off(text: str) -> float | None:
    value = float(text.strip())
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return None if value == 0 else value


def _parse_positive_seconds(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value


def _parse_seconds(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return value


def _parse_positive_int(text: str) -> int:
    value = int(text.strip())
    if value <= 0:
        raise ValueError
    return value


def _parse_value_length(text: str) -> int:
    value = int(text.strip())
    if value < MIN_MAX_VALUE_LENGTH:
        raise ValueError
    return value


def _parse_keys(text: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    if not keys:
        raise ValueError
    return keys


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise ValueError
        return lowered

    return parse


def _parse_path(text: str) -> str | None:
    return text.strip() or None


def display(value: object) -> str:
    """A setting's value as written in the environment (``off`` for an unset option)."""
    if value is None:
        return "off"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: its name, parser, default and accepted values."""

    name: str
    setting: str
    parse: Callable[[str], T]
    default: T
    accepted: str
    description: str


VARIABLES: tuple[Variable[object], ...] = cast(
    "tuple[Variable[object], ...]",
    (
        Variable(
            "OTEL_LIFECYCLE_ENABLED",
            "enabled",
            _parse_bool,
            True,
            "true or false",
            "Turn the whole package on or off under auto-configuration.",
        ),
        Variable(
            "OTEL_LIFECYCLE_ROOT_TIMEOUT",
            "root_timeout",
            _parse_seconds_or_off,
            None,
            "seconds (a number >= 0; 0 = off)",
            "Finalize a local root (and its open descendants) open longer than this.",
        ),
        Variable(
            "OTEL_LIFECYCLE_ON_FLUSH",
            "on_flush",
            _parse_choice(ON_FLUSH_VALUES),
            "snapshot",
            " / ".join(ON_FLUSH_VALUES),
            "What force_flush() does to open spans.",
        ),
        Variable(
            "OTEL_LIFECYCLE_CONVERSATION_IDS",
            "conversation_ids",
            _parse_bool,
            True,
            "true or false",
            "Give spans gen_ai.conversation.id by the resolution order; false skips that step.",
        ),
        Variable(
            "OTEL_LIFECYCLE_CONVERSATION_ID_KEYS",
            "conversation_id_keys",
            _parse_keys,
            DEFAULT_CONVERSATION_ID_KEYS,
            "a comma-separated list of attribute/baggage keys",
            "Keys read, in order, to find a span's conversation id.",
        ),
        Variable(
            "OTEL_LIFECYCLE_CONVERSATION_ID_FALLBACK",
            "conversation_id_fallback",
            _parse_choice(FALLBACK_VALUES),
            "none",
            " / ".join(FALLBACK_VALUES),
            "Conversation id when none is found: leave unset, the trace id, or a new UUID.",
        ),
        Variable(
            "OTEL_LIFECYCLE_MAX_TRACKED_SPANS",
            "max_tracked_spans",
            _parse_positive_int,
            DEFAULT_MAX_TRACKED_SPANS,
            "a positive integer",
            "Open spans tracked at most; past it new spans are counted and not tracked.",
        ),
        Variable(
            "OTEL_LIFECYCLE_SHUTDOWN_TIMEOUT",
            "shutdown_timeout",
            _parse_positive_seconds,
            DEFAULT_SHUTDOWN_TIMEOUT,
            "seconds (a number > 0)",
            "Budget for finalizing and exporting at shutdown, even if the exporter hangs.",
        ),
        Variable(
            "OTEL_LIFECYCLE_STRICT",
            "strict",
            _parse_bool,
            False,
            "true or false",
            "Re-raise internal errors instead of logging them (for test suites).",
        ),
        Variable(
            "OTEL_LIFECYCLE_JOURNAL",
            "journal",
            _parse_path,
            None,
            "a file path (empty = off)",
            "SQLite crash journal of open local roots, recovered after SIGKILL or OOM.",
        ),
        Variable(
            "OTEL_LIFECYCLE_CAPTURE",
            "capture",
            _parse_bool,
            True,
            "true or false",
            "Record input.value and output.value on traced() and span() spans.",
        ),
        Variable(
            "OTEL_LIFECYCLE_REDACT_KEYS",
            "redact_keys",
            _parse_keys,
            DEFAULT_REDACT_KEYS,
            "a comma-separated list of key fragments",
            "Values under keys containing one of these are recorded as [REDACTED].",
        ),
        Variable(
            "OTEL_LIFECYCLE_MAX_VALUE_LENGTH",
            "max_value_length",
            _parse_value_length,
            DEFAULT_MAX_VALUE_LENGTH,
            f"an integer >= {MIN_MAX_VALUE_LENGTH}",
            "Maximum characters of a serialized input or output value; longer ones are cut.",
        ),
        Variable(
            "OTEL_LIFECYCLE_HANDLE_SIGNALS",
            "handle_signals",
            _parse_bool,
            True,
            "true or false",
            "Finalize open spans on SIGTERM and mark them on SIGINT, then chain the old handler.",
        ),
        Variable(
            "OTEL_LIFECYCLE_DRAIN_TIMEOUT",
            "drain_timeout",
            _parse_seconds,
            DEFAULT_DRAIN_TIMEOUT,
            "seconds (a number >= 0; 0 = finalize at once)",
            "After SIGTERM to a process that handles it (a server draining), how long spans may "
            "still end on their own before the open ones are finalized; by default the server's "
            "own graceful timeout less a margin, where gunicorn or uvicorn says it.",
        ),
    ),
)


@dataclass(frozen=True)
class Settings:
    """The effective configuration, with where each value came from."""

    enabled: bool
    root_timeout: float | None
    on_flush: OnFlush
    conversation_ids: bool
    conversation_id_keys: tuple[str, ...]
    conversation_id_fallback: Fallback
    max_tracked_spans: int
    shutdown_timeout: float
    strict: bool
    journal: str | None
    capture: bool
    redact_keys: tuple[str, ...]
    max_value_length: int
    handle_signals: bool
    drain_timeout: float
    sources: Mapping[str, Source] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every variable from ``environ`` (default ``os.environ``).

    An empty or blank value counts as unset, as the OpenTelemetry specification
    asks. Each invalid value falls back to the default and is listed in
    ``problems``; it logs a warning only the first time its variable is found
    invalid in this process.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    sources: dict[str, Source] = {}
    problems: list[str] = []
    for variable in VARIABLES:
        raw = env.get(variable.name)
        values[variable.setting] = variable.default
        sources[variable.setting] = "default"
        if raw is None or not raw.strip():
            continue
        try:
            values[variable.setting] = variable.parse(raw)
        except ValueError:
            problem = (
                f"invalid value {raw!r} for {variable.name}: expected {variable.accepted}; "
                f"using the default {display(variable.default)}"
            )
            problems.append(problem)
            if first_warning(variable.name):
                _logger.warning("otel_lifecycle: %s", problem)
        else:
            sources[variable.setting] = "environment"
    return Settings(**values, sources=sources, problems=tuple(problems))  # type: ignore[arg-type]


OTLP_PROTOCOLS = ("grpc", "http/protobuf")


def otlp_traces_protocol(environ: Mapping[str, str] | None = None) -> str:
    """The OTLP protocol for traces, read as the SDK does; a bad value warns and gives grpc."""
    env = os.environ if environ is None else environ
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(name, "").strip().lower()
        if not raw:
            continue
        if raw in OTLP_PROTOCOLS:
            return raw
        _logger.warning(
            "otel_lifecycle: invalid value %r for %s: expected %s; using grpc",
            raw,
            name,
            " or ".join(OTLP_PROTOCOLS),
        )
        break
    return "grpc"
