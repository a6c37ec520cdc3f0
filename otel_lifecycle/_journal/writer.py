"""The crash journal: open local roots kept in a SQLite file, recovered after SIGKILL or OOM.

The hot path only appends to a ``collections.deque`` (atomic under the GIL): an
"opened" record from ``on_start`` of a local root, a "closed" record from its
``on_end``. A background writer wakes every ``interval`` seconds, drains the
queue in small batches and writes each batch in one transaction, together with
the process's heartbeat. An opened and a closed record of the same root in one
batch cancel out, and a root that has already ended when its batch is written is
skipped, so roots shorter than ``interval`` never reach the disk. The writer
also refreshes the heartbeat every ``heartbeat_interval`` seconds when idle.

Crash window: roots started less than ``interval`` (plus one write) before the
process is killed may not be on disk yet, and are lost with it.

At start the writer first recovers the roots of owners that are gone (see
``store``) and hands each to ``export`` as a finished span, then
journals this process's roots. All file access happens in the writer thread, so
a slow or corrupt file never delays the application.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import format_span_id, format_trace_id

from otel_lifecycle._core.summary import report_recovered
from otel_lifecycle._core.threads import background, wait_woken, wake, wakeup_pair
from otel_lifecycle._journal.record import encode_root, recovered_span
from otel_lifecycle._journal.store import (
    LIVE_OWNERS,
    claim_crashed,
    heartbeat,
    open_journal,
    retire,
    write_batch,
)

_logger = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.1
DEFAULT_HEARTBEAT_INTERVAL = 2.0
DEFAULT_STALE_AFTER = 60.0
MAX_BATCH = 256

ConversationOf = Callable[[Span], str | None]
Key = tuple[int, int]
_Item = Span | Key | threading.Event

_ABANDONED: list[sqlite3.Connection] = []
"""Connections inherited by a forked child: kept, never used nor closed (SQLite forbids it)."""


class Journal:
    """Journals this process's open local roots in ``path`` and recovers crashed ones."""

    def __init__(
        self,
        path: str,
        export: Callable[[ReadableSpan], None],
        conversation_of: ConversationOf,
        *,
        clock: Callable[[], int] = time.time_ns,
        interval: float = DEFAULT_INTERVAL,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        stale_after: float = DEFAULT_STALE_AFTER,
    ) -> None:
        self.path = path
        self._export = export
        self._conversation_of = conversation_of
        self._clock = clock
        self._interval = interval
        self._heartbeat_ns = int(heartbeat_interval * 1e9)
        self._stale_after_ns = int(stale_after * 1e9)
        self._closed = False
        self._reset()
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(reference))

    def _reset(self) -> None:
        self.owner = f"{secrets.token_hex(8)}-{os.getpid()}"
        self.recovered = 0
        self._pending: deque[_Item] = deque()
        self._accepting = True
        self._stopped = False
        self._recovering = True
        self._recovery_waiters: deque[threading.Event] = deque()
        self._wake_reader, self._wake_writer = wakeup_pair()
        self._added: dict[Key, Span] = {}
        self._removed: set[Key] = set()
        self._flushes: list[threading.Event] = []
        self._on_disk: set[Key] = set()
        self._last_heartbeat = 0
        self._logged: set[str] = set()
        self._connection: sqlite3.Connection | None = None
        self._thread = background(self._run, "journal")

    def start(self) -> None:
        """Start the writer thread: open the file, recover crashed roots, then journal."""
        LIVE_OWNERS.add(self.owner)
        self._thread.start()

    def opened(self, span: Span) -> None:
        """Hot path: the local root ``span`` started."""
        if self._accepting:
            self._pending.append(span)

    def closed(self, trace_id: int, span_id: int) -> None:
        """Hot path: the local root with these ids ended."""
        if self._accepting:
            self._pending.append((trace_id, span_id))

    def flush(self, timeout: float) -> bool:
        """Wait until every record queued so far is written; False on timeout or if off."""
        if not self._accepting:
            return False
        done = threading.Event()
        self._pending.append(done)
        wake(self._wake_writer)
        return done.wait(max(timeout, 0.0)) and self._accepting

    def finish_recovery(self, timeout: float) -> bool:
        """Wait until the crashed roots found at start were handed over; False on timeout.

        A process that shuts down right after it started waits for them, so they
        leave with its own spans instead of after its export path closed.
        """
        done = threading.Event()  # of its own: none the thread a signal interrupted may hold
        self._recovery_waiters.append(done)
        if not self._recovering or not self._thread.is_alive():
            return True
        return done.wait(max(timeout, 0.0))

    def _recovery_over(self) -> None:
        self._recovering = False
        while self._recovery_waiters:
            self._recovery_waiters.popleft().set()

    def close(self, timeout: float) -> bool:
        """Stop the writer and remove this process's owner row and roots, within ``timeout``."""
        self._closed = True
        self._stopped = True
        wake(self._wake_writer)
        if self._thread.is_alive():
            self._thread.join(max(timeout, 0.0))
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._journal()
        except Exception as error:  # noqa: BLE001 - the writer must never stop without a word
            self._disable(f"the crash journal writer failed: {error}")
        finally:
            self._recovery_over()

    def _journal(self) -> None:
        try:
            connection = self._connection = open_journal(self.path)
        except (sqlite3.Error, OSError) as error:
            self._disable(f"cannot open the crash journal {self.path}: {error}")
            return
        try:
            heartbeat(connection, self.owner, self._clock())
            self._recover(connection)
            self._recovery_over()
            while True:
                stopping = self._stopped
                self._write(connection)
                if stopping:
                    break
                wait_woken(self._wake_reader, self._interval)
            retire(connection, self.owner)
        except sqlite3.Error as error:
            self._disable(f"the crash journal {self.path} failed: {error}")
        finally:
            LIVE_OWNERS.discard(self.owner)
            if self._connection is connection:
                connection.close()

    def _recover(self, connection: sqlite3.Connection) -> None:
        try:
            with claim_crashed(
                connection, self.owner, self._clock(), self._stale_after_ns
            ) as claimed:
                for root in claimed:
                    self._export(recovered_span(root))
        except sqlite3.OperationalError as error:
            self._log_once(f"could not recover crashed roots from {self.path}: {error}")
            return
        self.recovered = len(claimed)
        if self.recovered:
            report_recovered(self.recovered, self.path)

    def _write(self, connection: sqlite3.Connection) -> None:
        """Write the queue in batches; refresh the heartbeat when it is due."""
        while True:
            drained = self._drain()
            now = self._clock()
            added = [
                (key, encode_root(span, self._conversation_of(span)))
                for key, span in self._added.items()
                if span.end_time is None
            ]
            if added or self._removed:
                if not self._commit(connection, now, added):
                    return
            elif now - self._last_heartbeat >= self._heartbeat_ns:
                heartbeat(connection, self.owner, now)
                self._last_heartbeat = now
            self._added.clear()
            for done in self._flushes:
                done.set()
            self._flushes.clear()
            if drained < MAX_BATCH:
                return

    def _drain(self) -> int:
        count = 0
        while count < MAX_BATCH:
            try:
                item = self._pending.popleft()
            except IndexError:
                break
            count += 1
            if isinstance(item, threading.Event):
                self._flushes.append(item)
            elif isinstance(item, tuple):
                if self._added.pop(item, None) is None and item in self._on_disk:
                    self._removed.add(item)
            else:
                context = item.get_span_context()
                self._added[(context.trace_id, context.span_id)] = item
        return count

    def _commit(
        self, connection: sqlite3.Connection, now: int, added: list[tuple[Key, str]]
    ) -> bool:
        try:
            write_batch(
                connection,
                self.owner,
                now,
                [(format_trace_id(k[0]), format_span_id(k[1]), record) for k, record in added],
                [(format_trace_id(k[0]), format_span_id(k[1])) for k in self._removed],
            )
        except sqlite3.OperationalError as error:
            self._log_once(f"could not write to the crash journal {self.path}, will retry: {error}")
            return False
        self._on_disk.difference_update(self._removed)
        self._on_disk.update(key for key, _ in added)
        self._removed.clear()
        self._last_heartbeat = now
        return True

    def _disable(self, problem: str) -> None:
        _logger.warning("otel_lifecycle: %s; journaling is off for this process", problem)
        self._accepting = False
        while self._pending:
            item = self._pending.popleft()
            if isinstance(item, threading.Event):
                item.set()

    def _log_once(self, problem: str) -> None:
        if problem not in self._logged:
            self._logged.add(problem)
            _logger.warning("otel_lifecycle: %s", problem)

    def _after_fork_in_child(self) -> None:
        if self._connection is not None:
            _ABANDONED.append(self._connection)
        self._wake_reader.close()  # the parent's wake-up pair: the child makes its own
        self._wake_writer.close()
        inherited = self._on_disk
        self._reset()
        self._on_disk = inherited  # the parent's roots on disk: one the child ends leaves with it
        self.start()


def _restart_in_child(reference: weakref.ref[Journal]) -> None:
    """In a forked child: forget the parent's roots and journal as a new owner."""
    journal = reference()
    if journal is not None and not journal._closed:
        journal._after_fork_in_child()
