"""The standard library's process pools, each child used for one task, ten tasks each.

``multiprocessing.Pool(maxtasksperchild=1)`` (fork) and
``ProcessPoolExecutor(max_tasks_per_child=1)`` (forkserver: that option refuses
fork, and spawn costs a fresh instrumented interpreter per task). Python 3.10
has no such option: there the executor forks its two workers, which serve
every task and leave when it shuts down (fork also keeps them instrumented
with opentelemetry-instrumentation 0.61b0, the lowest cell's, which leaves a
forkserver or spawned interpreter uninstrumented). Every task opens
``<pool>.task`` with a child span ``<pool>.step``. Each child leaves through
``os._exit`` after ``multiprocessing``'s own finalizers, which is where the
process hooks flush.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from opentelemetry import trace

TASKS = 10
WORKERS = 2

tracer = trace.get_tracer(__name__)


def task(pool: str, number: int) -> int:
    with tracer.start_as_current_span(f"{pool}.task") as span:
        span.set_attribute("task.number", number)
        with tracer.start_as_current_span(f"{pool}.step"):
            return number


def main() -> None:
    numbers = list(range(TASKS))
    pool = multiprocessing.get_context("fork").Pool(WORKERS, maxtasksperchild=1)
    assert pool.starmap(task, [("pool", number) for number in numbers]) == numbers
    pool.close()
    pool.join()
    options: dict[str, Any] = {"mp_context": multiprocessing.get_context("fork")}
    if sys.version_info >= (3, 11):
        options = {
            "mp_context": multiprocessing.get_context("forkserver"),
            "max_tasks_per_child": 1,
        }
    with ProcessPoolExecutor(WORKERS, **options) as executor:
        assert list(executor.map(task, ["executor"] * TASKS, numbers)) == numbers
    print("pool-app-done", flush=True)


if __name__ == "__main__":
    main()
