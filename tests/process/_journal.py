"""The crash journal seen from a test: its SQLite file read while the processes write it.

The tests point ``OTEL_LIFECYCLE_JOURNAL`` of a real worker or server at a file
of their own. :func:`rows` reads it read-only (a fresh connection each time, so
it never holds a read transaction against the writers; SQLite may still create
the ``-wal`` and ``-shm`` files beside it); :func:`journaled` polls it with a
deadline; :class:`Recovery` SIGKILLs a process, then waits until
the receiver holds its spans, noting on the way which process adopted them (a
recoverer takes a row over, under its own owner, until its export succeeded).
Used by the worker and the server tests.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.process._launch import ProcessGroup
from tests.receiver import OtlpReceiver, ReceivedSpan

PROCESS_CRASH = "process_crash"
"""``error.type`` (and ``otel_lifecycle.finalized_by``) of a span recovered from the journal."""
CRASH_MESSAGE = "span not ended: its process died (recovered from the crash journal)"
HEARTBEAT_S = 2.0
"""How often a process refreshes its heartbeat and adopts the rows of owners that are gone."""
POLL_S = 0.01
"""How long each round of :meth:`Recovery.wait` waits for the receiver."""


@dataclass(frozen=True)
class Row:
    """A row of the journal's ``roots`` table: an open span and the owner that holds it."""

    trace_id: str
    span_id: str
    owner: str
    name: str

    @property
    def pid(self) -> int:
        """The owner's pid: an owner is ``<token>-<pid>``."""
        return int(self.owner.rpartition("-")[2])


@dataclass(frozen=True)
class Owner:
    """A row of the journal's ``owners`` table: a process that journals."""

    owner: str
    pid: int


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    if not path.exists():
        return []
    connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def rows(path: Path) -> list[Row]:
    """The journal's rows now (none while the file does not exist)."""
    return [
        Row(str(trace_id), str(span_id), str(owner), json.loads(str(record))["name"])
        for trace_id, span_id, owner, record in _query(
            path, "SELECT trace_id, span_id, owner, record FROM roots"
        )
    ]


def owners(path: Path) -> list[Owner]:
    """The journal's owners now."""
    return [
        Owner(str(owner), int(str(pid)))
        for owner, pid in _query(path, "SELECT owner, pid FROM owners")
    ]


def describe_journal(path: Path) -> str:
    """The journal's rows and owners, for assertion messages."""
    lines = [f"{row.name} span_id={row.span_id} owner={row.owner}" for row in rows(path)]
    lines += [f"owner {owner.owner} pid={owner.pid}" for owner in owners(path)]
    return "\n--- journal ---\n" + "\n".join(lines)


def assert_journal_empty(path: Path, report: str = "") -> None:
    """No span left in the journal, and no owner: every process retired or was adopted."""
    assert (rows(path), owners(path)) == ([], []), describe_journal(path) + report


def journaled(
    path: Path, group: ProcessGroup, names: Collection[str], pid: int, timeout: float = 10
) -> list[Row]:
    """Poll the journal until it holds a row named each of ``names``, owned by ``pid``; those
    rows. Fails at ``timeout`` or if the process started exits."""

    def held() -> list[Row]:
        return [row for row in rows(path) if row.pid == pid and row.name in names]

    group._wait(
        lambda: {row.name for row in held()} == set(names),
        timeout,
        f"the journal held no rows {sorted(names)} of pid {pid}",
    )
    return held()


@dataclass
class Recovery:
    """A process SIGKILLed (:meth:`sigkill`), and what :meth:`wait` then saw: when its spans
    arrived and who adopted them."""

    pid: int
    killed_at: float
    """``time.monotonic()`` just after the SIGKILL."""
    killed_wall_ns: int
    """``time.time_ns()`` just after the SIGKILL (spans carry wall-clock times)."""
    arrived_at: float | None = None
    adopters: dict[str, set[int]] = field(default_factory=dict)
    """For each span id, the pids of the owners other than the killed process seen holding it."""

    @classmethod
    def sigkill(cls, pid: int) -> Recovery:
        """SIGKILL ``pid``, as the OOM killer does: it runs nothing more, not even a handler."""
        os.kill(pid, signal.SIGKILL)
        return cls(pid, time.monotonic(), time.time_ns())

    @property
    def delay(self) -> float:
        """Seconds from the SIGKILL until the last of the spans arrived."""
        assert self.arrived_at is not None
        return self.arrived_at - self.killed_at

    def adopter_pids(self) -> set[int]:
        return set().union(*self.adopters.values()) if self.adopters else set()

    def wait(
        self, receiver: OtlpReceiver, path: Path, span_ids: Collection[str], timeout: float
    ) -> bool:
        """Wait until the receiver holds a span with each of ``span_ids``; False ``timeout``
        seconds after the SIGKILL.

        Meanwhile notes the owners (other than the killed process) the journal
        shows holding those spans: who adopted them. A row leaves as soon as its
        adopter's export succeeded, so an adopter may go unseen.
        """
        wanted = set(span_ids)

        def arrived(spans: tuple[ReceivedSpan, ...]) -> bool:
            return wanted <= {span.span_id for span in spans}

        deadline = self.killed_at + timeout
        while time.monotonic() < deadline:
            for row in rows(path):
                if row.span_id in wanted and row.pid != self.pid:
                    self.adopters.setdefault(row.span_id, set()).add(row.pid)
            if receiver.wait_for(arrived, POLL_S):
                self.arrived_at = time.monotonic()
                return True
        return False


def assert_recovered(
    spans: Sequence[ReceivedSpan], recovery: Recovery, report: str
) -> tuple[ReceivedSpan, ...]:
    """Each span ERROR, recovered from the journal (``process_crash``), ending at the killed
    process's last heartbeat: the same instant for all, before the kill, and not much more
    than a heartbeat interval earlier (:data:`HEARTBEAT_S`, with room for a slow machine)."""
    for span in spans:
        assert span.status_code == "ERROR", f"{span.name} {span.status_code}{report}"
        assert span.status_message == CRASH_MESSAGE, report
        assert span.attributes.get("error.type") == PROCESS_CRASH, report
        assert span.attributes.get("otel_lifecycle.finalized_by") == PROCESS_CRASH, report
        assert span.start_time_unix_nano <= span.end_time_unix_nano, report
        assert span.end_time_unix_nano <= recovery.killed_wall_ns, report
        assert recovery.killed_wall_ns - span.end_time_unix_nano < (HEARTBEAT_S + 2) * 1e9, report
    assert len({span.end_time_unix_nano for span in spans}) == 1, report
    return tuple(spans)
