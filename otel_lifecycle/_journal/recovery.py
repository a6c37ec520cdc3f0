"""``recover()``: export the roots of crashed processes from a crash journal, once.

Used by ``otel-lifecycle recover``; a process that opens a journal runs the same
recovery in the background at start (see ``writer``).
"""

from __future__ import annotations

import os
import sqlite3
import time

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_lifecycle._journal.record import recovered_span
from otel_lifecycle._journal.store import claim_crashed, open_journal
from otel_lifecycle._journal.writer import DEFAULT_STALE_AFTER
from otel_lifecycle._settings.checks import check_path, check_seconds


class RecoveryError(RuntimeError):
    """Nothing was recovered: the journal cannot be used, or the export failed.

    After a failed export the roots are still in the journal.
    """


class UnusableJournalError(RecoveryError):
    """The journal is missing, not a journal of ours, damaged, or cannot be read."""


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
    roots stay in the journal and ``RecoveryError`` is raised.

    ``RecoveryError`` is also raised when ``journal`` does not exist (it is not
    created), is not a journal of ours (left untouched), is damaged (it is moved
    aside and nothing is recovered from it), or cannot be read.
    """
    path = check_path("journal", journal)
    if not isinstance(exporter, SpanExporter):
        raise TypeError(f"exporter must be a SpanExporter, got {type(exporter).__name__}")
    stale_after_ns = int(check_seconds("stale_after", stale_after, allow_zero=False) * 1e9)
    try:
        connection = open_journal(path, create=False)
    except (sqlite3.Error, OSError) as error:
        raise UnusableJournalError(f"cannot use the crash journal {path}: {error}") from error
    try:
        with claim_crashed(connection, None, time.time_ns(), stale_after_ns) as claimed:
            if claimed:
                result = exporter.export([recovered_span(root) for root in claimed])
                if result is not SpanExportResult.SUCCESS:
                    raise RecoveryError(
                        f"could not export {len(claimed)} recovered span(s); they stay in {path}"
                    )
    except sqlite3.Error as error:
        raise UnusableJournalError(f"cannot read the crash journal {path}: {error}") from error
    finally:
        connection.close()
    return len(claimed)
