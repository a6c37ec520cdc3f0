"""The ``otel-lifecycle`` command (also ``python -m otel_lifecycle``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from otel_lifecycle._demo import run_demo
from otel_lifecycle._doctor import run_doctor


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return run_demo(endpoint=args.endpoint, html=args.html)
    if args.command == "doctor":
        return run_doctor(os.environ)
    raise AssertionError(args.command)
