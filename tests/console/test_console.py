"""The console tree exporter: exact lines, and selected by name under opentelemetry-instrument."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, Status, StatusCode

from otel_lifecycle import ConsoleTreeSpanExporter
from tests._paths import APPS

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
OTHER_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
APP = APPS / "open_root.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
MS = 1_000_000
CONVERSATION_ID = "gen_ai.conversation.id"


def make_span(
    name: str,
    span_id: int,
    parent_id: int | None,
    start_ms: int,
    end_ms: int,
    *,
    trace_id: int = TRACE_ID,
    status: StatusCode = StatusCode.UNSET,
    attributes: Mapping[str, str] | None = None,
) -> ReadableSpan:
    def context(span: int) -> SpanContext:
        return SpanContext(trace_id, span, is_remote=False)

    return ReadableSpan(
        name=name,
        context=context(span_id),
        parent=None if parent_id is None else context(parent_id),
        attributes={CONVERSATION_ID: "conv-1", **(attributes or {})},
        status=Status(status),
        start_time=start_ms * MS,
        end_time=end_ms * MS,
    )


def export(spans: list[ReadableSpan]) -> list[str]:
    out = io.StringIO()
    assert ConsoleTreeSpanExporter(out).export(spans) is SpanExportResult.SUCCESS
    return out.getvalue().splitlines()


ROOT = make_span("agent.run", 1, None, 0, 1200, status=StatusCode.OK)
LLM = make_span("llm.call", 2, 1, 10, 310)
TOOL = make_span("tool.search", 3, 1, 320, 345, status=StatusCode.OK)
FINALIZED = make_span(
    "tool.browser",
    4,
    1,
    400,
    1150,
    status=StatusCode.ERROR,
    attributes={"error.type": "timeout", "otel_lifecycle.finalized_by": "timeout"},
)


def test_a_batch_prints_as_a_tree_one_line_per_span() -> None:
    assert export([FINALIZED, TOOL, LLM, ROOT]) == [
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "  - agent.run  OK  conversation=conv-1  1200 ms",
        "    - llm.call  UNSET  conversation=conv-1  300 ms",
        "    - tool.search  OK  conversation=conv-1  25 ms",
        "    - tool.browser  ERROR  reason=timeout  finalized_by=timeout  conversation=conv-1"
        "  750 ms",
    ]


def test_a_span_whose_parent_is_in_another_batch_is_marked_and_traces_are_apart() -> None:
    other = make_span("job", 7, None, 0, 5, trace_id=OTHER_TRACE_ID, attributes={})
    assert export([LLM, other, TOOL]) == [
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "  - llm.call  UNSET  conversation=conv-1  300 ms  (parent not in this batch)",
        "  - tool.search  OK  conversation=conv-1  25 ms  (parent not in this batch)",
        "trace 0af7651916cd43dd8448eb211c80319c",
        "  - job  UNSET  conversation=conv-1  5 ms",
    ]


def test_writes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert ConsoleTreeSpanExporter().export([TOOL]) is SpanExportResult.SUCCESS
    assert capsys.readouterr().out.splitlines()[1].startswith("  - tool.search  OK")


def test_a_closed_stream_fails_the_export_without_raising() -> None:
    out = io.StringIO()
    out.close()
    assert ConsoleTreeSpanExporter(out).export([ROOT]) is SpanExportResult.FAILURE


def test_out_must_be_a_stream() -> None:
    with pytest.raises(TypeError, match=r"^out must be a text stream or None, got str$"):
        ConsoleTreeSpanExporter("stdout")  # type: ignore[arg-type]


def test_selected_by_name_under_opentelemetry_instrument() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="lifecycle_console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        # Both spans go out in the one batch written at exit.
        OTEL_BSP_SCHEDULE_DELAY="60000",
    )
    completed = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(APP)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = re.sub(r"\b\d+ ms\b", "N ms", completed.stdout).splitlines()
    assert lines[0] == "lifecycle_processors=1"
    assert re.fullmatch("trace [0-9a-f]{32}", lines[1])
    assert lines[2:] == [
        "  - app.root  ERROR  reason=shutdown  finalized_by=shutdown  conversation=conv-7  N ms",
        "    - app.child  UNSET  conversation=conv-7  N ms",
    ]
