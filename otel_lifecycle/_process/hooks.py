"""How the process ends: signals, unhandled exceptions, interpreter exit, fork, multiprocessing.

One hook of each kind for all the live processors (``_core.active``), driven
through their ``Lifecycle`` interface and installed when the first one registers:

- SIGTERM (main thread only, over SIG_DFL or a Python handler, never over
  SIG_IGN). Over SIG_DFL the process is about to die: finalize every open span
  with reason ``SIGTERM``, export, restore SIG_DFL and raise the signal again so
  the process dies by SIGTERM as it would have. Over a Python handler (a server
  draining, an application shutting down gracefully) start a drain window and
  chain to it: spans that end during the window are exported as they end; when
  it ends, a thread finalizes the ones still open with reason ``SIGTERM`` and
  exports them. The window is the processors' ``drain_timeout``, else the
  server's own graceful timeout less a margin (``servers``), else the default.
- SIGINT (main thread only, over a Python handler): mark every open span ERROR
  with ``error.type="KeyboardInterrupt"`` without ending it, then chain (the
  default handler raises KeyboardInterrupt); ``with`` blocks that unwind end their
  spans with that status, the rest are finalized at exit with that reason.
- ``sys.excepthook``: the open local roots record the exception (event and
  ``error.type`` = its type name, kept when they are finalized at exit).
  ``threading.excepthook``: the same, for the local roots the dying thread
  started. Both always call the previous hook.
- ``atexit``: shut every processor down (open spans get reason ``shutdown``),
  re-registered by each new processor so it runs before the SDK's own exit hook.
- ``os.fork``: the child starts with empty tracking; ``multiprocessing`` children
  (fork and spawn) shut down in ``multiprocessing.util.Finalize``, before
  their ``os._exit``.

Once the process is ending (a SIGTERM it dies of is being handled, or a
processor shuts down: the exit hook, the provider's own ``atexit``, the
application), a later SIGTERM or SIGINT does not cut that work short: the
handler returns at once. A SIGTERM that arrived during a shutdown is raised
again when it is done, so the process still dies by it.

Signal work runs in the handler itself and takes no lock that the interrupted
thread could hold: spans whose own lock it holds are skipped, or exported as a
stamped copy when the process is about to die; the export stage is woken
through a socket and waited for with a deadline, so a hanging exporter never
keeps the process from ending past the processors' shutdown timeouts.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType

from otel_lifecycle._core.active import Lifecycle, add, live
from otel_lifecycle._core.finalize import SIGINT, SIGTERM, unhandled
from otel_lifecycle._core.threads import block_signals
from otel_lifecycle._process.servers import drain_of_handler, watch
from otel_lifecycle._settings.environment import DEFAULT_DRAIN_TIMEOUT

_logger = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], object] | int | None

_MULTIPROCESSING_EXIT_PRIORITY = 100
"""``multiprocessing`` runs finalizers with a higher priority first."""


class _Hooks:
    """What the hooks replaced, and the state of the drain; one instance per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.previous_signal_handlers: dict[int, Handler] = {}
        self.previous_excepthook = sys.excepthook
        self.previous_threading_excepthook = threading.excepthook
        self.server_drain: float | None = None
        """The drain window the server running in this process allows, if one said."""
        self.draining = False
        self.ending = 0
        """Shutdowns under way (or 1 while dying of a signal): later signals must not cut them."""
        self.sigterm_while_ending = False


_hooks = _Hooks()


def register(processor: Lifecycle) -> None:
    """Cover ``processor`` by the exit hooks, installing them on first use."""
    with _hooks.lock:
        add(processor)
        _install_hooks()
        atexit.unregister(_at_exit)
        atexit.register(_at_exit)
        if processor._handles_signals:
            _install_signal_handlers()
    if multiprocessing.parent_process() is not None:
        _finalize_before_multiprocessing_exit()


def _install_hooks() -> None:
    if _hooks.installed:
        return
    _hooks.installed = True
    _hooks.previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    _hooks.previous_threading_excepthook = threading.excepthook
    threading.excepthook = _threading_excepthook
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
    multiprocessing.util.register_after_fork(_hooks, _after_multiprocessing_fork)
    watch(_take_over_sigterm, _begin_drain)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        if signum in _hooks.previous_signal_handlers:
            continue
        current = signal.getsignal(signum)
        if callable(current) or (signum == signal.SIGTERM and current == signal.SIG_DFL):
            if signum == signal.SIGTERM:
                _hooks.server_drain = drain_of_handler(current)
            _hooks.previous_signal_handlers[signum] = current
            signal.signal(signum, _on_signal)


def _take_over_sigterm(server_drain: float) -> None:
    """A server replaced our SIGTERM handler with its own: put ours in front of it again."""
    _hooks.server_drain = server_drain
    current = signal.getsignal(signal.SIGTERM)
    if (
        threading.current_thread() is threading.main_thread()
        and signal.SIGTERM in _hooks.previous_signal_handlers
        and callable(current)
        and current is not _on_signal
    ):
        _hooks.previous_signal_handlers[signal.SIGTERM] = current
        signal.signal(signal.SIGTERM, _on_signal)


def _drain_window() -> float:
    for processor in live():
        if processor._handles_signals and processor._drain_timeout is not None:
            return processor._drain_timeout
    return DEFAULT_DRAIN_TIMEOUT if _hooks.server_drain is None else _hooks.server_drain


def _begin_drain(server_drain: float | None = None) -> None:
    """SIGTERM reached a process that drains: finalize what is still open when the window ends.

    Called in a signal handler: the waiting thread is started with ``_thread``,
    which takes none of the locks ``threading`` does (the interrupted code may
    hold them), and the processors only get an attribute set.
    """
    if _hooks.draining:
        return
    _hooks.draining = True
    if server_drain is not None:
        _hooks.server_drain = server_drain
    targets = [processor for processor in live() if processor._handles_signals]
    for processor in targets:
        processor._drain_started()
    window = _drain_window()
    if window > 0:
        _thread.start_new_thread(_finalize_after, (window,))
        return
    for processor in targets:
        try:
            processor._end_for_signal(SIGTERM)
        except Exception:  # a signal handler must never fail before chaining
            _logger.exception("otel_lifecycle: handling SIGTERM failed")


def _finalize_after(window: float) -> None:
    """The drain: spans the application ends meanwhile are exported as it ends them."""
    block_signals()
    time.sleep(window)
    for processor in live():
        if processor._handles_signals:
            try:
                processor._end_after_drain(SIGTERM)
            except Exception:  # a background thread must not die with a traceback
                _logger.exception("otel_lifecycle: finalizing after the drain failed")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _hooks.ending:
        _hooks.sigterm_while_ending |= signum == signal.SIGTERM
        return
    previous = _hooks.previous_signal_handlers.get(signum, signal.SIG_DFL)
    if signum == signal.SIGTERM and callable(previous):
        _begin_drain()
        previous(signum, frame)
        return
    _hooks.ending = int(signum == signal.SIGTERM)
    for processor in live():
        if not processor._handles_signals:
            continue
        try:
            if signum == signal.SIGTERM:
                processor._die_of_signal(SIGTERM)
            else:
                processor._mark_open_spans(SIGINT)
        except Exception:  # a signal handler must never fail before chaining
            _logger.exception("otel_lifecycle: handling signal %s failed", signum)
    if callable(previous):
        previous(signum, frame)
    else:
        _die_of(signum)


def _die_of(signum: int) -> None:
    """End the process by ``signum`` as its default action would."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    try:
        _record_unhandled(exc, None)
    finally:
        _hooks.previous_excepthook(exc_type, exc, traceback)


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    try:
        if args.exc_value is not None and args.thread is not None:
            _record_unhandled(args.exc_value, args.thread.ident)
    finally:
        _hooks.previous_threading_excepthook(args)


def _record_unhandled(exception: BaseException, thread: int | None) -> None:
    reason = unhandled(exception, whole_process=thread is None)
    for processor in live():
        processor._record_unhandled(reason, exception, thread)


@contextlib.contextmanager
def ending() -> Iterator[None]:
    """A shutdown runs: a SIGTERM or SIGINT meanwhile waits until the last one is done.

    A SIGTERM that came meanwhile is then raised again, so the process dies by it.
    """
    _hooks.ending += 1
    try:
        yield
    finally:
        _hooks.ending -= 1
    if not _hooks.ending and _hooks.sigterm_while_ending:
        _die_of(signal.SIGTERM)


def _at_exit() -> None:
    with ending():
        for processor in live():
            processor.shutdown()


def _before_fork() -> None:
    for processor in live():
        processor._before_fork()


def _after_fork_in_parent() -> None:
    for processor in live():
        processor._after_fork_in_parent()


def _after_fork_in_child() -> None:
    _hooks.lock = threading.Lock()
    _hooks.draining = False
    _hooks.ending = 0
    _hooks.sigterm_while_ending = False
    for processor in live():
        processor._reset_after_fork()


def _after_multiprocessing_fork(_hooks_: _Hooks) -> None:
    _finalize_before_multiprocessing_exit()


def _finalize_before_multiprocessing_exit() -> None:
    multiprocessing.util.Finalize(None, _at_exit, exitpriority=_MULTIPROCESSING_EXIT_PRIORITY)
