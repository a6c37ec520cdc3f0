"""Celery prefork workers (billiard): export before a child's ``os._exit``, and say who ended it.

A prefork child never runs an exit hook: it leaves through ``os._exit`` in
billiard's ``Worker._do_exit`` (no atexit, no ``multiprocessing`` finalizer),
and with ``--max-tasks-per-child`` it does so milliseconds after its last task,
long before an export tick. The patches are installed in the main process and
inherited by every child it forks:

- **A child exits** (recycled by ``--max-tasks-per-child`` or
  ``--max-memory-per-child``, warm shutdown, the pool shrinking): Celery sends
  ``worker_process_shutdown`` in the child just before billiard's ``os._exit``.
  The receiver shuts every live processor down there: what ended is exported,
  what is still open is finalized with reason ``shutdown``, within each
  processor's ``shutdown_timeout``.
- **A child is terminated** (hard time limit, ``revoke(terminate=True)``, cold
  shutdown): the main process SIGTERMs it, and billiard's ``_shutdown_cleanup``
  turns that into a ``SystemExit`` that unwinds the task: the task's own spans
  would end UNSET, and the instrumentation's ``run/<task>`` span, which only
  ``task_postrun`` ends, never. The main process first writes why into
  :class:`Terminations`, a table it shares with its children. A new child
  installs billiard's handler last (``reset_signals``, after Celery's
  initializer and ``worker_process_init``); the patched ``reset_signals`` puts a
  handler of ours in front of it, which finalizes the open spans with that
  reason (``TimeLimitExceeded``, ``TaskRevokedError``, ``cold_shutdown``;
  ``SIGTERM`` when nobody said why), exports them, then chains to billiard's.
  After a hard time limit billiard SIGKILLs the child about 0.1 s after the
  SIGTERM: what is exported by then arrives (on these machines, all of it in
  about 10 ms).

A terminate signal that comes while the handler or the exit flush runs waits
until it is done (the rule for signal handlers: never cut short); billiard's
handler then runs as it would have.
"""

from __future__ import annotations

import logging
import mmap
import os
import signal
import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import Any

import wrapt

from otel_lifecycle._core.active import live
from otel_lifecycle._core.finalize import (
    CELERY_COLD_SHUTDOWN,
    CELERY_REVOKED,
    CELERY_TIME_LIMIT,
    SIGTERM,
    Reason,
)
from otel_lifecycle._process.integration import Patches, ProcessHooks, for_each_handling_signals

_logger = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], Any]
"""A Python signal handler: billiard's, which raises ``SystemExit``."""


class Terminations:
    """Why the main process is terminating each child: a table in memory shared across fork.

    An anonymous shared mapping, created in the main process before it forks its
    children. The main process writes ``(pid, reason)`` into the child's slot
    just before it signals the child; the child reads its slot in its signal
    handler: a plain memory read, no lock, no system call. A slot whose pid is
    another process's (a collision, or a pid reused) reads as no reason.
    """

    REASONS = (CELERY_TIME_LIMIT, CELERY_REVOKED, CELERY_COLD_SHUTDOWN)
    """Stored as their position plus one; 0 is no reason."""
    _SLOT = struct.Struct("=ii")
    _SLOTS = 1024

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self._SLOT.size * self._SLOTS)

    def _offset(self, pid: int) -> int:
        return (pid % self._SLOTS) * self._SLOT.size

    def record(self, pid: int, reason: Reason) -> None:
        """In the main process, before it signals child ``pid``: say why."""
        self._SLOT.pack_into(self._memory, self._offset(pid), pid, self.REASONS.index(reason) + 1)

    def take(self, pid: int) -> Reason | None:
        """In child ``pid``: why the main process signalled it, if it said; the slot is cleared."""
        recorded, code = self._SLOT.unpack_from(self._memory, self._offset(pid))
        if recorded != pid or not 0 < code <= len(self.REASONS):
            return None
        self.forget(pid)
        return self.REASONS[code - 1]

    def forget(self, pid: int) -> None:
        """In a new child: what was written for an earlier process with the same pid is not ours."""
        offset = self._offset(pid)
        if self._SLOT.unpack_from(self._memory, offset)[0] == pid:
            self._SLOT.pack_into(self._memory, offset, 0, 0)


@dataclass
class _State:
    """This process's part: the main process records, a child takes over its terminate signal."""

    terminations: Terminations | None = None
    """Created when the main process imports ``billiard.pool``, inherited by its children."""
    term_signals: frozenset[int] = frozenset({signal.SIGTERM})
    """SIGTERM, and the signal billiard terminates with if ``REMAP_SIGTERM`` names another."""
    cold_shutdown: bool = False
    """In the main process: a cold shutdown cancels the running tasks."""
    busy: bool = False
    """In a child: the terminate handler or the exit flush runs; a terminate signal waits."""
    deferred: tuple[int, Handler] | None = None
    """In a child: a terminate signal that waited, and billiard's handler for it."""


_state = _State()


def _patch_billiard(module: ModuleType, hooks: ProcessHooks) -> None:
    """The child takes over its terminate signal; the main process says why it sends it."""
    if _state.terminations is None:
        _state.terminations = Terminations()
    remapped = int(getattr(module, "TERM_SIGNAL", signal.SIGTERM))
    _state.term_signals = frozenset({signal.SIGTERM, remapped})
    _wrap(module, "reset_signals", _after_reset_signals)
    _wrap(module, "TimeoutHandler.on_hard_timeout", _on_hard_timeout)
    _wrap(module, "Pool.terminate", _terminate_pool)


def _patch_request(module: ModuleType, hooks: ProcessHooks) -> None:
    _wrap(module, "Request.terminate", _terminate_request)
    _wrap(module, "Request.cancel", _cancel_request)


def _patch_consumer(module: ModuleType, hooks: ProcessHooks) -> None:
    _wrap(module, "Consumer.cancel_active_requests", _cancel_active_requests)


def _wrap(module: ModuleType, name: str, wrapper: Any) -> None:
    """Wrap one method; one that moved in another version leaves the others wrapped."""
    try:
        wrapt.wrap_function_wrapper(module, name, wrapper)
    except AttributeError:  # another Celery version: that case keeps the reason SIGTERM
        _logger.debug("otel_lifecycle: %s.%s not found; not wrapped", module.__name__, name)


def _patch_signals(module: ModuleType, hooks: ProcessHooks) -> None:
    module.worker_process_shutdown.connect(
        _on_worker_process_shutdown, weak=False, dispatch_uid="otel_lifecycle"
    )


PATCHES: Patches = {
    "billiard.pool": _patch_billiard,
    "celery.worker.request": _patch_request,
    "celery.worker.consumer.consumer": _patch_consumer,
    "celery.signals": _patch_signals,
}


# The main process: say why, then let billiard signal the child.


def _record(pid: object, reason: Reason) -> None:
    terminations = _state.terminations
    if terminations is not None and isinstance(pid, int) and pid > 0:
        try:
            terminations.record(pid, reason)
        except Exception:  # never break the worker
            _logger.exception("otel_lifecycle: could not record why a Celery child is terminated")


def _on_hard_timeout(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Billiard SIGTERMs, then SIGKILLs, the child running a job past its hard time limit."""
    job = args[0] if args else kwargs.get("job")
    if job is not None and not job.ready():
        _record(getattr(job, "_worker_pid", None), CELERY_TIME_LIMIT)
    return wrapped(*args, **kwargs)


def _terminate_pool(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """The pool is terminated (Celery's cold shutdown): every child still there gets SIGTERM."""
    for process in list(getattr(instance, "_pool", None) or ()):
        _record(getattr(process, "pid", None), CELERY_COLD_SHUTDOWN)
    return wrapped(*args, **kwargs)


def _terminate_request(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``revoke(terminate=True)``: the child running the task gets the terminate signal."""
    if getattr(instance, "time_start", None):
        _record(getattr(instance, "worker_pid", None), CELERY_REVOKED)
    return wrapped(*args, **kwargs)


def _cancel_active_requests(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Celery >= 5.5's cold shutdown cancels the running tasks: their children get SIGTERM."""
    _state.cold_shutdown = True
    return wrapped(*args, **kwargs)


def _cancel_request(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """A task cancelled by the cold shutdown (not by a lost broker connection: no reason said)."""
    if _state.cold_shutdown and getattr(instance, "time_start", None):
        _record(getattr(instance, "worker_pid", None), CELERY_COLD_SHUTDOWN)
    return wrapped(*args, **kwargs)


# The child: finalize and export, then billiard's handler.


def _after_reset_signals(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """A new child installed billiard's terminate handlers, its last step: put ours in front.

    Patched in the main process before the fork, or in the child itself when
    the application sets tracing up in ``worker_process_init`` (which runs
    before this).
    """
    result = wrapped(*args, **kwargs)
    try:
        _state.busy = False
        _state.deferred = None
        if _state.terminations is not None:
            _state.terminations.forget(os.getpid())
        if any(processor._handles_signals for processor in live()):
            _take_over()
    except Exception:  # never break the worker
        _logger.exception("otel_lifecycle: could not take over a Celery child's SIGTERM")
    return result


def _take_over() -> None:
    for signum in _state.term_signals:
        previous = signal.getsignal(signum)
        if callable(previous):
            signal.signal(signum, _handler_over(previous))


def _handler_over(previous: Handler) -> Handler:
    def on_terminate(signum: int, frame: FrameType | None) -> None:
        _terminated(signum, frame, previous)

    return on_terminate


def _terminated(signum: int, frame: FrameType | None, previous: Handler) -> None:
    """The main process (or anyone) terminates this child: finalize, export, then billiard's."""
    if _state.busy:
        _state.deferred = (signum, previous)
        return
    _state.busy = True
    try:
        terminations = _state.terminations
        said = None if terminations is None else terminations.take(os.getpid())
        reason = said or SIGTERM
        for_each_handling_signals(
            live(),
            lambda processor: processor._die_of_signal(reason),
            _logger,
            "otel_lifecycle: finalizing a terminated Celery child failed",
        )
    finally:
        _state.busy = False
    previous(signum, frame)


def _on_worker_process_shutdown(**_: object) -> None:
    """The child is about to ``os._exit``: shut every processor down, exporting what it holds."""
    _state.busy = True
    try:
        for processor in live():
            try:
                processor.shutdown()
            except Exception:  # never break the worker
                _logger.exception("otel_lifecycle: shutting down in a Celery child failed")
    finally:
        _state.busy = False
    deferred, _state.deferred = _state.deferred, None
    if deferred is not None:
        signum, previous = deferred
        previous(signum, None)
