"""The crash journal's SQLite file: owners with heartbeats, open roots, atomic claims.

One file may be shared by several processes (gunicorn workers). Each process
is an *owner*: a random token, its pid and host, and a heartbeat (wall-clock
ns). Each open local root is a row keyed by (trace id, span id) with its owner
and its JSON record. WAL mode lets readers and the writer of other processes
work concurrently; ``busy_timeout`` makes them wait for each other's short
transactions instead of failing.

An owner is gone when it is not the caller and either its heartbeat is older
than ``stale_after`` (any host), or it ran on this host and its pid is not
alive, or it is the caller's own pid but not an owner of this process (a
restarted container often gets the pid of the process it replaces).
``claim_crashed`` takes the write lock first (``BEGIN IMMEDIATE``), so of
several concurrent recoverers exactly one gets each root; it deletes them in
the same transaction once they are exported.

The file is marked as ours: ``PRAGMA application_id`` is ``APPLICATION_ID``, set
when the file is created (in a temporary file, linked into place only once it is
complete, so no other process ever sees a half-made journal). An existing path
that is not a journal of ours (a directory, an empty file, any other file, a
SQLite database without the mark) is refused and never opened for writing,
moved or changed.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from urllib.parse import quote

from opentelemetry.trace import format_span_id, format_trace_id

_logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000

APPLICATION_ID = 0x4F544C43
"""``PRAGMA application_id`` of our journals: "OTLC" in ASCII."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_APPLICATION_ID_OFFSET = 68

LIVE_OWNERS: set[str] = set()
"""Owners (journals) open in this process."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    heartbeat_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS roots (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS roots_by_owner ON roots (owner);
"""


@dataclass(frozen=True)
class ClaimedRoot:
    """A root taken from the journal: its ids, record and its owner's last heartbeat."""

    trace_id: int
    span_id: int
    record: str
    heartbeat_ns: int


class JournalFileError(OSError):
    """The path cannot be used as a journal; the message says why, without the path.

    Nothing is there (when not creating); something that is not a journal of
    ours is there (a directory, any other file: left untouched); or a damaged
    journal of ours was moved aside.
    """


def _foreign(what: str) -> JournalFileError:
    return JournalFileError(f"{what}, not an otel_lifecycle journal; left untouched")


def is_journal(path: str) -> bool:
    """True if ``path`` is a journal of ours, False if nothing is there.

    Only reads the file's first bytes (never through SQLite, never writing).
    Raises ``JournalFileError`` when something else is at ``path``, and
    ``OSError`` when it cannot be examined (e.g. no permission).
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(status.st_mode):
        raise _foreign("it is a directory")
    if not stat.S_ISREG(status.st_mode):
        raise _foreign("it is not a regular file")
    with open(path, "rb") as file:
        header = file.read(_HEADER_SIZE)
    if not header:
        raise _foreign("it is an empty file")
    if len(header) < _HEADER_SIZE or not header.startswith(_SQLITE_MAGIC):
        raise _foreign("it is not a SQLite database")
    offset = _APPLICATION_ID_OFFSET
    if int.from_bytes(header[offset : offset + 4], "big") != APPLICATION_ID:
        raise _foreign("it is a SQLite database of another application")
    return True


def journal_problem(path: str) -> str | None:
    """Why ``path`` could not be used as a journal, or None; creates and changes nothing."""
    try:
        if is_journal(path):
            writable = os.access(path, os.W_OK)
            return None if writable else "the journal is not writable"
    except OSError as error:
        return str(error)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"its directory {directory} does not exist"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is not writable"
    return None


def open_journal(path: str, *, create: bool = True) -> sqlite3.Connection:
    """Open the journal at ``path``, creating it if it does not exist and ``create`` is true.

    Raises ``JournalFileError``, leaving the path as it is, if something other
    than a journal of ours is there, or if nothing is there and ``create`` is
    false. A journal of ours that SQLite finds damaged is moved aside to
    ``<path>.corrupt-<timestamp>-<pid>``: with ``create``, one warning is logged
    and a fresh journal is started; without, ``JournalFileError`` says where it
    went. Raises ``sqlite3.Error`` or ``OSError`` if the file cannot be opened at
    all (locked, no permission).
    """
    if not is_journal(path):
        if not create:
            raise JournalFileError("it does not exist")
        _create(path)
    try:
        return _open(path)
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as error:
        if not is_journal(path):
            raise
        aside = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.replace(path + suffix, aside + suffix)
        if not create:
            raise JournalFileError(f"it was damaged ({error}); moved it to {aside}") from error
        _logger.warning(
            "otel_lifecycle: the crash journal %s is damaged (%s); moved it to %s "
            "and started a new one",
            path,
            error,
            aside,
        )
        _create(path)
        return _open(path)


def _create(path: str) -> None:
    """Create a marked, empty journal at ``path`` unless another process just did."""
    temporary = f"{path}.{secrets.token_hex(4)}.new"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    try:
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(_SCHEMA)
        finally:
            connection.close()
        with suppress(FileExistsError):  # another process created it first: use theirs
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _open(path: str) -> sqlite3.Connection:
    """Connect to the existing journal ``path`` (never creating it) and check it."""
    uri = f"file:{quote(os.path.abspath(path))}?mode=rw"
    connection = sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
    )
    try:
        (application_id,) = connection.execute("PRAGMA application_id").fetchone()
        if application_id != APPLICATION_ID:
            raise _foreign("it is a SQLite database of another application")
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        problems = connection.execute("PRAGMA quick_check").fetchall()
        if problems != [("ok",)]:
            raise sqlite3.DatabaseError(f"quick_check: {problems[:3]}")
    except (sqlite3.Error, JournalFileError):
        connection.close()
        raise
    return connection


def heartbeat(connection: sqlite3.Connection, owner: str, now_ns: int) -> None:
    """Insert or refresh ``owner``'s row (this process), outside or inside a transaction."""
    connection.execute(
        "INSERT INTO owners (owner, pid, host, heartbeat_ns) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (owner) DO UPDATE SET heartbeat_ns = excluded.heartbeat_ns",
        (owner, os.getpid(), socket.gethostname(), now_ns),
    )


def write_batch(
    connection: sqlite3.Connection,
    owner: str,
    now_ns: int,
    added: list[tuple[str, str, str]],
    removed: list[tuple[str, str]],
) -> None:
    """In one transaction: insert ``added`` (trace id, span id, record), delete ``removed``."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        heartbeat(connection, owner, now_ns)
        connection.executemany(
            "INSERT OR REPLACE INTO roots (trace_id, span_id, owner, record) VALUES (?, ?, ?, ?)",
            [(trace_id, span_id, owner, record) for trace_id, span_id, record in added],
        )
        connection.executemany("DELETE FROM roots WHERE trace_id = ? AND span_id = ?", removed)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def retire(connection: sqlite3.Connection, owner: str) -> None:
    """Remove ``owner``'s own spans: the process ended (or finalized) them itself.

    Spans it adopted and did not export (its export path refused or failed them)
    stay, with the owner row, for the next recoverer.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(
            f"DELETE FROM roots WHERE owner = ? AND record NOT LIKE '{_ADOPTED}%'", (owner,)
        )
        connection.execute(
            "DELETE FROM owners WHERE owner = ? AND NOT EXISTS "
            "(SELECT 1 FROM roots WHERE owner = ?)",
            (owner, owner),
        )
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _gone_owners(
    connection: sqlite3.Connection, me: str | None, now_ns: int, stale_after_ns: int
) -> dict[str, int]:
    """Each owner that is gone, with its last heartbeat."""
    owners = connection.execute("SELECT owner, pid, host, heartbeat_ns FROM owners").fetchall()
    return {
        owner: heartbeat_ns
        for owner, pid, host, heartbeat_ns in owners
        if owner != me and _is_gone(owner, pid, host, now_ns - heartbeat_ns, stale_after_ns)
    }


def _roots_of(connection: sqlite3.Connection, gone: dict[str, int]) -> list[ClaimedRoot]:
    claimed: list[ClaimedRoot] = []
    for owner, heartbeat_ns in gone.items():
        rows = connection.execute(
            "SELECT trace_id, span_id, record FROM roots WHERE owner = ?", (owner,)
        ).fetchall()
        claimed.extend(
            ClaimedRoot(int(trace_id, 16), int(span_id, 16), record, heartbeat_ns)
            for trace_id, span_id, record in rows
        )
    return claimed


def _forget(connection: sqlite3.Connection, owners: Iterable[str]) -> None:
    keys = [(owner,) for owner in owners]
    connection.executemany("DELETE FROM roots WHERE owner = ?", keys)
    connection.executemany("DELETE FROM owners WHERE owner = ?", keys)


@contextmanager
def claim_crashed(
    connection: sqlite3.Connection, me: str | None, now_ns: int, stale_after_ns: int
) -> Iterator[list[ClaimedRoot]]:
    """Claim every root whose owner is gone, holding the write lock until the block ends.

    The roots and their owners are deleted when the block exits normally, and
    stay in the journal if it raises (e.g. the export failed).
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        gone = _gone_owners(connection, me, now_ns, stale_after_ns)
        yield _roots_of(connection, gone)
        _forget(connection, gone)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def adopt_crashed(
    connection: sqlite3.Connection, me: str, now_ns: int, stale_after_ns: int
) -> list[ClaimedRoot]:
    """Make ``me`` the owner of every span whose owner is gone, ended at its last heartbeat.

    The spans stay in the journal, under ``me``, until ``me`` exported them: if
    ``me`` dies or exits first, the next recoverer takes them with their first ending.
    Reads without the write lock when nobody is gone (the usual case).
    """
    if not _gone_owners(connection, me, now_ns, stale_after_ns):
        return []
    connection.execute("BEGIN IMMEDIATE")
    try:
        gone = _gone_owners(connection, me, now_ns, stale_after_ns)
        adopted = [ended(root) for root in _roots_of(connection, gone)]
        connection.executemany(
            "UPDATE roots SET owner = ?, record = ? WHERE trace_id = ? AND span_id = ?",
            [
                (me, root.record, format_trace_id(root.trace_id), format_span_id(root.span_id))
                for root in adopted
            ],
        )
        _forget(connection, gone)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return adopted


_ADOPTED = '{"ended":'
"""How the record of an adopted span begins: with its ending, kept first."""


def ended(root: ClaimedRoot) -> ClaimedRoot:
    """``root`` with its ending (its owner's last heartbeat) kept first in its record."""
    record = json.loads(root.record)
    first = {"ended": record.pop("ended", root.heartbeat_ns)}
    return replace(root, record=json.dumps({**first, **record}, separators=(",", ":")))


def _is_gone(owner: str, pid: int, host: str, silent_ns: int, stale_after_ns: int) -> bool:
    if silent_ns > stale_after_ns:
        return True
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return owner not in LIVE_OWNERS
    return not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` runs on this host; a zombie (killed, not yet reaped) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[:1]
    except OSError:
        return True
    return state != ["Z"]
