"""``recover()``: export the roots of crashed processes from a crash journal, once.

Used by ``otel-lifecycle recover``; a process that opens a journal runs the same
recovery in the background at start (see ``_journal``).
"""

from __future__ import annotations

import os
import time

from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_lifecycle._configure import trace_exporters
from otel_lifecycle._journal import DEFAULT_STALE_AFTER
from otel_lifecycle._journal_record import recovered_span
from otel_lifecycle._journal_store import claim_crashed, open_journal
from otel_lifecycle._settings import check_path, check_seconds


class RecoveryError(RuntimeError):
    """The recovered roots could not be exported; they are still in the journal."""


def recover(
    journal: str | os.PathLike[str],
    exporter: SpanExporter,
    *,
    stale_after: float = DEFAULT_STALE_AFTER,
) -> int:
    """Export every root left in ``journal`` by a process that is gone; return how many.

    An owner is gone when its pid is not alive on this host, or when its
    heartbeat is older than ``stale_after`` seconds. Each root is exported once,
    as a finished span with status ERROR and ``error.type="process_crash"``,
    ending at its owner's last heartbeat, then removed from the journal. Several
    concurrent recoverers never export the same root. If the export fails the
    roots stay in the journal and ``RecoveryError`` is raised. A corrupt journal
    is moved aside (one warning) and nothing is recovered from it.
    """
    path = check_path("journal", journal)
    if not isinstance(exporter, SpanExporter):
        raise TypeError(f"exporter must be a SpanExporter, got {type(exporter).__name__}")
    stale_after_ns = int(check_seconds("stale_after", stale_after, allow_zero=False) * 1e9)
    connection = open_journal(path)
    try:
        with claim_crashed(connection, None, time.time_ns(), stale_after_ns) as claimed:
            if claimed:
                result = exporter.export([recovered_span(root) for root in claimed])
                if result is not SpanExportResult.SUCCESS:
                    raise RecoveryError(
                        f"could not export {len(claimed)} recovered root span(s); "
                        f"they stay in {path}"
                    )
    finally:
        connection.close()
    return len(claimed)


def exporter_from_environment() -> SpanExporter:
    """The OTLP span exporter configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables."""
    (exporter,) = trace_exporters({**os.environ, OTEL_TRACES_EXPORTER: "otlp"})
    return exporter
