"""The one interface between the process hooks and the integrations with servers and task queues.

An integration is one module (``servers`` for gunicorn and uvicorn, ``celery``)
with a ``PATCHES`` mapping: the name of a module of the software it supports ->
a :data:`Patch` that patches that module when it is imported in this process
(a ``wrapt`` post-import hook, registered by ``servers.watch``). A patch gets
:class:`ProcessHooks`, what the process hooks let a server change, and drives
the live processors only through ``_core.active`` (a signal handler's work on
each through :func:`for_each_handling_signals`). Adding an integration is
adding such a module and naming it in ``servers.INTEGRATIONS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import NamedTuple

from otel_lifecycle._core.active import Lifecycle


class ProcessHooks(NamedTuple):
    """What an integration may ask of the process hooks (``hooks``), which it cannot import."""

    take_over: Callable[[float], None]
    """The server replaced our SIGTERM handler: put ours back in front, with this drain window."""
    begin_drain: Callable[[float | None], None]
    """SIGTERM reached a server that drains: start the drain, with its window if it has one."""


Patch = Callable[[ModuleType, ProcessHooks], None]
"""Patches one module of a server when it is imported; may raise (the caller logs it)."""

Patches = Mapping[str, Patch]
"""An integration: the modules it patches, by name."""


def for_each_handling_signals(
    processors: Iterable[Lifecycle],
    act: Callable[[Lifecycle], None],
    logger: logging.Logger,
    failure: str,
) -> None:
    """``act`` on each of ``processors`` (the live ones) that handles signals, in a signal handler.

    A failure is logged to ``logger`` as ``failure`` and the next processor gets
    its turn: a signal handler must never fail before chaining to the server's.
    """
    for processor in processors:
        if processor._handles_signals:
            try:
                act(processor)
            except Exception:
                logger.exception(failure)
