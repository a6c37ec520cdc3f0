"""The standard library's process pools under ``opentelemetry-instrument``, one task per child.

A ``multiprocessing`` child leaves through ``os._exit``: with the export tick
pinned beyond the test, its spans arrive only through the process hooks'
``multiprocessing.util.Finalize``, which runs before that exit.
"""

from __future__ import annotations

import sys

import pytest

from ._harness import assert_ended_by_app, assert_once_each, named
from .conftest import StartApp
from .pool_app import TASKS

pytestmark = pytest.mark.timeout(60)


def test_children_of_process_pools_export_every_span(start_app: StartApp) -> None:
    app = start_app([sys.executable, "pool_app.py"], {})
    returncode = app.wait_exit(40)
    spans, report = app.received()

    assert returncode == 0, report
    assert_once_each(spans)
    assert_ended_by_app(spans, report)
    for pool in ("pool", "executor"):
        tasks, steps = named(spans, f"{pool}.task"), named(spans, f"{pool}.step")
        assert len(tasks) == TASKS, f"{pool}{report}"
        assert sorted(step.parent_span_id or "" for step in steps) == sorted(
            task.span_id for task in tasks
        ), f"{pool}{report}"
