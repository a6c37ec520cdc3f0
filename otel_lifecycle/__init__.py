"""otel_lifecycle: every span that was started is exported exactly once, with how it ended."""

from __future__ import annotations

from otel_lifecycle._configure import configure
from otel_lifecycle._conversation import conversation
from otel_lifecycle._instrument import LifecycleConfigurator
from otel_lifecycle._processor import LifecycleSpanProcessor
from otel_lifecycle._recover import RecoveryError, recover
from otel_lifecycle._span import TracedSpan, fail, set_output, span
from otel_lifecycle._stats import LifecycleStats
from otel_lifecycle._traced import traced

__all__ = [
    "LifecycleConfigurator",
    "LifecycleSpanProcessor",
    "LifecycleStats",
    "RecoveryError",
    "TracedSpan",
    "configure",
    "conversation",
    "fail",
    "recover",
    "set_output",
    "span",
    "traced",
]
