"""The crash journal in-process: batching, pairing, heartbeat, claims, foreign and damaged files."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_lifecycle import LifecycleSpanProcessor, RecoveryError, recover
from otel_lifecycle._journal import writer
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
