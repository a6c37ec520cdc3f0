"""In-progress markers: one per open root, never for a root that ended, no id left behind."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.semconv import STATE
from tests.conftest import Harness

MakeHarness = Callable[..., Harness]


def markers_and_roots(harness: Harness) -> tuple[int, int]:
    """How many in-progress markers and how many other spans the exporter got."""
    spans = harness.exporter.get_finished_spans()
    markers = sum(1 for span in spans if (span.attributes or {}).get(STATE) == "in_progress")
    return markers, len(spans) - markers


def flush_while_it_waits_for_room(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]
) -> None:
    """``force_flush()`` (it succeeds); ``meanwhile`` runs once, as its snapshot waits for room."""
    path = harness.processor._path
    wait_for_room = path.wait_for_room

    def meanwhile_then_wait(deadline: Deadline) -> bool:
        monkeypatch.setattr(path, "wait_for_room", wait_for_room)
        meanwhile()
        return wait_for_room(deadline)

    monkeypatch.setattr(path, "wait_for_room", meanwhile_then_wait)
    assert harness.processor.force_flush()


def test_a_root_that_ends_while_the_snapshot_waits_for_room_gets_no_marker(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = make_harness(on_flush="snapshot")
    root = harness.tracer.start_span("root")
    flush_while_it_waits_for_room(harness, monkeypatch, root.end)

    assert markers_and_roots(harness) == (0, 1)
    assert not harness.processor._markers.sent


def test_two_flushes_at_once_send_one_marker(
    make_harness: MakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = make_harness(on_flush="snapshot")
    root = harness.tracer.start_span("root")

    def another_flush() -> None:
        assert harness.processor.force_flush()

    flush_while_it_waits_for_room(harness, monkeypatch, another_flush)
    assert markers_and_roots(harness) == (1, 0)

    root.end()
    assert markers_and_roots(harness) == (1, 1)
    assert not harness.processor._markers.sent
