"""Run a call that may hang (a delegate's shutdown) within a time budget, on a reused thread.

A few daemon threads per process run the calls. A call goes to an idle thread,
or to a new one while fewer than ``MAX_THREADS`` exist; the caller waits at most
its budget. A call that hangs keeps its thread, so only hung calls ever add
threads, and once ``MAX_THREADS`` are hung a new call fails at once instead of
starting another. A thread holds nothing between calls, and a forked child
starts with none. No lock is taken: a signal handler may make a bounded call
whatever the thread it interrupted was doing (a thread whose start failed still
counts towards ``MAX_THREADS``).

Python 3.12 and later refuse to start a thread once the interpreter is
finalizing, which is when ``atexit`` hooks run. A user that will need a bounded
call at exit has a thread wait for it beforehand (``reserve_for()``); a call that
still finds no thread and cannot start one fails at once, as when every thread
hangs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable

from otel_lifecycle._core.threads import background

_logger = logging.getLogger(__name__)

MAX_THREADS = 4
"""Threads running bounded calls at most, per process."""

_Call = tuple[Callable[[], object], list[object], threading.Event]


class BoundedCaller:
    """The threads that run bounded calls: idle ones are reused, started only when none is."""

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue[_Call]] = []
        self._started = itertools.count()
        """Numbers the threads started (or tried): taken without a lock, like ``_idle``."""

    def call_within(self, function: Callable[[], object], timeout: float) -> bool:
        """Run ``function`` on a thread of the pool and wait at most ``timeout`` seconds for it.

        True if it finished in time and returned a truthy value or None; False if
        it overran, returned False, raised (logged), or every thread is hung.
        """
        calls = self._worker()
        if calls is None:
            _logger.warning(
                "otel_lifecycle: no thread for a bounded call (%d earlier calls hang, or the "
                "interpreter is exiting); not waiting for it",
                MAX_THREADS,
            )
            return False
        outcome: list[object] = []
        done = threading.Event()
        calls.put((function, outcome, done))
        return done.wait(max(timeout, 0.0)) and outcome[0] is not False

    def reserve(self) -> None:
        """Have a thread wait idle (unless every thread hangs), so a later call starts none."""
        calls = self._worker()
        if calls is not None:
            self._idle.append(calls)

    def _worker(self) -> queue.SimpleQueue[_Call] | None:
        """An idle thread's queue, else a new one's; None if every thread hangs or none starts."""
        with contextlib.suppress(IndexError):
            return self._idle.pop()
        if next(self._started) >= MAX_THREADS:
            return None
        calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        try:
            background(self._serve, "bounded", calls).start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown" (3.12+)
            return None
        return calls

    def _serve(self, calls: queue.SimpleQueue[_Call]) -> None:
        while True:
            function, outcome, done = calls.get()
            try:
                outcome.append(function())
            except Exception:  # a delegate's failure is the caller's False, not a dead thread
                _logger.exception("otel_lifecycle: a bounded call failed")
                outcome.append(False)
            self._idle.append(calls)  # idle before the caller learns the call is done
            done.set()
            del function, outcome, done  # nothing held between calls: what ran can be collected

    def _reset_in_child(self) -> None:
        """After fork: the threads did not survive it."""
        self._idle = []
        self._started = itertools.count()


CALLER = BoundedCaller()
"""The process's pool."""
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=CALLER._reset_in_child)


def call_within(function: Callable[[], object], timeout: float) -> bool:
    """Run ``function`` on the process's pool, waiting at most ``timeout`` seconds."""
    return CALLER.call_within(function, timeout)


def reserve_for(owner: object) -> None:
    """Have a thread of the process's pool wait idle for ``owner``'s later call, now and
    in every forked child while ``owner`` lives (a child starts with no thread)."""
    CALLER.reserve()
    reference = weakref.ref(owner)
    os.register_at_fork(after_in_child=lambda: _reserve_while(reference))


def _reserve_while(reference: weakref.ref[object]) -> None:
    if reference() is not None:
        CALLER.reserve()
