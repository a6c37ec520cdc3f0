"""Servers that handle SIGTERM themselves: gunicorn workers and uvicorn.

A server that drains on SIGTERM keeps serving the requests in flight for its
graceful timeout, then gives up on them: the gunicorn master SIGKILLs its
workers, uvicorn cancels the tasks (and the ASGI instrumentation ends their spans
as UNSET, as if they had succeeded). The processor's drain window must end
before that, so the requests still running are finalized with reason
``SIGTERM`` and exported while the process still can. This module finds the
server's graceful timeout and tells the process hooks (``hooks``), through
two callbacks, with zero configuration: post-import hooks (``wrapt``) patch the
server when its module is imported in this process.

- **gunicorn**: a worker installs its own SIGTERM handler in
  ``init_signals``, after the fork, replacing ours. The patched
  ``Worker.init_process`` puts ours back in front right after (``take_over``),
  with the worker's ``graceful_timeout``. A handler of gunicorn's found when the processor is
  created later (no ``--preload``) gives the same timeout through
  :func:`drain_of_handler`.
- **uvicorn**: while it serves, SIGTERM goes to ``Server.handle_exit``; the
  patched method starts the drain (``begin_drain``) with
  ``timeout_graceful_shutdown`` (None: uvicorn waits for ever, our default
  applies). uvicorn re-raises SIGTERM after its shutdown, and the process hooks
  then finalize what is left before the process dies.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt

_logger = logging.getLogger(__name__)

MARGIN = 1.0
"""Seconds kept before the server gives up, to finalize and export (a quarter of
shorter timeouts)."""


def drain_window(graceful_timeout: float) -> float:
    """The drain window for a server that gives up after ``graceful_timeout`` seconds."""
    return max(graceful_timeout - min(MARGIN, graceful_timeout / 4), 0.0)


def drain_of_handler(handler: object) -> float | None:
    """The drain window a server's SIGTERM ``handler`` implies, if it is gunicorn's worker's."""
    base = sys.modules.get("gunicorn.workers.base")
    worker = getattr(handler, "__self__", None)
    if base is None or not isinstance(worker, base.Worker):
        return None
    return drain_window(float(worker.cfg.graceful_timeout))


def watch(take_over: Callable[[float], None], begin_drain: Callable[[float | None], None]) -> None:
    """Patch gunicorn and uvicorn when (or if already) imported in this process."""
    wrapt.register_post_import_hook(lambda module: _patch_gunicorn(module, take_over), _GUNICORN)
    wrapt.register_post_import_hook(lambda module: _patch_uvicorn(module, begin_drain), _UVICORN)


_GUNICORN = "gunicorn.workers.base"
_UVICORN = "uvicorn.server"


def _patch_gunicorn(module: ModuleType, take_over: Callable[[float], None]) -> None:
    """Every worker class runs ``Worker.init_process``; some override ``init_signals``.

    The wrapper gives the worker an ``init_signals`` of its own that calls the
    class's (whichever it is), then puts our handler back in front.
    """

    def init_process(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        init_signals = instance.init_signals

        def init_signals_then_take_over() -> None:
            init_signals()
            try:
                take_over(drain_window(float(instance.cfg.graceful_timeout)))
            except Exception:  # never break the server
                _logger.exception("otel_lifecycle: could not take over gunicorn's SIGTERM")

        instance.init_signals = init_signals_then_take_over
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Worker.init_process", init_process)


def _patch_uvicorn(module: ModuleType, begin_drain: Callable[[float | None], None]) -> None:
    def handle_exit(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        signum = args[0] if args else kwargs.get("sig")
        if signum == signal.SIGTERM:
            try:
                timeout = instance.config.timeout_graceful_shutdown
                begin_drain(None if timeout is None else drain_window(float(timeout)))
            except Exception:  # never break the server
                _logger.exception("otel_lifecycle: could not start the drain on uvicorn's SIGTERM")
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Server.handle_exit", handle_exit)
