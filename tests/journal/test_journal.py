"""The crash journal in-process: batching, pairing, heartbeat, claims, foreign and damaged files."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from opentelemetry.sdk.trace import ReadableSpan, Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import StatusCode

from otel_lifecycle import LifecycleSpanProcessor, RecoveryError, recover
from otel_lifecycle._journal import store, writer
from otel_lifecycle._journal.store import APPLICATION_ID, LIVE_OWNERS, is_journal
from otel_lifecycle._journal.writer import Journal

HOUR = 3600.0


class Clock:
    """Wall-clock ns, moved by hand; starts now, or at ``start``."""

    def __init__(self, start: int | None = None) -> None:
        self.now = time.time_ns() if start is None else start

    def __call__(self) -> int:
        return self.now


class FailingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider(shutdown_on_exit=False)
    yield made
    made.shutdown()


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(sql).fetchall()


def start(journal: Journal, provider: TracerProvider, name: str) -> Span:
    span = provider.get_tracer("unit").start_span(name, attributes={"k": "v"})
    assert isinstance(span, Span)
    journal.opened(span)
    return span


def end(journal: Journal, span: Span) -> None:
    """End ``span``, and export it."""
    span.end()
    journal.exported([span])


def make_journal(path: Path, clock: Clock, exported: list[ReadableSpan]) -> Journal:
    journal = Journal(str(path), exported.append, lambda span: None, clock=clock, interval=HOUR)
    journal.start()
    return journal


def test_open_spans_are_written_and_leave_only_once_exported(
    tmp_path: Path, provider: TracerProvider
) -> None:
    path, clock = tmp_path / "j.db", Clock()
    journal = make_journal(path, clock, [])
    kept = start(journal, provider, "kept")
    end(journal, start(journal, provider, "short"))
    assert journal.flush(10)
    (record,) = rows(path, "SELECT record FROM roots")
    assert '"name":"kept"' in str(record[0])
    assert rows(path, "SELECT owner, heartbeat_ns FROM owners") == [(journal.owner, clock.now)]

    clock.now += 5
    kept.end()
    assert journal.flush(10)
    assert rows(path, "SELECT count(*) FROM roots") == [(1,)], "ended, not exported: kept"
    journal.exported([kept])
    assert journal.flush(10)
    assert rows(path, "SELECT count(*) FROM roots") == [(0,)]
    assert rows(path, "SELECT heartbeat_ns FROM owners") == [(clock.now,)]
    assert journal.close(10)
    assert rows(path, "SELECT count(*) FROM owners") == [(0,)]


class RecordOnly(Sampler):
    """Records every span and samples none: the spans are open, but not for export."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "RecordOnly"


def test_a_span_that_is_not_sampled_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = make_journal(path, Clock(), [])
    unsampled = TracerProvider(sampler=RecordOnly(), shutdown_on_exit=False)
    span = start(journal, unsampled, "recorded only")
    assert span.is_recording()
    assert journal.flush(10)
    assert rows(path, "SELECT count(*) FROM roots") == [(0,)]
    assert journal.close(10)


@pytest.mark.parametrize(
    ("make_delegate", "left"),
    [
        pytest.param(FailingExporter, 1, id="export-failed"),
        pytest.param(InMemorySpanExporter, 0, id="exported"),
        pytest.param(lambda: SimpleSpanProcessor(InMemorySpanExporter()), 0, id="handed-over"),
    ],
)
def test_a_row_leaves_once_the_exporter_took_its_span_not_when_it_ended(
    tmp_path: Path, make_delegate: Callable[[], SpanExporter | SimpleSpanProcessor], left: int
) -> None:
    path = tmp_path / "j.db"
    processor = LifecycleSpanProcessor(make_delegate(), journal=str(path), on_flush="none")
    traced = TracerProvider(shutdown_on_exit=False)
    traced.add_span_processor(processor)
    span = traced.get_tracer("unit").start_span("long")
    processor.force_flush()
    assert rows(path, "SELECT count(*) FROM roots") == [(1,)], "written while open"
    span.end()
    processor.force_flush()
    assert rows(path, "SELECT count(*) FROM roots") == [(left,)]
    traced.shutdown()
    assert rows(path, "SELECT count(*) FROM roots") == [(0,)], "the process ended it itself"


def dead_worker(path: Path, provider: TracerProvider) -> tuple[Journal, int]:
    """A journal with one open span on disk that looks gone (its heartbeat then stops)."""
    clock = Clock()
    worker = make_journal(path, clock, [])
    start(worker, provider, "running")
    clock.now = time.time_ns()  # after the span started
    assert worker.flush(10)
    LIVE_OWNERS.discard(worker.owner)
    return worker, clock.now


def test_a_gone_owners_spans_are_adopted_at_the_next_heartbeat_and_leave_once_exported(
    tmp_path: Path, provider: TracerProvider
) -> None:
    """A supervisor sharing the file recovers a dead worker's spans while it runs."""
    path, clock = tmp_path / "j.db", Clock()
    recovered: list[ReadableSpan] = []
    supervisor = make_journal(path, clock, recovered)
    assert supervisor.flush(10)
    worker, died_at = dead_worker(path, provider)

    assert supervisor.flush(10)
    assert recovered == [], "adopted before its heartbeat was due"
    clock.now += int(writer.DEFAULT_HEARTBEAT_INTERVAL * 1e9)
    assert supervisor.flush(10)
    (span,) = recovered
    assert (span.name, span.end_time) == ("running", died_at)
    assert rows(path, "SELECT owner FROM roots") == [(supervisor.owner,)], "kept until exported"
    supervisor.exported(recovered)
    assert supervisor.flush(10)
    assert rows(path, "SELECT count(*) FROM roots") == [(0,)]
    for journal in (worker, supervisor):
        assert journal.close(10)


def test_a_span_its_adopter_did_not_export_before_dying_keeps_its_first_ending(
    tmp_path: Path, provider: TracerProvider
) -> None:
    path = tmp_path / "j.db"
    worker, died_at = dead_worker(path, provider)
    adopter = make_journal(path, Clock(died_at + 7_000_000_000), [])
    assert adopter.flush(10)
    assert rows(path, "SELECT owner FROM roots") == [(adopter.owner,)]
    LIVE_OWNERS.discard(adopter.owner)  # it dies before its export

    exporter = InMemorySpanExporter()
    assert recover(path, exporter) == 1
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.end_time) == ("running", died_at)
    for journal in (worker, adopter):
        assert journal.close(10)


def test_spans_adopted_but_not_exported_stay_for_the_next_recoverer(
    tmp_path: Path, provider: TracerProvider
) -> None:
    """The adopter's export path refused them (it was closing): its exit keeps them."""
    path = tmp_path / "j.db"
    worker, died_at = dead_worker(path, provider)
    refused: list[ReadableSpan] = []
    adopter = make_journal(path, Clock(died_at + 7_000_000_000), refused)
    assert adopter.flush(10)
    assert [span.name for span in refused] == ["running"]
    assert adopter.close(10)
    assert rows(path, "SELECT owner FROM roots") == [(adopter.owner,)]

    exporter = InMemorySpanExporter()
    assert recover(path, exporter) == 1
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.end_time) == ("running", died_at)
    assert worker.close(10)


def test_a_journal_whose_process_shuts_down_adopts_nothing_more(
    tmp_path: Path, provider: TracerProvider
) -> None:
    path, clock = tmp_path / "j.db", Clock()
    recovered: list[ReadableSpan] = []
    closing = make_journal(path, clock, recovered)
    assert closing.finish_recovery(10)
    worker, _ = dead_worker(path, provider)
    clock.now += int(writer.DEFAULT_HEARTBEAT_INTERVAL * 1e9)
    assert closing.flush(10)
    assert closing.close(10)
    assert recovered == []
    assert rows(path, "SELECT count(*) FROM roots") == [(1,)], "left for the next recoverer"
    assert worker.close(10)


class Paused(NamedTuple):
    """A journal whose writer waits inside the transaction writing ``span``, until ``go_on``."""

    journal: Journal
    go_on: threading.Event
    span: Span


@pytest.fixture
def writer_paused_in_transaction(
    tmp_path: Path, provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Paused]:
    """A journal whose writer waits inside its write transaction until ``go_on`` is set."""
    inside, go_on = threading.Event(), threading.Event()
    real_heartbeat = store.heartbeat

    def paused(connection: sqlite3.Connection, owner: str, now_ns: int) -> None:
        if connection.in_transaction and not go_on.is_set():
            inside.set()
            go_on.wait(10)
        real_heartbeat(connection, owner, now_ns)

    monkeypatch.setattr(store, "heartbeat", paused)
    journal = make_journal(tmp_path / "j.db", Clock(), [])
    assert journal.flush(10)
    span = start(journal, provider, "parent")
    assert not journal.flush(0)  # queued and woken, not waited for
    assert inside.wait(10), "the writer never began its transaction"
    yield Paused(journal, go_on, span)
    go_on.set()
    assert journal.close(10)


def test_a_fork_waits_for_the_writer_to_open_the_file(
    tmp_path: Path, provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening (and creating) the file is inside SQLite too: a gunicorn master forking its
    first worker while its writer opened the journal left the worker's writer hung on
    SQLite state the fork copied, and the worker journaled nothing."""
    inside, go_on = threading.Event(), threading.Event()
    order: list[str] = []
    real_open = store.open_journal

    def paused(path: str) -> sqlite3.Connection:
        inside.set()
        go_on.wait(10)
        connection = real_open(path)
        order.append("opened")
        return connection

    monkeypatch.setattr(writer, "open_journal", paused)
    journal = make_journal(tmp_path / "j.db", Clock(), [])
    assert inside.wait(10), "the writer never began to open the file"
    os.register_at_fork(
        before=go_on.set,  # runs first: the journal's own hook then waits
        after_in_parent=lambda: order.append("forked"),
    )
    assert fork_and_journal(journal, provider) == 0, "the child could not write its span"
    assert order == ["opened", "forked"]
    assert journal.close(10)


def test_a_span_exported_while_its_row_is_being_written_leaves_the_journal(
    writer_paused_in_transaction: Paused,
) -> None:
    """The export path may report a span between the writer's look (still open) and its
    commit: the row must not stay behind, to be recovered as a crash later."""
    journal, go_on, span = writer_paused_in_transaction
    span.end()
    journal.exported([span])
    go_on.set()
    assert journal.flush(10)
    assert rows(Path(journal.path), "SELECT count(*) FROM roots") == [(0,)]


def fork_and_journal(journal: Journal, provider: TracerProvider) -> int:
    """Fork a child that journals a span of its own; its exit code (0: written)."""
    pid = os.fork()
    if pid == 0:
        start(journal, provider, "child")
        os._exit(0 if journal.flush(10) else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_fork_waits_for_the_writer_to_leave_its_transaction(
    writer_paused_in_transaction: Paused, provider: TracerProvider
) -> None:
    """A child forked inside the writer's transaction could never write: SQLite's
    in-process lock bookkeeping, copied by the fork, says the abandoned connection
    holds the file."""
    journal, go_on, _ = writer_paused_in_transaction
    os.register_at_fork(before=go_on.set)  # runs first: the journal's own hook then waits
    assert fork_and_journal(journal, provider) == 0, "the child could not write its span"
    records = rows(Path(journal.path), "SELECT record FROM roots")
    assert {json.loads(str(record))["name"] for (record,) in records} == {"parent", "child"}


def test_a_child_forked_while_the_writer_stays_in_sqlite_journals_nothing_and_says_so(
    writer_paused_in_transaction: Paused,
    provider: TracerProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal, go_on, _ = writer_paused_in_transaction
    monkeypatch.setattr(writer, "FORK_WAIT", 0.01)
    assert fork_and_journal(journal, provider) == 1, "the child's journal is off"
    go_on.set()
    assert journal.flush(10), "the parent journals on"
    records = rows(Path(journal.path), "SELECT record FROM roots")
    assert [json.loads(str(record))["name"] for (record,) in records] == ["parent"]


def test_idle_heartbeat_is_refreshed_only_when_due(tmp_path: Path) -> None:
    path, clock = tmp_path / "j.db", Clock()
    journal = make_journal(path, clock, [])
    assert journal.flush(10)
    first = clock.now
    clock.now += 1_000_000_000
    assert journal.flush(10)
    assert rows(path, "SELECT heartbeat_ns FROM owners") == [(first,)]
    clock.now += 1_000_000_000
    assert journal.flush(10)
    assert rows(path, "SELECT heartbeat_ns FROM owners") == [(clock.now,)]
    journal.close(10)


def test_owner_with_our_pid_not_open_here_is_recovered_once(
    tmp_path: Path, provider: TracerProvider
) -> None:
    path, clock = tmp_path / "j.db", Clock()
    journal = make_journal(path, clock, [])
    start(journal, provider, "lost")
    clock.now = time.time_ns()
    assert journal.flush(10)
    exporter = InMemorySpanExporter()
    assert recover(path, exporter) == 0
    LIVE_OWNERS.discard(journal.owner)

    assert recover(path, exporter) == 1
    assert recover(str(path), exporter) == 0
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.end_time) == ("lost", clock.now)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "k": "v",
        "error.type": "process_crash",
        "otel_lifecycle.finalized_by": "process_crash",
    }
    journal.close(10)


def test_stale_heartbeat_is_recovered_even_if_the_pid_lives(
    tmp_path: Path, provider: TracerProvider
) -> None:
    path, clock = tmp_path / "j.db", Clock(start=1_000_000_000)
    journal = make_journal(path, clock, [])
    start(journal, provider, "stale")
    assert journal.flush(10)
    exporter = InMemorySpanExporter()
    assert recover(path, exporter, stale_after=HOUR) == 1
    journal.close(10)


def test_failed_export_leaves_the_roots_in_the_journal(
    tmp_path: Path, provider: TracerProvider
) -> None:
    path, clock = tmp_path / "j.db", Clock()
    journal = make_journal(path, clock, [])
    start(journal, provider, "kept")
    assert journal.flush(10)
    LIVE_OWNERS.discard(journal.owner)
    with pytest.raises(RecoveryError, match=r"could not export 1 recovered span\(s\)"):
        recover(path, FailingExporter())
    assert rows(path, "SELECT count(*) FROM roots") == [(1,)]
    assert recover(path, InMemorySpanExporter()) == 1
    journal.close(10)


def test_processor_recovers_in_the_background_through_its_delegate(
    tmp_path: Path, provider: TracerProvider
) -> None:
    path, clock = tmp_path / "j.db", Clock()
    crashed = make_journal(path, clock, [])
    start(crashed, provider, "crashed")
    assert crashed.flush(10)
    LIVE_OWNERS.discard(crashed.owner)
    exporter = InMemorySpanExporter()
    processor = LifecycleSpanProcessor(SimpleSpanProcessor(exporter), journal=path)
    assert processor.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == ["crashed"]
    processor.shutdown()
    crashed.close(10)
    assert rows(path, "SELECT count(*) FROM roots") == [(0,)]


def traced_with_journal(
    journal: Path, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> tuple[bool, list[str]]:
    """Trace one root with ``journal``; return force_flush()'s result and the warnings logged."""
    caplog.clear()
    processor = LifecycleSpanProcessor(
        SimpleSpanProcessor(exporter), journal=str(journal), on_flush="none"
    )
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(processor)
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        root = tracer_provider.get_tracer("unit").start_span("root")
        flushed = processor.force_flush()
        root.end()
        tracer_provider.shutdown()
    return flushed, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def state_of(path: Path) -> tuple[object, ...]:
    """What is at ``path``: contents (a directory's names), mode, size and mtime."""
    status = path.stat()
    contents = sorted(p.name for p in path.iterdir()) if path.is_dir() else path.read_bytes()
    return contents, status.st_mode, status.st_size, status.st_mtime_ns


def a_directory(path: Path) -> None:
    """A directory with a file inside, at ``path``."""
    path.mkdir()
    (path / "inside.txt").write_text("x")


def foreign_sqlite(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.execute("INSERT INTO notes VALUES ('keep me')")
    connection.commit()
    connection.close()


FOREIGN: dict[str, tuple[str, Callable[[Path], object]]] = {
    "text": (
        "it is not a SQLite database",
        lambda path: path.write_text("service: checkout\nreplicas: 3\n" * 50),
    ),
    "sqlite": ("it is a SQLite database of another application", foreign_sqlite),
    "directory": (
        "it is a directory",
        a_directory,
    ),
    "empty": ("it is an empty file", lambda path: path.touch()),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_foreign_path_is_left_untouched_and_journaling_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    reason, make = FOREIGN[kind]
    path = tmp_path / "config.yaml"
    make(path)
    before = state_of(path)
    exporter = InMemorySpanExporter()

    flushed, warnings = traced_with_journal(path, exporter, caplog)

    assert not flushed
    assert warnings == [
        f"otel_lifecycle: cannot open the crash journal {path}: {reason}, not an "
        "otel_lifecycle journal; left untouched; journaling is off for this process"
    ]
    assert state_of(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    assert [span.name for span in exporter.get_finished_spans()] == ["root"]
    with pytest.raises(RecoveryError, match=f"cannot use the crash journal .*: {reason}"):
        recover(path, InMemorySpanExporter())
    assert state_of(path) == before


def test_a_new_journal_is_marked_as_ours_and_made_in_one_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    flushed, warnings = traced_with_journal(path, InMemorySpanExporter(), caplog)
    assert (flushed, warnings) == (True, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db"]
    assert rows(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert is_journal(str(path))


def test_a_damaged_journal_of_ours_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    assert traced_with_journal(path, InMemorySpanExporter(), caplog) == (True, [])
    page_size = rows(path, "PRAGMA page_size")[0][0]
    assert isinstance(page_size, int)
    damaged = path.read_bytes()[:page_size] + b"\xa5" * (path.stat().st_size - page_size)
    path.write_bytes(damaged)
    exporter = InMemorySpanExporter()

    flushed, warnings = traced_with_journal(path, exporter, caplog)

    assert flushed
    (aside,) = tmp_path.glob("j.db.corrupt-*")
    assert aside.read_bytes() == damaged
    assert len(warnings) == 1
    assert warnings[0].startswith(f"otel_lifecycle: the crash journal {path} is damaged (")
    assert warnings[0].endswith(f"moved it to {aside} and started a new one")
    assert rows(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert [span.name for span in exporter.get_finished_spans()] == ["root"]


def test_recover_creates_no_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(RecoveryError, match=r"cannot use the crash journal .*: it does not exist"):
        recover(tmp_path / "missing.db", InMemorySpanExporter())
    assert list(tmp_path.iterdir()) == []


def test_unopenable_journal_turns_journaling_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        processor = LifecycleSpanProcessor(
            SimpleSpanProcessor(exporter), journal=str(tmp_path / "missing" / "j.db")
        )
        assert not processor.force_flush(timeout_millis=10_000)
    assert any("journaling is off" in record.getMessage() for record in caplog.records)
    assert processor.stats().journal_stopped == 1
    processor.shutdown()


def test_a_writer_that_fails_unexpectedly_says_so_once_and_waits_for_nothing(
    tmp_path: Path,
    provider: TracerProvider,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen in a new Celery child: logging raised "cannot release un-acquired lock" in the
    writer. The thread died, and journaling stopped without a word."""

    def broken(*args: object) -> None:
        raise RuntimeError("cannot release un-acquired lock")

    monkeypatch.setattr(writer, "write_batch", broken)
    journal = make_journal(tmp_path / "j.db", Clock(), [])
    start(journal, provider, "root")
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        assert not journal.flush(10)
    (warning,) = [r.getMessage() for r in caplog.records if "journaling is off" in r.getMessage()]
    assert "cannot release un-acquired lock" in warning
    start(journal, provider, "later")  # nothing is queued once it is off
    assert not journal.flush(10)
    assert journal.close(10)


def test_a_log_call_that_raises_in_the_writer_does_not_stop_journaling(
    tmp_path: Path, provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in a new Celery child: billiard swaps the logging handlers' locks while the
    writer logs "recovered ...", the log call raises, and the writer died with the
    adopted spans exported but still in the journal: recovered again, twice, later."""

    def broken(*args: object) -> None:
        raise RuntimeError("cannot release un-acquired lock")

    monkeypatch.setattr(writer, "report_recovered", broken)
    path = tmp_path / "j.db"
    worker, _ = dead_worker(path, provider)
    recovered: list[ReadableSpan] = []
    adopter = make_journal(path, Clock(), recovered)
    assert adopter.flush(10), "journaling stopped"
    assert [span.name for span in recovered] == ["running"]
    adopter.exported(recovered)
    assert adopter.flush(10)
    assert rows(path, "SELECT count(*) FROM roots") == [(0,)]
    for journal in (worker, adopter):
        assert journal.close(10)


def test_journal_argument_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    with pytest.raises(TypeError, match=r"journal must be a str or os\.PathLike"):
        LifecycleSpanProcessor(exporter, journal=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="journal must be a non-empty path"):
        LifecycleSpanProcessor(exporter, journal=" ")
    with pytest.raises(TypeError, match="exporter must be a SpanExporter"):
        recover(tmp_path / "j.db", object())  # type: ignore[arg-type]
    monkeypatch.setenv("OTEL_LIFECYCLE_JOURNAL", "")
    LifecycleSpanProcessor(SimpleSpanProcessor(exporter)).shutdown()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("OTEL_LIFECYCLE_JOURNAL", str(tmp_path / "env.db"))
    processor = LifecycleSpanProcessor(SimpleSpanProcessor(exporter))
    assert processor.force_flush()
    processor.shutdown()
    assert rows(tmp_path / "env.db", "SELECT count(*) FROM owners") == [(0,)]
