"""The crash journal: open spans kept in a SQLite file, recovered after SIGKILL or OOM.

The hot path only appends the span to a ``collections.deque`` (atomic under the
GIL) in ``on_start``. A background writer wakes every ``interval`` seconds,
drains the queue in small batches and writes, in one transaction with the
process's heartbeat, each sampled span still open then: spans shorter than
``interval`` never reach the disk. Every open span is kept, so a recovered trace
shows what was running (the model call, the tool) under its root.

A row leaves only once its span was exported: the export path tells
``exported()`` of each batch its exporter took, and the writer deletes those
rows at once. A span whose export failed keeps its row until the process
exits, so a crash before then still recovers it. Crash windows: a span opened
less than ``interval`` before the process is killed, or that ended and waits
for the export tick without having been written, is lost with it; a span the
collector received before the kill but whose success the exporter had not yet
reported, or whose row was not yet deleted, is exported twice (recovered).

Every ``heartbeat_interval`` the writer refreshes the heartbeat and adopts the
spans of owners that are gone (see ``store``): it hands each to ``export`` as a
finished span, and its row, now its own, leaves once that export succeeded (if
it exits first, the row stays for the next recoverer; a process shutting down
adopts nothing more). Any process sharing the file (a gunicorn master, the
Celery main process, a sibling) so recovers a dead worker's spans within
seconds. All file access happens in the writer thread, so a slow or corrupt
file never delays the application. A fork waits (at most ``FORK_WAIT``
seconds) until the writer is outside SQLite: a child forked in a transaction
could never write to the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import format_span_id, format_trace_id

from otel_lifecycle._core.span_context import SAMPLED, SPAN_ID, TRACE_FLAGS, TRACE_ID
from otel_lifecycle._core.summary import report_recovered
from otel_lifecycle._core.threads import background, wait_woken, wake, wakeup_pair
from otel_lifecycle._journal.record import encode_root, recovered_span
from otel_lifecycle._journal.store import (
    LIVE_OWNERS,
    adopt_crashed,
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
FORK_WAIT = 1.0
"""How long a fork waits for the writer to leave SQLite; a child forked in it journals nothing."""

ConversationOf = Callable[[Span], str | None]
Key = tuple[int, int]
_Item = Span | Key | threading.Event

_ABANDONED: list[sqlite3.Connection] = []
"""Connections inherited by a forked child: kept, never used nor closed (SQLite forbids it)."""


class Journal:
    """Journals this process's open spans in ``path`` and recovers crashed ones."""

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
        stopped: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self._export = export
        self._stopped_writing = stopped
        """Told when journaling turns off (the counters say so)."""
        self._conversation_of = conversation_of
        self._clock = clock
        self._interval = interval
        self._heartbeat_ns = int(heartbeat_interval * 1e9)
        self._stale_after_ns = int(stale_after * 1e9)
        self._closed = False
        self._fork_safe = False
        self._reset()
        reference = weakref.ref(self)
        os.register_at_fork(
            before=lambda: _call(reference, Journal._before_fork),
            after_in_parent=lambda: _call(reference, Journal._after_fork_in_parent),
            after_in_child=lambda: _call(reference, Journal._after_fork_in_child),
        )

    def _reset(self) -> None:
        self.owner = f"{secrets.token_hex(8)}-{os.getpid()}"
        self._pending: deque[_Item] = deque()
        self._accepting = True
        self._stopped = False
        self._recovering = True
        self._adopting = True
        """Whether to adopt dead owners' spans every heartbeat: not once the process shuts down."""
        self._recovery_waiters: deque[threading.Event] = deque()
        self._wake_reader, self._wake_writer = wakeup_pair()
        self._added: dict[Key, Span] = {}
        self._removed: set[Key] = set()
        self._flushes: list[threading.Event] = []
        self._on_disk: set[Key] = set()
        self._last_heartbeat = 0
        self._last_adoption = 0
        self._writing = threading.Lock()
        """Held by the writer while it is inside SQLite; a fork waits for it."""
        self._logged: set[str] = set()
        self._connection: sqlite3.Connection | None = None
        self._thread = background(self._run, "journal")

    def start(self) -> None:
        """Start the writer thread: open the file, recover crashed roots, then journal."""
        LIVE_OWNERS.add(self.owner)
        self._thread.start()

    def opened(self, span: Span) -> None:
        """Hot path: ``span`` started."""
        if self._accepting:
            self._pending.append(span)

    def exported(self, spans: Sequence[ReadableSpan]) -> None:
        """The exporter took ``spans``: their rows, if any, leave at once."""
        on_disk, pending = self._on_disk, self._pending
        if not on_disk:
            return
        asked = False
        for span in spans:
            context = span._context
            key = (context[TRACE_ID], context[SPAN_ID])  # type: ignore[index]
            if key in on_disk:
                pending.append(key)
                asked = True
        if asked:
            wake(self._wake_writer)

    def flush(self, timeout: float) -> bool:
        """Wait until every record queued so far is written; False on timeout or if off."""
        if not self._accepting:
            return False
        done = threading.Event()
        self._pending.append(done)
        wake(self._wake_writer)
        return done.wait(max(timeout, 0.0)) and self._accepting

    def finish_recovery(self, timeout: float) -> bool:
        """Adopt nothing more; wait until the crashed spans found at start were handed
        over; False on timeout.

        A process that shuts down right after it started waits for them, so they
        leave with its own spans instead of after its export path closed.
        """
        self._adopting = False
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
        """Stop the writer and remove this process's owner row and spans, within ``timeout``."""
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
            with self._writing:
                connection = self._connection = open_journal(self.path)
        except (sqlite3.Error, OSError) as error:
            self._disable(f"cannot open the crash journal {self.path}: {error}")
            return
        try:
            with self._writing:
                heartbeat(connection, self.owner, self._clock())
                self._adopt(connection)
            self._recovery_over()
            while True:
                stopping = self._stopped
                with self._writing:
                    self._write(connection)
                if stopping:
                    break
                wait_woken(self._wake_reader, self._interval)
            with self._writing:
                retire(connection, self.owner)
        except sqlite3.Error as error:
            self._disable(f"the crash journal {self.path} failed: {error}")
        finally:
            LIVE_OWNERS.discard(self.owner)
            if self._connection is connection:
                with self._writing:
                    connection.close()

    def _adopt(self, connection: sqlite3.Connection) -> None:
        """Take over the spans of owners that are gone and hand them to ``export``."""
        now = self._clock()
        self._last_adoption = now
        try:
            adopted = adopt_crashed(connection, self.owner, now, self._stale_after_ns)
        except sqlite3.OperationalError as error:
            self._log_once(f"could not recover crashed spans from {self.path}: {error}")
            return
        self._on_disk.update((root.trace_id, root.span_id) for root in adopted)
        for root in adopted:
            self._export(recovered_span(root))
        if adopted:
            _say(report_recovered, len(adopted), self.path)

    def _write(self, connection: sqlite3.Connection) -> None:
        """Write the queue in batches; refresh the heartbeat and adopt when it is due."""
        if self._adopting and self._clock() - self._last_adoption >= self._heartbeat_ns:
            self._adopt(connection)
        while True:
            drained = self._drain()
            now = self._clock()
            added = [
                (key, encode_root(span, self._conversation_of(span)))
                for key, span in self._added.items()
                if self._still_open(key, span)
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

    def _still_open(self, key: Key, span: Span) -> bool:
        """Whether to write ``span``: sampled and open. Its key is on disk from before the
        look, so an export from then on asks for its row to leave."""
        self._on_disk.add(key)
        if span.end_time is None and span._context[TRACE_FLAGS] & SAMPLED:  # type: ignore[index]
            return True
        self._on_disk.discard(key)
        return False

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
                self._added.pop(item, None)
                if item in self._on_disk:
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
        self._removed.clear()
        self._last_heartbeat = now
        return True

    def _disable(self, problem: str) -> None:
        _say(_logger.warning, "otel_lifecycle: %s; journaling is off for this process", problem)
        self._accepting = False
        self._stopped_writing()
        while self._pending:
            item = self._pending.popleft()
            if isinstance(item, threading.Event):
                item.set()

    def _log_once(self, problem: str) -> None:
        if problem not in self._logged:
            self._logged.add(problem)
            _say(_logger.warning, "otel_lifecycle: %s", problem)

    def _before_fork(self) -> None:
        """Wait until the writer is outside SQLite: opening, writing or closing the file."""
        self._fork_safe = not self._closed and self._writing.acquire(timeout=FORK_WAIT)

    def _after_fork_in_parent(self) -> None:
        if self._fork_safe:
            self._writing.release()

    def _after_fork_in_child(self) -> None:
        """Forget the parent's spans and journal as a new owner (the parent's spans on
        disk stay known: one the child exports leaves with it)."""
        if self._connection is not None:
            _ABANDONED.append(self._connection)
        self._wake_reader.close()  # the parent's wake-up pair: the child makes its own
        self._wake_writer.close()
        if self._closed:
            return
        inherited = self._on_disk
        self._reset()
        self._on_disk = inherited
        if self._fork_safe:
            self.start()
        else:
            self._disable(f"forked while the crash journal {self.path} was being written")


def _say(log: Callable[..., None], *args: object) -> None:
    """Log from the writer thread, which a failing log call must not stop: billiard swaps
    the logging handlers' locks in a new Celery child, and a call at that moment raises
    ("cannot release un-acquired lock")."""
    with contextlib.suppress(Exception):
        log(*args)


def _call(reference: weakref.ref[Journal], method: Callable[[Journal], None]) -> None:
    """Around a fork: ``method`` of the journal, unless it is gone."""
    journal = reference()
    if journal is not None:
        method(journal)
