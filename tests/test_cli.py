"""The ``otel-lifecycle`` command: doctor, --help everywhere, bad arguments."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from otel_lifecycle._cli import build_parser, main
from otel_lifecycle._doctor import instrument_verdict, run_doctor
from otel_lifecycle._settings import VARIABLES, load_settings

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
    assert not any(line.startswith("warning:") for line in lines)
    assert lines[-1].startswith("opentelemetry-instrument: yes")


def test_doctor_warns_about_each_invalid_value_and_exits_1() -> None:
    status, lines = doctor(
        {"OTEL_LIFECYCLE_MAX_TRACKED_SPANS": "lots", "OTEL_LIFECYCLE_ON_FLUSH": "always"}
    )
    assert status == 1
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        "warning: invalid value 'always' for OTEL_LIFECYCLE_ON_FLUSH: expected "
        "snapshot / finalize / none; using the default snapshot",
        "warning: invalid value 'lots' for OTEL_LIFECYCLE_MAX_TRACKED_SPANS: expected "
        "a positive integer; using the default 100000",
    ]
    rows = [line.split() for line in lines if line.startswith("  OTEL_LIFECYCLE_ON_FLUSH ")]
    assert rows == [["OTEL_LIFECYCLE_ON_FLUSH", "snapshot", "(default)"]]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_LIFECYCLE_ENABLED": "false"}, "no: OTEL_LIFECYCLE_ENABLED is false"),
        (
            {"OTEL_PYTHON_CONFIGURATOR": "otel_lifecycle"},
            "yes, in front of every exporter (the otel_lifecycle configurator)",
        ),
        (
            {"OTEL_PYTHON_CONFIGURATOR": "configurator"},
            "yes, after instrumentation (post-instrument hook), if the 'configurator' "
            "configurator sets an SDK tracer provider; set OTEL_PYTHON_CONFIGURATOR="
            "otel_lifecycle to put it in front of the exporters",
        ),
        (
            {"OTEL_PYTHON_CONFIGURATOR": "otel_lifecycle", "OTEL_CONFIG_FILE": "otel.yaml"},
            "yes, after instrumentation (post-instrument hook): OTEL_CONFIG_FILE is set, "
            "so configurators are bypassed",
        ),
    ],
)
def test_doctor_says_how_opentelemetry_instrument_loads_it(
    environ: dict[str, str], expected: str
) -> None:
    assert instrument_verdict(load_settings(environ), environ) == expected
    assert doctor(environ)[1][-1] == f"opentelemetry-instrument: {expected}"


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
    assert completed.returncode == 1
    assert "  OTEL_LIFECYCLE_ROOT_TIMEOUT" in completed.stdout
    assert "warning: invalid value '-5' for OTEL_LIFECYCLE_ROOT_TIMEOUT" in completed.stdout
