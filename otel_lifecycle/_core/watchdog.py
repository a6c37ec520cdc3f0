"""Root timeouts: one background thread that sleeps until the next deadline.

No timer per span and no polling loop. Every local root gets the same timeout,
so a root started later never has an earlier deadline: after each wake-up the
thread only needs the earliest deadline among the roots open now. When no root
is open it sleeps until ``on_root_started`` wakes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from otel_lifecycle._core.open_spans import Root
from otel_lifecycle._core.threads import background


class RootWatchdog:
    """Finds local roots open longer than ``timeout`` and hands them to ``expire``."""

    def __init__(
        self,
        timeout: float,
        clock: Callable[[], float],
        roots: dict[int, Root],
        expire: Callable[[list[int]], None],
    ) -> None:
        self._timeout = timeout
        self._clock = clock
        self._roots = roots
        self._expire = expire
        self._check_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._idle = True
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (again, in a forked child)."""
        self._stopped = False
        self._wake = threading.Event()
        self._check_lock = threading.Lock()
        self._thread = background(self._run, "root_timeouts")
        self._thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread; with ``wait``, let an ongoing check finish first.

        A signal handler neither waits nor wakes the thread: the thread it
        interrupted may hold the wake-up event's lock or what the check needs.
        """
        self._stopped = True
        if not wait:
            return
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def on_root_started(self) -> None:
        """Called for each new local root: wakes the thread if it sleeps with nothing to do."""
        if self._idle:
            self._idle = False
            self._wake.set()

    def check(self) -> float | None:
        """Finalize expired roots now; return the next deadline, or None if no root is open."""
        with self._check_lock:
            now = self._clock()
            expired: list[int] = []
            next_deadline: float | None = None
            for span_id, root in list(self._roots.items()):
                deadline = root[0] + self._timeout
                if deadline <= now:
                    expired.append(span_id)
                elif next_deadline is None or deadline < next_deadline:
                    next_deadline = deadline
            if expired:
                self._expire(expired)
            return next_deadline

    def _run(self) -> None:
        while not self._stopped:
            self._idle = True
            next_deadline = self.check()
            if next_deadline is not None:
                self._idle = False
            wait = None if next_deadline is None else max(next_deadline - self._clock(), 0.0)
            self._wake.wait(wait)
            self._wake.clear()
