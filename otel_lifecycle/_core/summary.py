"""The one WARNING line an operator sees for each batch of spans the processor ended itself.

A batch is one finalization (shutdown, SIGTERM, a root timeout, a flush in
``finalize`` mode, ``finalize_open_spans``) that ended at least one span, or
one recovery from the crash journal. The line says how many spans and why
(after the prefix ``otel_lifecycle:``)::

    finalized 3 open span(s) at shutdown (error.type=shutdown)
    finalized 3 open span(s) at shutdown (error.type=shutdown: 2, ValueError: 1)
    recovered 2 span(s) of crashed processes from j.db (error.type=process_crash)

The second form is a batch whose spans keep reasons of their own (marked by
SIGINT or an unhandled exception before they were finalized).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from otel_lifecycle._core.finalize import FLUSH, PROCESS_CRASH, SHUTDOWN, SIGTERM, TIMEOUT, Reason
from otel_lifecycle._core.metrics import RECOVERED, TOTALS

LOGGER_NAME = "otel_lifecycle.finalized"
"""A stable logger name, documented, so that operators can route or silence the line."""

_logger = logging.getLogger(LOGGER_NAME)

_WHEN = {
    SHUTDOWN: "at shutdown",
    SIGTERM: "on SIGTERM",
    TIMEOUT: "at root timeout",
    FLUSH: "on flush",
}


def log_finalized(reason: Reason, ended: Mapping[str, int]) -> None:
    """Log the batch finalized for ``reason``: ``ended`` spans by ``error.type``; none if empty.

    This may run in a signal handler, in the thread it interrupted. The logging
    module's lock and its handlers' locks are RLocks: if that thread was
    logging, the call re-enters them instead of deadlocking.
    """
    total = sum(ended.values())
    if not total:
        return
    when = _WHEN.get(reason, "by finalize_open_spans()")
    if len(ended) == 1:
        reasons = next(iter(ended))
    else:
        ordered = sorted(ended.items(), key=lambda item: (-item[1], item[0]))
        reasons = ", ".join(f"{error_type}: {count}" for error_type, count in ordered)
    _logger.warning(
        "otel_lifecycle: finalized %s open span(s) %s (error.type=%s)", total, when, reasons
    )


def report_recovered(count: int, path: str) -> None:
    """Count and log ``count`` spans recovered from the crash journal at ``path``.

    Counted here, for the metrics, because the journal belongs to no
    processor's counters.
    """
    TOTALS.add(RECOVERED, None, count)
    _logger.warning(
        "otel_lifecycle: recovered %s span(s) of crashed processes from %s (error.type=%s)",
        count,
        path,
        PROCESS_CRASH.error_type,
    )
