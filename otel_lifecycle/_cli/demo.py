"""``otel-lifecycle demo``: the same app exported by the plain SDK and by otel_lifecycle.

The workload (``demo_app``) runs in a child process twice; each run ends with
SIGTERM. An embedded OTLP receiver on 127.0.0.1 plays the backend, unless
``--endpoint`` names a real collector.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from otel_lifecycle._cli.demo_app import SCENARIOS, SETTINGS, service_name
from otel_lifecycle._cli.receiver import OtlpReceiver
from otel_lifecycle._cli.report import write_html
from otel_lifecycle._cli.results import RunResult
from otel_lifecycle._console.tree import render_trees

MODES = (
    ("plain", "plain SDK (BatchSpanProcessor)"),
    ("lifecycle", "otel_lifecycle (LifecycleSpanProcessor)"),
)
_CHILD_TIMEOUT = 20.0
_READY = "ready"
_TRACE_LINE = "trace"


def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` is not an OTLP/gRPC collector URL ``http(s)://HOST:PORT``; None if it is."""
    parsed = urlsplit(endpoint)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if (
        parsed.scheme in ("http", "https")
        and parsed.hostname
        and port
        and parsed.path in ("", "/")
        and not parsed.query
        and not parsed.fragment
    ):
        return None
    return (
        f"--endpoint must be an OTLP/gRPC collector URL http://HOST:PORT or https://HOST:PORT"
        f" (e.g. http://localhost:4317), got {endpoint!r}"
    )


@dataclass(frozen=True)
class Workload:
    """How one run of the workload ended, and the trace id of each conversation."""

    exit_code: int
    traces: Mapping[str, str]


def run_workload(mode: str, endpoint: str) -> Workload:
    """Run the workload in a child process, SIGTERM it once ready; how it ended."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    with subprocess.Popen(
        [sys.executable, "-m", "otel_lifecycle._cli.demo_app", mode, endpoint],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        traces: dict[str, str] = {}
        line = child.stdout.readline().strip()
        while line.startswith(f"{_TRACE_LINE} "):
            _, scenario, trace_id = line.split()
            traces[scenario] = trace_id
            line = child.stdout.readline().strip()
        if line != _READY:
            child.kill()
            raise RuntimeError(f"the demo workload failed to start ({mode}): {line!r}")
        child.send_signal(signal.SIGTERM)
        try:
            return Workload(child.wait(_CHILD_TIMEOUT), traces)
        except subprocess.TimeoutExpired:
            child.kill()
            raise


def collect(receiver: OtlpReceiver) -> list[RunResult]:
    """Run both modes against ``receiver``, one after the other."""
    results = []
    for mode, title in MODES:
        receiver.clear()
        workload = run_workload(mode, receiver.grpc_endpoint)
        results.append(
            RunResult(mode, title, workload.exit_code, receiver.spans(), workload.traces)
        )
    return results


def _print_error(line: str) -> None:
    print(line, file=sys.stderr)


def run_demo(
    *,
    endpoint: str | None = None,
    html: str | None = None,
    print_line: Callable[[str], None] = print,
    print_error: Callable[[str], None] = _print_error,
) -> int:
    """Run the demo and print what the backend received; return the exit status.

    2, and nothing run, if ``endpoint`` is not a collector URL.
    """
    problem = None if endpoint is None else endpoint_problem(endpoint)
    if problem is not None:
        print_error(f"otel-lifecycle demo: {problem}")
        return 2
    print_line(f"Scenarios per run: {', '.join(SCENARIOS)}; each run ends with SIGTERM.")
    print_line(f"Settings: {SETTINGS}.")
    if endpoint is not None:
        for mode, title in MODES:
            workload = run_workload(mode, endpoint)
            print_line(
                f"{title}: sent to {endpoint} (exit status {workload.exit_code});"
                f" in the backend, look for service.name={service_name(mode)}:"
            )
            for scenario in SCENARIOS:
                print_line(f"  {scenario:<15} trace {workload.traces[scenario]}")
        return 0
    with OtlpReceiver() as receiver:
        results = collect(receiver)
    for result in results:
        print_line("")
        print_line(f"== {result.title} (exit status {result.exit_code})")
        for line in render_trees(result.spans):
            print_line(line)
    print_line("")
    for result in results:
        print_line(result.summary())
    if html is not None:
        write_html(html, results)
        print_line(f"wrote {html}")
    return 0
