"""The demo end to end: the plain SDK loses roots, otel_lifecycle loses none and says why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_lifecycle._cli.demo import MODES, collect, endpoint_problem, run_demo
from otel_lifecycle._cli.demo_app import SCENARIOS, SETTINGS
from otel_lifecycle._cli.main import main
from otel_lifecycle._cli.results import OrphanGroup, RunResult
from tests.receiver import OtlpReceiver, ReceivedSpan

OTEL_LIFECYCLE = Path(sys.executable).parent / "otel-lifecycle"


@pytest.fixture(scope="module")
def results() -> dict[str, RunResult]:
    with OtlpReceiver() as receiver:
        return {result.mode: result for result in collect(receiver)}


def roots_by_scenario(result: RunResult) -> dict[str, ReceivedSpan]:
    """The roots received, by the scenario the app reported for their trace."""
    scenarios = {trace_id: scenario for scenario, trace_id in result.traces.items()}
    return {scenarios[span.trace_id]: span for span in result.spans if span.parent_span_id is None}


def endings(result: RunResult) -> dict[str, tuple[str, object, object, object]]:
    """Status, reason, finalizer and conversation id of each root received."""
    return {
        scenario: (
            root.status_code,
            root.attributes.get("error.type"),
            root.attributes.get("otel_lifecycle.finalized_by"),
            root.attributes.get("gen_ai.conversation.id"),
        )
        for scenario, root in roots_by_scenario(result).items()
    }


def test_the_plain_sdk_loses_roots_and_orphans_children(results: dict[str, RunResult]) -> None:
    plain = results["plain"]
    assert plain.exit_code == -15
    assert sorted(plain.traces) == sorted(SCENARIOS)
    assert endings(plain) == {
        "success": ("OK", None, None, "conv-success"),
        "max-iterations": ("ERROR", "max_iterations", None, "conv-max-iterations"),
    }
    assert (plain.roots_received, plain.orphans) == (2, 3)
    assert plain.orphan_groups() == [
        OrphanGroup(plain.traces["raises"], "raises", None, ("llm.call", "tool.search")),
        OrphanGroup(plain.traces["hangs"], "hangs", None, ("llm.call",)),
    ]


def test_otel_lifecycle_delivers_every_root_with_its_reason(results: dict[str, RunResult]) -> None:
    lifecycle = results["lifecycle"]
    assert lifecycle.exit_code == -15
    assert (lifecycle.roots_received, lifecycle.orphans) == (5, 0)
    assert endings(lifecycle) == {
        "success": ("OK", None, None, "conv-success"),
        "raises": ("ERROR", "ToolError", "exception", "conv-raises"),
        "max-iterations": ("ERROR", "max_iterations", None, "conv-max-iterations"),
        "hangs": ("ERROR", "timeout", "timeout", "conv-hangs"),
        "mid-flight": ("ERROR", "SIGTERM", "signal", "conv-mid-flight"),
    }
    assert lifecycle.orphan_groups() == []
    conversations = {
        span.trace_id: span.attributes["gen_ai.conversation.id"] for span in lifecycle.spans
    }
    assert conversations == {
        trace_id: f"conv-{scenario}" for scenario, trace_id in lifecycle.traces.items()
    }
    ids = [span.span_id for span in lifecycle.spans]
    assert len(ids) == len(set(ids))


def test_cli_prints_the_settings_and_summary_and_writes_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "demo.html"
    assert main(["demo", "--html", str(page)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"Settings: {SETTINGS}."
    assert out[-3:] == [
        "plain SDK (BatchSpanProcessor): roots started 5, roots received 2,"
        " children received without a parent 3",
        "otel_lifecycle (LifecycleSpanProcessor): roots started 5, roots received 5,"
        " children received without a parent 0",
        f"wrote {page}",
    ]
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert f"<p>Settings: {SETTINGS}.</p>" in text
    assert text.count("reason=SIGTERM") == 2
    orphans = text[text.index("<h2>plain SDK (BatchSpanProcessor): spans whose parent") :]
    assert orphans.count("<li>") == 2
    assert "(raises): conversation id not received; llm.call, tool.search</li>" in orphans
    assert "(hangs): conversation id not received; llm.call</li>" in orphans


def test_endpoint_sends_both_runs_and_names_what_to_look_for() -> None:
    lines: list[str] = []
    with OtlpReceiver() as collector:
        assert run_demo(endpoint=collector.grpc_endpoint, print_line=lines.append) == 0
        spans = collector.spans()
    printed = {
        "plain": dict(line.split()[0:3:2] for line in lines[3:8]),
        "lifecycle": dict(line.split()[0:3:2] for line in lines[9:14]),
    }
    assert lines[2:] == [
        f"{title}: sent to {collector.grpc_endpoint} (exit status -15);"
        f" in the backend, look for service.name=demo-agent-{mode}:"
        if scenario is None
        else f"  {scenario:<15} trace {printed[mode][scenario]}"
        for mode, title in MODES
        for scenario in (None, *SCENARIOS)
    ]
    roots: dict[str, list[str]] = {"plain": [], "lifecycle": []}
    for span in spans:
        mode = str(span.resource["service.name"]).removeprefix("demo-agent-")
        assert span.trace_id in printed[mode].values()
        if span.parent_span_id is None:
            scenario = str(span.attributes["gen_ai.conversation.id"]).removeprefix("conv-")
            assert printed[mode][scenario] == span.trace_id
            roots[mode].append(scenario)
    assert sorted(roots["lifecycle"]) == sorted(SCENARIOS)
    assert sorted(roots["plain"]) == ["max-iterations", "success"]


@pytest.mark.parametrize(
    "endpoint",
    [
        "notaurl",
        "localhost:4317",
        "grpc://localhost:4317",
        "http://localhost",
        "http://:4317",
        "http://localhost:99999",
        "http://localhost:4317/v1/traces",
    ],
)
def test_a_bad_endpoint_is_one_line_and_runs_nothing(
    capsys: pytest.CaptureFixture[str], endpoint: str
) -> None:
    assert main(["demo", "--endpoint", endpoint]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "otel-lifecycle demo: --endpoint must be an OTLP/gRPC collector URL http://HOST:PORT"
        f" or https://HOST:PORT (e.g. http://localhost:4317), got {endpoint!r}\n"
    )


@pytest.mark.parametrize(
    "endpoint", ["http://localhost:4317", "https://collector.example:443/", "http://[::1]:4317"]
)
def test_collector_urls_are_accepted(endpoint: str) -> None:
    assert endpoint_problem(endpoint) is None


def test_the_command_rejects_a_bad_endpoint_at_once() -> None:
    completed = subprocess.run(
        [str(OTEL_LIFECYCLE), "demo", "--endpoint", "notaurl"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.splitlines() == [
        "otel-lifecycle demo: --endpoint must be an OTLP/gRPC collector URL http://HOST:PORT"
        " or https://HOST:PORT (e.g. http://localhost:4317), got 'notaurl'"
    ]
