"""The package's background threads, which leave SIGTERM and SIGINT to the application's.

Python runs signal handlers in the main thread, but the kernel hands a
process-directed signal to any thread that does not block it. When it picks a
thread of ours while the main thread waits on a lock (``Event.wait()`` with no
timeout, a common way to idle), the main thread is not woken and the handler
does not run until something else wakes it. Every thread the package starts
blocks those two signals first, so the kernel delivers them elsewhere.

A thread of ours is woken through a socket pair, never a ``threading.Event``:
``wake()`` sends one byte and takes no lock, so a signal handler may call it
even when the thread it interrupted was inside ``Event.set()`` or ``wait()``.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
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


def wakeup_pair() -> tuple[socket.socket, socket.socket]:
    """A non-blocking (reader, writer) pair: the waiting thread reads, anyone writes."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    return reader, writer


def wake(writer: socket.socket) -> None:
    """Wake the thread reading the pair: one byte, no lock (safe in a signal handler)."""
    with contextlib.suppress(BlockingIOError, OSError):
        writer.send(b"\0")  # fails only when wake-ups fill the buffer, or once closed


def wait_woken(reader: socket.socket, timeout: float | None) -> bool:
    """Wait until woken (or the writer closed) or ``timeout`` passed; True if woken."""
    woken = bool(select.select([reader], [], [], timeout)[0])
    if woken:
        with contextlib.suppress(BlockingIOError, OSError):
            while reader.recv(4096):
                pass
    return woken
