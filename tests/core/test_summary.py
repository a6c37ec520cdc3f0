"""The summary log line: one WARNING per batch of spans the processor finalized, none for 0."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import trace

from otel_lifecycle._core.finalize import SHUTDOWN
from otel_lifecycle._core.summary import log_finalized
from tests.conftest import Harness

MakeHarness = Callable[..., Harness]


class FakeClock:
    """Monotonic seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    """The WARNING lines otel_lifecycle logs during the test."""
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        yield lambda: [record.getMessage() for record in caplog.records]


def test_shutdown_with_three_open_spans_logs_one_line(
    make_harness: MakeHarness, warnings: Callable[[], list[str]]
) -> None:
    """Shutdown ending 3 open spans logs exactly one line with the count and the reason."""
    harness = make_harness()
    root = harness.tracer.start_span("root")
    harness.tracer.start_span("other.root")
    harness.tracer.start_span("ended").end()
    harness.tracer.start_span("child", context=trace.set_span_in_context(root))
    harness.processor.shutdown()
    assert warnings() == [
        "otel_lifecycle: finalized 3 open span(s) at shutdown (error.type=shutdown)"
    ]


def test_the_line_is_logged_by_the_documented_logger(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The README names ``otel_lifecycle.finalized``: moving the code must not rename it."""
    harness = make_harness()
    harness.tracer.start_span("root")
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle.finalized"):
        harness.processor.shutdown()
    assert [(record.name, record.levelno) for record in caplog.records] == [
        ("otel_lifecycle.finalized", logging.WARNING)
    ]


def test_a_root_timeout_logs_one_line_per_batch(
    make_harness: MakeHarness, warnings: Callable[[], list[str]]
) -> None:
    """A root and its child timing out together log one line with ``timeout``."""
    clock = FakeClock()
    harness = make_harness(root_timeout=10, clock=clock, on_flush="none")
    root = harness.tracer.start_span("root")
    harness.tracer.start_span("child", context=trace.set_span_in_context(root))
    clock.now += 10
    assert harness.processor.force_flush()
    assert warnings() == [
        "otel_lifecycle: finalized 2 open span(s) at root timeout (error.type=timeout)"
    ]


@pytest.mark.parametrize(
    ("options", "finalize", "line"),
    [
        (
            {"on_flush": "finalize"},
            lambda harness: harness.processor.force_flush(),
            "finalized 2 open span(s) on flush (error.type=flush)",
        ),
        (
            {},
            lambda harness: harness.processor.finalize_open_spans("deploy"),
            "finalized 2 open span(s) by finalize_open_spans() (error.type=deploy)",
        ),
    ],
    ids=["flush", "finalize_open_spans"],
)
def test_a_flush_or_an_explicit_finalization_logs_its_own_wording(
    make_harness: MakeHarness,
    warnings: Callable[[], list[str]],
    options: dict[str, object],
    finalize: Callable[[Harness], object],
    line: str,
) -> None:
    """A flush in finalize mode and ``finalize_open_spans`` each log one line saying which."""
    harness = make_harness(**options)
    harness.tracer.start_span("a")
    harness.tracer.start_span("b")
    finalize(harness)
    harness.processor.shutdown()
    assert warnings() == [f"otel_lifecycle: {line}"]


def test_nothing_open_logs_nothing(
    make_harness: MakeHarness, warnings: Callable[[], list[str]]
) -> None:
    """Flushing and shutting down with every span already ended logs no line at all."""
    harness = make_harness(on_flush="finalize")
    harness.tracer.start_span("done").end()
    assert harness.processor.force_flush()
    assert harness.processor.finalize_open_spans("deploy") == 0
    harness.processor.shutdown()
    assert warnings() == []


def test_a_batch_with_several_reasons_counts_each(warnings: Callable[[], list[str]]) -> None:
    """Spans that keep a reason of their own are counted apart, most frequent first."""
    log_finalized(SHUTDOWN, {"ValueError": 1, "shutdown": 3, "KeyboardInterrupt": 1})
    assert warnings() == [
        "otel_lifecycle: finalized 5 open span(s) at shutdown"
        " (error.type=shutdown: 3, KeyboardInterrupt: 1, ValueError: 1)"
    ]
