"""The options of one processor: each keyword argument, else its variable, else its default."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    Fallback,
    OnFlush,
    load_settings,
)


@dataclass(frozen=True)
class ProcessorOptions:
    """What a ``LifecycleSpanProcessor`` was configured with, checked."""

    root_timeout: float | None
    on_flush: OnFlush
    conversation_id_keys: tuple[str, ...]
    conversation_id_fallback: Fallback
    max_tracked_spans: int
    shutdown_timeout: float
    journal: str | None
    handle_signals: bool
    drain_timeout: float | None
    """Only when set by argument or variable: else the server's window, else the default."""
    strict: bool


def processor_options(
    *,
    root_timeout: float | None,
    on_flush: OnFlush | None,
    conversation_id_keys: tuple[str, ...] | list[str] | None,
    conversation_id_fallback: Fallback | None,
    max_tracked_spans: int | None,
    shutdown_timeout: float | None,
    journal: str | os.PathLike[str] | None,
    handle_signals: bool | None,
    drain_timeout: float | None,
) -> ProcessorOptions:
    """Check the arguments given (not None); read the environment for the others."""
    settings = load_settings()
    return ProcessorOptions(
        root_timeout=settings.root_timeout
        if root_timeout is None
        else check_seconds("root_timeout", root_timeout, allow_zero=True) or None,
        on_flush=settings.on_flush
        if on_flush is None
        else check_choice("on_flush", on_flush, ON_FLUSH_VALUES),  # type: ignore[arg-type]
        conversation_id_keys=settings.conversation_id_keys
        if conversation_id_keys is None
        else check_keys("conversation_id_keys", conversation_id_keys),
        conversation_id_fallback=settings.conversation_id_fallback
        if conversation_id_fallback is None
        else check_choice(  # type: ignore[arg-type]
            "conversation_id_fallback", conversation_id_fallback, FALLBACK_VALUES
        ),
        max_tracked_spans=settings.max_tracked_spans
        if max_tracked_spans is None
        else check_positive_int("max_tracked_spans", max_tracked_spans),
        shutdown_timeout=settings.shutdown_timeout
        if shutdown_timeout is None
        else check_seconds("shutdown_timeout", shutdown_timeout, allow_zero=False),
        journal=settings.journal if journal is None else check_path("journal", journal),
        handle_signals=settings.handle_signals
        if handle_signals is None
        else check_bool("handle_signals", handle_signals),
        drain_timeout=check_seconds("drain_timeout", drain_timeout, allow_zero=True)
        if drain_timeout is not None
        else settings.drain_timeout
        if settings.sources.get("drain_timeout") == "environment"
        else None,
        strict=settings.strict,
    )
