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
- **gunicorn worker timeout**: the master SIGABRTs a worker stuck in a request
  longer than ``--timeout``; the worker's ``handle_abort`` raises ``SystemExit``,
  which unwinds the request, and the API's ``use_span`` ends its spans UNSET.
  The patched ``handle_abort`` first marks every open span with reason
  ``worker_timeout`` (no lock, as for SIGINT): a span the unwinding ends UNSET
  is exported ERROR with that reason, one left open is finalized with it at exit.
- **uvicorn**: while it serves, SIGTERM goes to ``Server.handle_exit``; the
  patched method starts the drain (``begin_drain``) with
  ``timeout_graceful_shutdown`` (None: uvicorn waits for ever, our default
  applies). uvicorn re-raises SIGTERM after its shutdown, and the process hooks
  then finalize what is left before the process dies.

Every integration, these two and the task queues' (``celery``), is one module
with ``PATCHES`` (``integration``), named in :data:`INTEGRATIONS`; :func:`watch`
registers them all.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt

from otel_lifecycle._core.active import live
from otel_lifecycle._core.finalize import GUNICORN_WORKER_TIMEOUT
from otel_lifecycle._process import celery
from otel_lifecycle._process.integration import (
    Patch,
    Patches,
    ProcessHooks,
    for_each_handling_signals,
)

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
    """Patch every integration's modules when (or if already) imported in this process."""
    hooks = ProcessHooks(take_over, begin_drain)
    for patches in INTEGRATIONS:
        for name, patch in patches.items():
            wrapt.register_post_import_hook(_applying(patch, hooks), name)


def _applying(patch: Patch, hooks: ProcessHooks) -> Callable[[ModuleType], None]:
    def apply(module: ModuleType) -> None:
        try:
            patch(module, hooks)
        except Exception:  # a server changed beyond recognition must still run
            _logger.exception("otel_lifecycle: could not patch %s", module.__name__)

    return apply


def _patch_gunicorn(module: ModuleType, hooks: ProcessHooks) -> None:
    """Every worker class runs ``Worker.init_process``; some override ``init_signals``.

    The wrapper gives the worker an ``init_signals`` of its own that calls the
    class's (whichever it is), then puts our handler back in front. The sync,
    gthread and greenlet workers handle SIGABRT in ``Worker.handle_abort``
    (gunicorn's own asyncio worker, ``gasgi``, in a method of its own).
    """
    take_over = hooks.take_over

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
    wrapt.wrap_function_wrapper(module, "Worker.handle_abort", _handle_abort)


def _handle_abort(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """SIGABRT from the master at ``--timeout``: the request is about to be unwound."""
    for_each_handling_signals(
        live(),
        lambda processor: processor._mark_open_spans(GUNICORN_WORKER_TIMEOUT),
        _logger,
        "otel_lifecycle: marking spans at gunicorn's abort failed",
    )
    return wrapped(*args, **kwargs)


def _patch_uvicorn(module: ModuleType, hooks: ProcessHooks) -> None:
    begin_drain = hooks.begin_drain

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


PATCHES: Patches = {"gunicorn.workers.base": _patch_gunicorn, "uvicorn.server": _patch_uvicorn}

INTEGRATIONS: tuple[Patches, ...] = (PATCHES, celery.PATCHES)
"""Every integration: gunicorn and uvicorn (this module), Celery (``celery``)."""
