"""otel_lifecycle: every span that was started is exported exactly once, with how it ended."""

from __future__ import annotations

from otel_lifecycle._conversation import conversation
from otel_lifecycle._processor import LifecycleSpanProcessor
from otel_lifecycle._span import TracedSpan, fail, set_output, span
from otel_lifecycle._stats import LifecycleStats
from otel_lifecycle._traced import traced

__all__ = [
    "LifecycleSpanProcessor",
    "LifecycleStats",
    "TracedSpan",
    "conversation",
    "fail",
    "set_output",
    "span",
    "traced",
]
