"""Crash journal end to end: real subprocesses, SIGKILL, a real SQLite file, real OTLP."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests._paths import APPS, ROOT
from tests.receiver import OtlpReceiver, ReceivedSpan

APP = APPS / "journal_app.py"
CLI = Path(sys.executable).with_name("otel-lifecycle")
TIMEOUT = 30
CRASHED = {"agent.run", "tool.open", "job.handle"}


def spawn(mode: str, journal: Path, endpoint: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(APP), mode, str(journal), endpoint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )


def read_line(process: subprocess.Popen[str], expected: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != expected:
        process.kill()
        _, stderr = process.communicate(timeout=TIMEOUT)
        pytest.fail(f"expected {expected!r}, got {line!r}; stderr:\n{stderr}")


def crash_app(journal: Path, receiver: OtlpReceiver) -> int:
    """Run the app until its roots are journaled, SIGKILL it; return its last heartbeat."""
    app = spawn("crash", journal, receiver.grpc_endpoint)
    read_line(app, "ready")
    app.send_signal(signal.SIGKILL)
    app.communicate(timeout=TIMEOUT)
    assert app.returncode == -signal.SIGKILL
    with sqlite3.connect(journal) as connection:
        owners = connection.execute("SELECT pid, heartbeat_ns FROM owners").fetchall()
        roots = connection.execute("SELECT count(*) FROM roots").fetchone()[0]
    assert [pid for pid, _ in owners] == [app.pid]
    assert roots == len(CRASHED)
    assert {span.name for span in receiver.spans()} == {"llm.call", "short.root"}
    receiver.clear()
    heartbeat_ns: int = owners[0][1]
    return heartbeat_ns


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``otel-lifecycle recover ARGS`` through the installed console script."""
    return subprocess.run(
        [str(CLI), "recover", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )


def run_forking(mode: str, journal: Path, endpoint: str) -> tuple[int, set[int]]:
    """Run the app in a forking ``mode`` until parent and child said their pids; SIGKILL both.

    Returns the parent's pid and the pids said.
    """
    app = spawn(mode, journal, endpoint)
    assert app.stdout is not None
    try:
        pids = {int(app.stdout.readline().split()[1]) for _ in range(2)}
    finally:
        os.killpg(app.pid, signal.SIGKILL)
        app.communicate(timeout=TIMEOUT)
    return app.pid, pids


def recover_over_grpc(journal: Path, receiver: OtlpReceiver) -> subprocess.CompletedProcess[str]:
    """``otel-lifecycle recover --journal JOURNAL``, exporting to the receiver over OTLP/gRPC."""
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint}
    return run_cli("--journal", str(journal), env={**os.environ, **endpoint})


def assert_recovered(spans: tuple[ReceivedSpan, ...], heartbeat_ns: int, transport: str) -> None:
    names = [span.name for span in spans]
    assert sorted(names) == sorted(CRASHED), names
    by_name = {span.name: span for span in spans}
    for span in spans:
        assert span.status_code == "ERROR"
        assert span.status_message == (
            "span not ended: its process died (recovered from the crash journal)"
        )
        assert span.attributes["error.type"] == "process_crash"
        assert span.attributes["otel_lifecycle.finalized_by"] == "process_crash"
        assert span.end_time_unix_nano == heartbeat_ns
        assert span.start_time_unix_nano <= heartbeat_ns
        assert span.resource["service.name"] == "journal-crash"
        assert span.scope_name == "journal.app"
        assert span.transport == transport
    agent = by_name["agent.run"]
    assert agent.parent_span_id is None
    assert agent.kind == 2
    assert agent.attributes["input.value"] == "What is 6 x 7?"
    assert agent.attributes["retries"] == 3
    assert agent.attributes["tags"] == ("a", "b")
    assert agent.attributes["gen_ai.conversation.id"] == "conv-7"
    tool = by_name["tool.open"]
    assert (tool.trace_id, tool.parent_span_id) == (agent.trace_id, agent.span_id)
    assert tool.attributes["gen_ai.conversation.id"] == "conv-7"
    job = by_name["job.handle"]
    assert job.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert job.parent_span_id == "00f067aa0ba902b7"
    assert job.attributes["gen_ai.conversation.id"] == "sess-9"


def journal_is_empty(journal: Path) -> bool:
    with sqlite3.connect(journal) as connection:
        counts = [
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("owners", "roots")
        ]
    return counts == [0, 0]


def test_sigkill_then_next_process_recovers_in_background(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    journal = tmp_path / "journal.db"
    heartbeat_ns = crash_app(journal, receiver)

    recoverer = spawn("recover", journal, receiver.grpc_endpoint)
    read_line(recoverer, "waiting")
    stdout, stderr = recoverer.communicate("go\n", timeout=TIMEOUT)
    assert (recoverer.returncode, stdout) == (0, "done\n"), stderr
    assert "recovered 3 span(s) of crashed processes" in stderr

    assert_recovered(receiver.spans(), heartbeat_ns, "grpc")
    assert journal_is_empty(journal)


def test_sigkill_then_cli_recovers_over_http(tmp_path: Path, receiver: OtlpReceiver) -> None:
    journal = tmp_path / "journal.db"
    heartbeat_ns = crash_app(journal, receiver)
    env = dict(
        os.environ,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_base_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_LIFECYCLE_JOURNAL=str(journal),
    )

    first = run_cli(env=env)
    assert (first.returncode, first.stdout) == (0, f"recovered 3 span(s) from {journal}\n")
    again = run_cli("--journal", str(journal), env=env)
    assert (again.returncode, again.stdout) == (1, f"nothing to recover in {journal}\n")

    assert_recovered(receiver.spans(), heartbeat_ns, "http")
    assert journal_is_empty(journal)


def test_two_processes_racing_recover_each_root_once(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    journal = tmp_path / "journal.db"
    heartbeat_ns = crash_app(journal, receiver)
    racers = [spawn("recover", journal, receiver.grpc_endpoint) for _ in range(2)]
    for racer in racers:
        read_line(racer, "waiting")
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    outcomes = [racer.communicate(timeout=TIMEOUT) for racer in racers]

    assert [racer.returncode for racer in racers] == [0, 0], outcomes
    recovered = ["recovered 3 span(s)" in stderr for _, stderr in outcomes]
    assert sorted(recovered) == [False, True]
    assert_recovered(receiver.spans(), heartbeat_ns, "grpc")
    assert journal_is_empty(journal)


def test_a_forked_child_journals_its_own_roots_as_a_new_owner(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    journal = tmp_path / "journal.db"
    parent_pid, pids = run_forking("fork", journal, receiver.grpc_endpoint)
    assert parent_pid in pids
    assert len(pids) == 2
    with sqlite3.connect(journal) as connection:
        rows = connection.execute(
            "SELECT owners.pid, roots.record FROM roots JOIN owners USING (owner)"
        ).fetchall()
    owners_of = {json.loads(record)["name"]: pid for pid, record in rows}
    child_pid = (pids - {parent_pid}).pop()
    assert owners_of == {
        "parent.root": parent_pid,
        "parent.root.later": parent_pid,
        "child.root": child_pid,
    }

    result = recover_over_grpc(journal, receiver)
    assert result.returncode == 0, result.stderr
    names = sorted(span.name for span in receiver.spans())
    assert names == ["child.root", "parent.root", "parent.root.later"]
    assert journal_is_empty(journal)


def test_a_root_a_forked_child_ended_leaves_the_journal_with_it(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    """The child exported the parent's root: a later crash of both recovers nothing."""
    journal = tmp_path / "journal.db"
    _, pids = run_forking("fork-ends", journal, receiver.grpc_endpoint)
    assert len(pids) == 2
    with sqlite3.connect(journal) as connection:
        assert connection.execute("SELECT count(*) FROM roots").fetchone()[0] == 0
    [exported] = receiver.spans()
    assert exported.name == "parent.root"

    result = recover_over_grpc(journal, receiver)
    assert (result.returncode, result.stdout) == (1, f"nothing to recover in {journal}\n")
    assert [span.name for span in receiver.spans()] == ["parent.root"]


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_cli_export_failure_exits_3_and_keeps_the_roots(
    tmp_path: Path, receiver: OtlpReceiver
) -> None:
    journal = tmp_path / "journal.db"
    crash_app(journal, receiver)
    env = dict(
        os.environ,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
    )

    result = run_cli("--journal", str(journal), env=env)

    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.endswith(
        f"otel-lifecycle recover: could not export 3 recovered span(s); they stay in {journal}\n"
    )
    with sqlite3.connect(journal) as connection:
        assert connection.execute("SELECT count(*) FROM roots").fetchone() == (3,)


def test_cli_refuses_a_missing_or_foreign_journal_with_exit_4(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = run_cli("--journal", str(missing))
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == (
        f"otel-lifecycle recover: cannot use the crash journal {missing}: it does not exist\n"
    )
    assert list(tmp_path.iterdir()) == []

    foreign = tmp_path / "config.yaml"
    foreign.write_text("replicas: 3\n")
    before = foreign.stat().st_mtime_ns
    result = run_cli(env=dict(os.environ, OTEL_LIFECYCLE_JOURNAL=str(foreign)))
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == (
        f"otel-lifecycle recover: cannot use the crash journal {foreign}: it is not a SQLite "
        "database, not an otel_lifecycle journal; left untouched\n"
    )
    assert (foreign.read_text(), foreign.stat().st_mtime_ns) == ("replicas: 3\n", before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (),
            "otel-lifecycle recover: no journal: pass --journal PATH or set OTEL_LIFECYCLE_JOURNAL",
        ),
        (("--jornal", "j.db"), "unrecognized arguments: --jornal j.db"),
    ],
)
def test_cli_bad_usage_exits_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = subprocess.run(
        [str(CLI), "recover", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_help_lists_the_exit_codes() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    epilog = result.stdout.split("exit status:\n")[1]
    assert [line.split()[0] for line in epilog.splitlines()] == ["0", "1", "2", "3", "4"]
