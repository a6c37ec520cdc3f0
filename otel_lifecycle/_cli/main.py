"""The ``otel-lifecycle`` command (also ``python -m otel_lifecycle``).

``recover`` exits with a distinct status per outcome (``RECOVER_EXIT_CODES``),
so a script or an init container can tell "nothing to do" from a failure.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence

from otel_lifecycle._cli.demo import run_demo
from otel_lifecycle._cli.doctor import ENDPOINT_TIMEOUT, run_doctor
from otel_lifecycle._journal.recovery import (
    RecoveryError,
    UnusableJournalError,
    recover,
)
from otel_lifecycle._settings.environment import load_settings
from otel_lifecycle._setup.configure import exporter_from_environment
from otel_lifecycle._version import __version__

RECOVERED = 0
NOTHING_TO_RECOVER = 1
USAGE = 2
EXPORT_FAILED = 3
UNUSABLE_JOURNAL = 4

RECOVER_EXIT_CODES = {
    RECOVERED: "at least one root span was recovered and exported",
    NOTHING_TO_RECOVER: "the journal holds no root span of a crashed process",
    USAGE: "bad usage: an unknown option, or no journal given",
    EXPORT_FAILED: "the export failed; the spans stay in the journal",
    UNUSABLE_JOURNAL: "the journal does not exist, is not an otel_lifecycle journal "
    "(left untouched), is damaged (moved aside) or cannot be read",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="otel-lifecycle",
        description="Finalize OpenTelemetry spans left open, exactly once, with a reason.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="show what a backend receives with the plain SDK and with otel_lifecycle"
    )
    demo.add_argument(
        "--endpoint", help="send to this OTLP/gRPC collector instead of an embedded receiver"
    )
    demo.add_argument("--html", metavar="PATH", help="also write the comparison as an HTML page")
    doctor = commands.add_parser(
        "doctor",
        help="show the effective configuration, where each value came from, and its problems",
        description="Show the effective configuration, where each value came from, the crash "
        "journal path, the exporter, protocol and endpoint selected, and whether "
        "opentelemetry-instrument will load the processor. Exits 1 if a problem was found.",
    )
    doctor.add_argument(
        "--check-endpoint",
        action="store_true",
        help=f"also try a TCP connection to the OTLP endpoint ({ENDPOINT_TIMEOUT:g} s timeout); "
        "not reachable counts as a problem",
    )
    codes = "\n".join(f"  {code}  {meaning}" for code, meaning in RECOVER_EXIT_CODES.items())
    recover_parser = commands.add_parser(
        "recover",
        help="export the open spans of crashed processes from a crash journal, once",
        description="Export, through the standard OTEL_EXPORTER_OTLP_* configuration, the "
        "spans left open in a crash journal by processes that are gone. The journal "
        "is never created.",
        epilog=f"exit status:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recover_parser.add_argument(
        "--journal", metavar="PATH", help="the journal file (default: OTEL_LIFECYCLE_JOURNAL)"
    )
    return parser


def run_recover(journal: str | None) -> int:
    """``otel-lifecycle recover``: say what was recovered; one exit status per outcome."""
    path = journal or load_settings().journal
    if path is None:
        print(
            "otel-lifecycle recover: no journal: pass --journal PATH or set OTEL_LIFECYCLE_JOURNAL",
            file=sys.stderr,
        )
        return USAGE
    exporter = exporter_from_environment()
    try:
        count = recover(path, exporter)
    except (UnusableJournalError, sqlite3.Error, OSError) as error:
        print(f"otel-lifecycle recover: {error}", file=sys.stderr)
        return UNUSABLE_JOURNAL
    except RecoveryError as error:
        print(f"otel-lifecycle recover: {error}", file=sys.stderr)
        return EXPORT_FAILED
    finally:
        exporter.shutdown()
    if not count:
        print(f"nothing to recover in {path}")
        return NOTHING_TO_RECOVER
    print(f"recovered {count} span(s) from {path}")
    return RECOVERED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(endpoint=args.endpoint, html=args.html)
    if args.command == "doctor":
        return run_doctor(os.environ, check_endpoint=args.check_endpoint)
    if args.command == "recover":
        return run_recover(args.journal)
    raise AssertionError(args.command)
