"""The demo end to end: the plain SDK loses the open root, otel_lifecycle does not."""

from __future__ import annotations

import pytest

from otel_lifecycle._cli import main
from otel_lifecycle._demo import run_demo


def test_demo_shows_the_lost_root_and_the_finalized_one() -> None:
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    plain = lines.index("== plain SDK (BatchSpanProcessor): 1 spans received")
    lifecycle = lines.index("== otel_lifecycle (LifecycleSpanProcessor): 3 spans received")
    assert plain < lifecycle
    assert "(parent never arrived)" in lines[plain + 2]
    after = lines[lifecycle + 1 :]
    assert after[1].startswith("  - agent.run  ERROR  reason=shutdown  conversation=conv-42")
    assert after[2].startswith("    - llm.call  UNSET  conversation=conv-42")
    assert after[3].startswith("    - tool.calculator  ERROR  reason=shutdown")


def test_cli_runs_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "== otel_lifecycle (LifecycleSpanProcessor): 3 spans received" in capsys.readouterr().out
