"""The ``otel-lifecycle`` command (also ``python -m otel_lifecycle``)."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence

from otel_lifecycle._demo import run_demo
from otel_lifecycle._doctor import run_doctor
from otel_lifecycle._recover import RecoveryError, exporter_from_environment, recover
from otel_lifecycle._settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="otel-lifecycle",
        description="Finalize OpenTelemetry spans left open, exactly once, with a reason.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="show what a backend receives with the plain SDK and with otel_lifecycle"
    )
    demo.add_argument(
        "--endpoint", help="send to this OTLP/gRPC collector instead of an embedded receiver"
    )
    demo.add_argument("--html", metavar="PATH", help="also write the comparison as an HTML page")
    commands.add_parser(
        "doctor",
        help="show the effective configuration, where each value came from, invalid values, "
        "and whether opentelemetry-instrument will load the processor",
    )
    recover_parser = commands.add_parser(
        "recover",
        help="export the open root spans of crashed processes from a crash journal, once",
        description="Export, through the standard OTEL_EXPORTER_OTLP_* configuration, the "
        "root spans left open in a crash journal by processes that are gone.",
    )
    recover_parser.add_argument(
        "--journal", metavar="PATH", help="the journal file (default: OTEL_LIFECYCLE_JOURNAL)"
    )
    return parser


def run_recover(journal: str | None) -> int:
    """``otel-lifecycle recover``: print how many roots were recovered; 1 on failure."""
    path = journal or load_settings().journal
    if path is None:
        print(
            "otel-lifecycle recover: no journal: pass --journal PATH or set OTEL_LIFECYCLE_JOURNAL",
            file=sys.stderr,
        )
        return 2
    exporter = exporter_from_environment()
    try:
        count = recover(path, exporter)
    except (RecoveryError, sqlite3.Error, OSError) as error:
        print(f"otel-lifecycle recover: {error}", file=sys.stderr)
        return 1
    finally:
        exporter.shutdown()
    print(f"recovered {count} root span(s) from {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(endpoint=args.endpoint, html=args.html)
    if args.command == "doctor":
        return run_doctor(os.environ)
    if args.command == "recover":
        return run_recover(args.journal)
    raise AssertionError(args.command)
