"""The package's background threads, which leave SIGTERM and SIGINT to the application's.

Python runs signal handlers in the main thread, but the kernel hands a
process-directed signal to any thread that does not block it. When it picks a
thread of ours while the main thread waits on a lock (``Event.wait()`` with no
timeout, a common way to idle), the main thread is not woken and the handler
does not run until something else wakes it. Every thread the package starts
blocks those two signals first, so the kernel delivers them elsewhere.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

_BLOCKED = frozenset({signal.SIGTERM, signal.SIGINT})


def block_signals() -> None:
    """Block SIGTERM and SIGINT in the calling thread (where the platform allows it)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)


def background(target: Callable[..., object], name: str, *args: Any) -> threading.Thread:
    """A daemon thread (not started) running ``target(*args)`` with SIGTERM and SIGINT blocked."""

    def run() -> None:
        block_signals()
        target(*args)

    return threading.Thread(target=run, name=f"otel_lifecycle.{name}", daemon=True)
