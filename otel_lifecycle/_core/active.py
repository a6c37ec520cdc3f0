"""``processors()``: the lifecycle processors of this process, for operators and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_lifecycle._process.hooks import _hooks

if TYPE_CHECKING:
    from otel_lifecycle._processor.processor import LifecycleSpanProcessor


def processors() -> list[LifecycleSpanProcessor]:
    """The ``LifecycleSpanProcessor`` instances of this process, in no particular order.

    Every processor created here and not garbage-collected yet, shut down or
    not, including one that ``opentelemetry-instrument`` or ``configure()``
    created; a forked child lists the ones it inherited.
    """
    return _hooks.live()
