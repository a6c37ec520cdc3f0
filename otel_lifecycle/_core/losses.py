"""Spans that will not reach the backend, said so: counted by reason and named by span id.

The contract is that every span started is exported exactly once, or, where the
process cannot (the exporter failed or hangs, the span ended after shutdown),
counted in ``stats()`` and named in the log. Each reason logs one WARNING per
processor (what happened, where the count is), and every span id at DEBUG on
the ``otel_lifecycle`` loggers, so an operator who needs the ids turns them on
without being flooded by default.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from otel_lifecycle._core.stats import Counters

_logger = logging.getLogger(__name__)

WHY = {
    "dropped_overflow": "the export queue was full",
    "dropped_priority": "32 x the queue size of roots and finalized spans waited for the exporter",
    "export_failed": "the exporter raised or reported a failure",
    "unexported_at_shutdown": "the exporter did not finish within shutdown_timeout",
    "dropped_after_shutdown": "they ended after shutdown()",
    "started_after_shutdown": "they started after shutdown() and are not tracked",
}
"""Each reason a span can be lost, counted under its name in ``stats()``."""


class Losses:
    """Counts and logs the spans a processor could not export, by reason."""

    __slots__ = ("_counters", "_warned")

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._warned: set[str] = set()

    def lost(self, reason: str, spans: Sequence[ReadableSpan]) -> None:
        """``spans`` will not be exported, for ``reason`` (a key of ``WHY``)."""
        if not spans:
            return
        self._counters.add(reason, len(spans))
        if reason not in self._warned:
            self._warned.add(reason)
            _logger.warning(
                "otel_lifecycle: spans are not exported because %s: counted in "
                "stats().%s, their ids logged at DEBUG (logged once)",
                WHY[reason],
                reason,
            )
        if _logger.isEnabledFor(logging.DEBUG):
            _logger.debug(
                "otel_lifecycle: %d span(s) not exported (%s): %s",
                len(spans),
                reason,
                " ".join(f"{span.context.span_id:016x} {span.name}" for span in spans),
            )

    def refused(self, span: ReadableSpan, *, closed: bool, priority: bool) -> None:
        """The export path refused ``span``: it was shut down, or the lane was full."""
        if closed:
            self.lost("dropped_after_shutdown", (span,))
        else:
            self.lost("dropped_priority" if priority else "dropped_overflow", (span,))
