"""Pinned interleavings: stop one thread at a chosen point of a span's life, with events.

The races these tests show last a few bytecodes; a test makes them certain by
stopping one thread where the race opens and letting another run through, never
by sleeping.
"""

from __future__ import annotations

import threading
from types import TracebackType

from opentelemetry import trace
from opentelemetry.sdk.trace import Span


class PinnedLock:
    """A span's own lock that stops ``thread`` once, just after it first releases it.

    A finalizer takes the span's lock to check it is open and record its claim,
    releases it, then calls ``end()``: ``reached`` is set at that point, and the
    finalizer waits there until ``go`` is set. Every other thread, and the same
    thread later, uses the lock as usual.
    """

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.reached = threading.Event()
        self.go = threading.Event()
        self._lock = threading.Lock()
        self._armed = True

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()
        if self._armed and threading.current_thread() is self.thread:
            self._armed = False
            self.reached.set()
            assert self.go.wait(30), "the test never let the pinned thread go on"

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def pin(span: trace.Span, thread: threading.Thread) -> PinnedLock:
    """Give the live ``span`` a :class:`PinnedLock` for ``thread`` (not started yet)."""
    assert isinstance(span, Span)
    pinned = PinnedLock(thread)
    span._lock = pinned  # type: ignore[assignment]
    return pinned
