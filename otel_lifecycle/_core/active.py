"""The live processors of this process, and the one interface the layers around the core use.

The process hooks (``_process``) and the metrics drive processors only through
:class:`Lifecycle`; a processor adds itself with :func:`add` when it is created.
Weak references: a processor that is garbage-collected leaves by itself.
"""

from __future__ import annotations

import weakref
from typing import Protocol

from otel_lifecycle._core.finalize import Reason


class Lifecycle(Protocol):
    """What the process hooks and the metrics see of a processor."""

    _handles_signals: bool
    """Whether it asked for SIGTERM and SIGINT handling."""
    _drain_timeout: float | None
    """Its drain window after SIGTERM, if set."""

    def _open_span_count(self) -> int:
        """How many spans are open (the metrics' gauge)."""

    def _drain_started(self) -> None:
        """SIGTERM reached a process that drains: spans open at shutdown end as ``SIGTERM``."""

    def _die_of_signal(self, reason: Reason) -> None:
        """In a signal handler, the process about to die: finalize, export, shut down."""

    def _end_for_signal(self, reason: Reason) -> None:
        """In a signal handler, the process living on: finalize what can be, export."""

    def _end_after_drain(self, reason: Reason) -> None:
        """After the drain window, in a thread of its own: finalize what is still open."""

    def _mark_open_spans(self, reason: Reason) -> None:
        """Record ``reason`` on every open span without ending it or taking a lock (SIGINT)."""

    def _record_unhandled(
        self, reason: Reason, exception: BaseException, thread: int | None
    ) -> None:
        """Record an unhandled exception on the open local roots (of ``thread``, if given)."""

    def _before_fork(self) -> None:
        """``os.fork()`` is about to run."""

    def _after_fork_in_parent(self) -> None:
        """``os.fork()`` returned in the parent."""

    def _reset_after_fork(self) -> None:
        """``os.fork()`` returned in the child: the parent's open spans are the parent's."""

    def shutdown(self) -> None:
        """Finalize every open span, then shut the export path down. Idempotent."""


_live: weakref.WeakSet[Lifecycle] = weakref.WeakSet()


def add(processor: Lifecycle) -> None:
    """Count ``processor`` among the live ones until it is garbage-collected."""
    _live.add(processor)


def live() -> list[Lifecycle]:
    """The live processors, in no particular order."""
    return list(_live)
