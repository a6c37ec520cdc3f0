"""The Celery app of the tests: ``quick``, ``slow`` and ``limited``, each with a span of its own.

The broker is ``$CELERY_BROKER_URL``, the queue ``$CELERY_QUEUE`` (one per test).
The Celery instrumentation makes the ``run/<task>`` span; each task opens its
own ``<task>.work`` span inside it. ``slow`` and ``limited`` write a marker file
``<label>-<pid>`` into ``$WORKERS_MARKER_DIR`` once they run, so a test knows
which child runs them before it signals anything. The worker writes
``$WORKERS_READY_DIR/ready`` once it consumes (``worker_ready``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready
from opentelemetry import trace

LIMIT_S = 1
"""``limited``'s hard time limit: billiard SIGTERMs the child then, and SIGKILLs it 0.1 s later."""

app = Celery("tasks_app", broker=os.environ["CELERY_BROKER_URL"])
app.conf.update(
    task_default_queue=os.environ["CELERY_QUEUE"],
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
tracer = trace.get_tracer(__name__)


def _mark(label: str) -> None:
    Path(os.environ["WORKERS_MARKER_DIR"], f"{label}-{os.getpid()}").touch()


@app.task
def quick(number: int) -> int:
    with tracer.start_as_current_span("quick.work") as span:
        span.set_attribute("task.label", str(number))
        return number


@app.task
def slow(seconds: float, label: str) -> str:
    with tracer.start_as_current_span("slow.work") as span:
        span.set_attribute("task.label", label)
        _mark(label)
        time.sleep(seconds)
        return label


@app.task(time_limit=LIMIT_S)
def limited(label: str) -> None:
    with tracer.start_as_current_span("limited.work") as span:
        span.set_attribute("task.label", label)
        _mark(label)
        time.sleep(30)


@worker_ready.connect
def _ready(**_: Any) -> None:
    Path(os.environ["WORKERS_READY_DIR"], "ready").touch()
