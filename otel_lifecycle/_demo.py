"""``otel-lifecycle demo``: the same app exported by the plain SDK and by otel_lifecycle.

The workload (``_demo_app``) runs in a child process twice; each run ends with
SIGTERM. An embedded OTLP receiver on 127.0.0.1 plays the backend, unless
``--endpoint`` names a real collector.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from otel_lifecycle._demo_app import SCENARIOS
from otel_lifecycle._receiver import OtlpReceiver, ReceivedSpan
from otel_lifecycle._report import write_html
from otel_lifecycle._tree import Forest, render_trees

MODES = (
    ("plain", "plain SDK (BatchSpanProcessor)"),
    ("lifecycle", "otel_lifecycle (LifecycleSpanProcessor)"),
)
_CHILD_TIMEOUT = 20.0


@dataclass(frozen=True)
class RunResult:
    """What the backend received from one run of the workload."""

    mode: str
    title: str
    exit_code: int
    spans: tuple[ReceivedSpan, ...]

    @property
    def roots_received(self) -> int:
        """Root spans that arrived (ended by the app or finalized by the processor)."""
        return sum(1 for span in self.spans if span.parent_span_id is None)

    @property
    def orphans(self) -> int:
        """Spans whose parent never arrived: a broken trace in the backend."""
        forest = Forest(self.spans)
        return sum(1 for span in self.spans if forest.is_orphan(span))

    def counts(self) -> str:
        """Roots started against roots received, and orphaned children."""
        return (
            f"roots started {len(SCENARIOS)}, roots received {self.roots_received},"
            f" children received without a parent {self.orphans}"
        )

    def summary(self) -> str:
        """The run's summary line."""
        return f"{self.title}: {self.counts()}"


def run_workload(mode: str, endpoint: str) -> int:
    """Run the workload in a child process, SIGTERM it once ready; return its exit code."""
    env = dict(os.environ, OTEL_BSP_SCHEDULE_DELAY="200")
    with subprocess.Popen(
        [sys.executable, "-m", "otel_lifecycle._demo_app", mode, endpoint],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        ready = child.stdout.readline().strip()
        if ready != "ready":
            child.kill()
            raise RuntimeError(f"the demo workload failed to start ({mode}): {ready!r}")
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(_CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            raise


def collect(receiver: OtlpReceiver) -> list[RunResult]:
    """Run both modes against ``receiver``, one after the other."""
    results = []
    for mode, title in MODES:
        receiver.clear()
        exit_code = run_workload(mode, receiver.grpc_endpoint)
        results.append(RunResult(mode, title, exit_code, receiver.spans()))
    return results


def run_demo(
    *,
    endpoint: str | None = None,
    html: str | None = None,
    print_line: Callable[[str], None] = print,
) -> int:
    """Run the demo and print what the backend received; return the exit status."""
    print_line(f"Scenarios per run: {', '.join(SCENARIOS)}; each run ends with SIGTERM.")
    if endpoint is not None:
        for mode, title in MODES:
            exit_code = run_workload(mode, endpoint)
            print_line(f"{title}: sent to {endpoint} (exit status {exit_code})")
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
