"""Counters kept by the processor, and their immutable snapshot.

What a processor counts is also added to the process's totals, which the
metrics report (``metrics``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from otel_lifecycle._core.metrics import DROPPED, FINALIZED, TOTALS, UNTRACKED, install


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
    started_after_shutdown: int
    """Spans started after ``shutdown()``: not tracked, nothing kept."""
    dropped_overflow: int
    """Ordinary (non-root) spans refused because the export queue was full."""
    dropped_priority: int
    """Local roots, finalized spans or in-progress markers refused because the priority
    lane was full (32 x ``OTEL_BSP_MAX_QUEUE_SIZE`` of them waiting for the exporter)."""
    dropped_after_shutdown: int
    """Spans that ended after ``shutdown()`` and were not exported."""
    export_failed: int
    """Spans the exporter raised on or reported a failure for: not exported."""
    unexported_at_shutdown: int
    """Spans still queued or being exported when ``shutdown()`` ran out of time."""
    internal_errors: int
    """Errors inside the processor that were caught instead of reaching the application."""
    journal_stopped: int
    """1 if the crash journal was configured and turned off in this process (it could not
    be used, or its writer failed; one warning said why), else 0."""


COUNTED = (
    "untracked",
    "started_after_shutdown",
    "dropped_overflow",
    "dropped_priority",
    "dropped_after_shutdown",
    "export_failed",
    "unexported_at_shutdown",
    "internal_errors",
    "journal_stopped",
)

_METRIC_OF = {
    "untracked": (UNTRACKED, "tracking_full"),
    "started_after_shutdown": (UNTRACKED, "already_shutdown"),
    "dropped_overflow": (DROPPED, "queue_full"),
    "dropped_priority": (DROPPED, "priority_full"),
    "dropped_after_shutdown": (DROPPED, "already_shutdown"),
    "export_failed": (DROPPED, "export_failed"),
    "unexported_at_shutdown": (DROPPED, "shutdown_timeout"),
}
"""The metric (and its ``error.type``) of each event in ``COUNTED`` that has one."""


class Counters:
    """Event counters. Only rare events are counted, so one lock is cheap.

    The lock is reentrant: a signal handler that counts while the thread it
    interrupted was counting must not deadlock. Each count is also added to
    the process's ``TOTALS``; the first instance creates the metrics'
    instruments.
    """

    __slots__ = ("_finalized", "_lock", "_totals")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._finalized: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()
        install()

    def reset_after_fork(self) -> None:
        """In a forked child: counting starts again (and the parent's lock may be held)."""
        self._lock = threading.RLock()
        self._finalized = Counter()
        self._totals = Counter()

    def finalized(self, reason: str, count: int) -> None:
        """Count spans finalized for ``reason``."""
        with self._lock:
            self._finalized[reason] += count
        TOTALS.add(FINALIZED, reason, count)

    def add(self, name: str, count: int = 1) -> None:
        """Count ``count`` events named in ``COUNTED``."""
        with self._lock:
            self._totals[name] += count
        metric = _METRIC_OF.get(name)
        if metric is not None:
            TOTALS.add(*metric, count)

    def snapshot(self, open_traces: int, open_spans: int) -> LifecycleStats:
        """The counters, with the open counts given by the caller."""
        with self._lock:
            return LifecycleStats(
                open_traces=open_traces,
                open_spans=open_spans,
                finalized=MappingProxyType(dict(self._finalized)),
                **{name: self._totals[name] for name in COUNTED},
            )
