"""Counters kept by the processor, and their immutable snapshot."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class LifecycleStats:
    """A snapshot of a ``LifecycleSpanProcessor``'s state, from ``stats()``."""

    open_traces: int
    """Traces with at least one open span in this process."""
    open_spans: int
    """Spans started and not yet ended."""
    finalized: Mapping[str, int]
    """Spans the processor finalized, by reason (``error.type``)."""
    untracked: int
    """Spans started while ``max_tracked_spans`` spans were open, left untracked."""
    dropped_overflow: int
    """Spans the owned batch processor dropped because its queue was full."""
    internal_errors: int
    """Errors inside the processor that were caught instead of reaching the application."""


class Counters:
    """Event counters. Only rare events are counted, so one lock is cheap."""

    __slots__ = ("_finalized", "_lock", "_totals")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finalized: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()

    def finalized(self, reason: str, count: int) -> None:
        """Count spans finalized for ``reason``."""
        with self._lock:
            self._finalized[reason] += count

    def add(self, name: str) -> None:
        """Count one ``untracked``, ``dropped_overflow`` or ``internal_errors`` event."""
        with self._lock:
            self._totals[name] += 1

    def snapshot(self, open_traces: int, open_spans: int) -> LifecycleStats:
        """The counters, with the open counts given by the caller."""
        with self._lock:
            return LifecycleStats(
                open_traces=open_traces,
                open_spans=open_spans,
                finalized=MappingProxyType(dict(self._finalized)),
                untracked=self._totals["untracked"],
                dropped_overflow=self._totals["dropped_overflow"],
                internal_errors=self._totals["internal_errors"],
            )
