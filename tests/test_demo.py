"""The demo end to end: the plain SDK loses roots, otel_lifecycle loses none."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_lifecycle._cli import main
from otel_lifecycle._demo import RunResult, collect, run_demo
from otel_lifecycle._receiver import OtlpReceiver


@pytest.fixture(scope="module")
def results() -> dict[str, RunResult]:
    with OtlpReceiver() as receiver:
        return {result.mode: result for result in collect(receiver)}


def roots_by_conversation(result: RunResult) -> dict[object, dict[str, object]]:
    roots: dict[object, dict[str, object]] = {}
    for span in result.spans:
        if span.parent_span_id is None:
            conversation = span.attributes.get("gen_ai.conversation.id")
            roots[conversation] = {**span.attributes, "status": span.status_code}
    return roots


def test_the_plain_sdk_loses_roots_and_orphans_children(results: dict[str, RunResult]) -> None:
    plain = results["plain"]
    assert plain.exit_code == -15
    assert plain.roots_received < 5
    assert plain.orphans > 0


def test_otel_lifecycle_delivers_every_root_with_its_reason(results: dict[str, RunResult]) -> None:
    lifecycle = results["lifecycle"]
    assert lifecycle.exit_code == -15
    assert (lifecycle.roots_received, lifecycle.orphans) == (5, 0)
    roots = roots_by_conversation(lifecycle)
    reasons = {conversation: root.get("error.type") for conversation, root in roots.items()}
    assert reasons == {
        "conv-success": None,
        "conv-raises": "timeout",
        "conv-max-iterations": "timeout",
        "conv-hangs": "timeout",
        "conv-mid-flight": "SIGTERM",
    }
    assert roots["conv-success"]["status"] == "UNSET"
    assert {root["status"] for name, root in roots.items() if name != "conv-success"} == {"ERROR"}
    ids = [span.span_id for span in lifecycle.spans]
    assert len(ids) == len(set(ids))


def test_cli_prints_the_summary_and_writes_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "demo.html"
    assert main(["demo", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert (
        "otel_lifecycle (LifecycleSpanProcessor): roots started 5, roots received 5,"
        " children received without a parent 0" in out
    )
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert text.count("reason=SIGTERM") >= 1


def test_endpoint_sends_both_runs_to_a_real_collector() -> None:
    lines: list[str] = []
    with OtlpReceiver() as collector:
        assert run_demo(endpoint=collector.grpc_endpoint, print_line=lines.append) == 0
        spans = collector.spans()
    assert lines[1:] == [
        f"plain SDK (BatchSpanProcessor): sent to {collector.grpc_endpoint} (exit status -15)",
        f"otel_lifecycle (LifecycleSpanProcessor): sent to {collector.grpc_endpoint}"
        " (exit status -15)",
    ]
    roots = [span for span in spans if span.parent_span_id is None]
    services = sorted(str(span.resource["service.name"]) for span in roots)
    assert services.count("demo-agent-lifecycle") == 5
    assert services.count("demo-agent-plain") < 5
