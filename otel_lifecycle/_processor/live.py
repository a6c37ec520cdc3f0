"""``processors()``: the lifecycle processors alive in this process, for operators and tests."""

from __future__ import annotations

from otel_lifecycle._core.active import live
from otel_lifecycle._processor.processor import LifecycleSpanProcessor


def processors() -> list[LifecycleSpanProcessor]:
    """The ``LifecycleSpanProcessor`` instances of this process, in no particular order.

    Every processor created here and not garbage-collected yet, shut down or
    not, including one that ``opentelemetry-instrument`` or ``configure()``
    created; a forked child lists the ones it inherited.
    """
    return [processor for processor in live() if isinstance(processor, LifecycleSpanProcessor)]
