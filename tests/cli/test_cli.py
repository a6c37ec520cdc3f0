"""The ``otel-lifecycle`` command: doctor, --version, --help everywhere, bad arguments."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import otel_lifecycle
from otel_lifecycle._cli.doctor import instrument_verdict, run_doctor
from otel_lifecycle._cli.main import build_parser, main
from otel_lifecycle._settings.environment import VARIABLES, load_settings

CLI = Path(sys.executable).with_name("otel-lifecycle")
COMMANDS = sorted(
    next(
        action.choices
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
)


def doctor(environ: dict[str, str]) -> tuple[int, list[str]]:
    lines: list[str] = []
    return run_doctor(environ, lines.append), lines


def test_doctor_lists_every_setting_with_its_source() -> None:
    status, lines = doctor(
        {"OTEL_LIFECYCLE_ROOT_TIMEOUT": "30", "OTEL_LIFECYCLE_CONVERSATION_ID_KEYS": "a, b"}
    )
    assert status == 0
    assert lines[0] == "otel_lifecycle settings:"
    rows = {line.split()[0]: line.split()[1:] for line in lines[1 : 1 + len(VARIABLES)]}
    assert list(rows) == [variable.name for variable in VARIABLES]
    assert rows["OTEL_LIFECYCLE_ROOT_TIMEOUT"] == ["30.0", "(environment)"]
    assert rows["OTEL_LIFECYCLE_CONVERSATION_ID_KEYS"] == ["a,b", "(environment)"]
    assert rows["OTEL_LIFECYCLE_ENABLED"] == ["true", "(default)"]
    assert rows["OTEL_LIFECYCLE_ON_FLUSH"] == ["snapshot", "(default)"]
    assert lines[1 + len(VARIABLES) :] == [
        "crash journal: off",
        "exporter otlp: protocol grpc (default), endpoint http://localhost:4317 (default)",
        lines[-2],
        "no problems found",
    ]
    assert lines[-2].startswith("opentelemetry-instrument: yes")


def test_doctor_shows_each_invalid_value_once_in_its_row_and_exits_1() -> None:
    status, lines = doctor(
        {"OTEL_LIFECYCLE_MAX_TRACKED_SPANS": "lots", "OTEL_LIFECYCLE_ON_FLUSH": "always"}
    )
    assert status == 1
    invalid = [" ".join(line.split()) for line in lines if "invalid" in line]
    assert invalid == [
        "OTEL_LIFECYCLE_ON_FLUSH snapshot (invalid 'always': expected "
        "snapshot / finalize / none; using the default)",
        "OTEL_LIFECYCLE_MAX_TRACKED_SPANS 10000 (invalid 'lots': expected "
        "a positive integer; using the default)",
    ]
    assert lines[-1] == "2 problem(s) found"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            [
                "exporter otlp: protocol http/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL), "
                "endpoint http://localhost:4318/v1/traces (default)"
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/",
            },
            [
                "exporter otlp: protocol http/protobuf (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL), "
                "endpoint https://collector:4318/v1/traces (OTEL_EXPORTER_OTLP_ENDPOINT)"
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:14317",
            },
            [
                "exporter otlp: protocol grpc (default), "
                "endpoint collector:14317 (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"
            ],
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            [
                "exporter otlp: invalid 'http/json' in OTEL_EXPORTER_OTLP_PROTOCOL: expected "
                "grpc or http/protobuf; using grpc",
                "exporter otlp: protocol grpc (OTEL_EXPORTER_OTLP_PROTOCOL), "
                "endpoint http://localhost:4317 (default)",
            ],
        ),
        (
            {"OTEL_TRACES_EXPORTER": "console, zipkn"},
            [
                "exporter console: installed",
                "exporter zipkn: problem: no installed opentelemetry_traces_exporter entry "
                "point of that name; it would be skipped",
            ],
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp,none"},
            ["exporter: none (OTEL_TRACES_EXPORTER=none): spans are not exported"],
        ),
    ],
)
def test_doctor_shows_the_exporter_protocol_and_endpoint_selected(
    environ: dict[str, str], expected: list[str]
) -> None:
    status, lines = doctor(environ)
    assert [line for line in lines if line.startswith("exporter")] == expected
    assert status == (1 if any("problem" in line or "invalid" in line for line in expected) else 0)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_LIFECYCLE_ENABLED": "false"}, "no: OTEL_LIFECYCLE_ENABLED is false"),
        (
            {"OTEL_PYTHON_CONFIGURATOR": "configurator"},
            "yes, after instrumentation (post-instrument hook), in charge of the processors "
            "the 'configurator' configurator registers, if it sets an SDK tracer provider",
        ),
        (
            {"OTEL_PYTHON_CONFIGURATOR": "configurator", "OTEL_CONFIG_FILE": "otel.yaml"},
            "yes, after instrumentation (post-instrument hook): OTEL_CONFIG_FILE is set, "
            "so configurators are bypassed",
        ),
    ],
)
def test_doctor_says_how_opentelemetry_instrument_loads_it(
    environ: dict[str, str], expected: str
) -> None:
    assert instrument_verdict(load_settings(environ), environ).line == expected
    status, lines = doctor(environ)
    assert (status, lines[-2]) == (0, f"opentelemetry-instrument: {expected}")


def run_console_script(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``otel-lifecycle ARGS`` through the installed console script."""
    return subprocess.run(
        [str(CLI), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def test_doctor_prints_an_invalid_value_once_marked_invalid() -> None:
    result = run_console_script("doctor", env={"OTEL_LIFECYCLE_ON_FLUSH": "always"})
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout.count("always") == 1
    (row,) = (line for line in result.stdout.splitlines() if "OTEL_LIFECYCLE_ON_FLUSH" in line)
    assert row.split(maxsplit=2) == [
        "OTEL_LIFECYCLE_ON_FLUSH",
        "snapshot",
        "(invalid 'always': expected snapshot / finalize / none; using the default)",
    ]
    assert result.stdout.endswith("\n1 problem(s) found\n")


def test_doctor_reports_a_configurator_that_is_not_installed() -> None:
    result = run_console_script("doctor", env={"OTEL_PYTHON_CONFIGURATOR": "otel_lifecycle"})
    assert (result.returncode, result.stderr) == (1, "")
    (line,) = (line for line in result.stdout.splitlines() if "instrument" in line)
    assert line.startswith(
        "opentelemetry-instrument: no: OTEL_PYTHON_CONFIGURATOR='otel_lifecycle' names no "
        "installed configurator (installed: "
    )
    assert line.endswith(
        "so opentelemetry-instrument runs none and nothing sets an SDK tracer provider; "
        "unset OTEL_PYTHON_CONFIGURATOR (otel_lifecycle needs no configurator of its own)"
    )


def test_doctor_checks_the_journal_path_without_touching_it(tmp_path: Path) -> None:
    foreign = tmp_path / "config.yaml"
    foreign.write_text("replicas: 3\n")
    before = foreign.stat().st_mtime_ns
    result = run_console_script("doctor", env={"OTEL_LIFECYCLE_JOURNAL": str(foreign)})
    assert (result.returncode, result.stderr) == (1, "")
    assert (
        f"crash journal: {foreign}: problem: it is not a SQLite database, not an "
        "otel_lifecycle journal; left untouched; journaling would be off\n"
    ) in result.stdout
    assert (foreign.read_text(), foreign.stat().st_mtime_ns) == ("replicas: 3\n", before)

    fresh = tmp_path / "journal.db"
    result = run_console_script("doctor", env={"OTEL_LIFECYCLE_JOURNAL": str(fresh)})
    assert result.returncode == 0
    assert f"crash journal: {fresh}: ok, will be created\n" in result.stdout
    nowhere = tmp_path / "missing" / "journal.db"
    result = run_console_script("doctor", env={"OTEL_LIFECYCLE_JOURNAL": str(nowhere)})
    assert result.returncode == 1
    assert (
        f"crash journal: {nowhere}: problem: its directory {nowhere.parent} does not exist; "
        "journaling would be off\n"
    ) in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_doctor_check_endpoint_connects_to_the_selected_endpoint() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
        reachable = run_console_script("doctor", "--check-endpoint", env=env)
    closed = run_console_script("doctor", "--check-endpoint", env=env)
    unchecked = run_console_script("doctor", env=env)

    assert (reachable.returncode, reachable.stderr) == (0, "")
    assert f"\nendpoint 127.0.0.1:{port}: reachable\n" in reachable.stdout
    assert (closed.returncode, closed.stderr) == (1, "")
    assert f"\nendpoint 127.0.0.1:{port}: not reachable (Connection refused)\n" in closed.stdout
    assert closed.stdout.endswith("\n1 problem(s) found\n")
    assert unchecked.returncode == 0
    assert "\nendpoint " not in unchecked.stdout


def test_version_comes_from_one_place() -> None:
    result = run_console_script("--version", env={})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"otel-lifecycle {otel_lifecycle.__version__}\n"
    assert importlib.metadata.version("otel-lifecycle") == otel_lifecycle.__version__


@pytest.mark.parametrize("argv", [["--help"], *([command, "--help"] for command in COMMANDS)])
def test_help_works_on_every_command(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    command = "" if argv[0] == "--help" else f" {argv[0]}"
    assert capsys.readouterr().out.startswith(f"usage: otel-lifecycle{command} ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["doctr"], "invalid choice: 'doctr'"),
        (["doctor", "--verbose"], "unrecognized arguments: --verbose"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_python_dash_m_runs_doctor() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "otel_lifecycle", "doctor"],
        env={"OTEL_LIFECYCLE_ROOT_TIMEOUT": "-5", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (completed.returncode, completed.stderr) == (1, "")
    assert "  OTEL_LIFECYCLE_ROOT_TIMEOUT" in completed.stdout
    assert "(invalid '-5': expected seconds" in completed.stdout
