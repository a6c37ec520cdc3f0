"""Helpers shared by the benchmarks: a no-op exporter and an interleaved, paired timer."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing: the benchmarks measure the processors."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@dataclass(frozen=True)
class Timings:
    """Seconds of each run at each repeat; the runs were interleaved within a repeat."""

    samples: list[list[float]]

    def best(self, index: int) -> float:
        """The fastest timing of run ``index`` (the least disturbed by the machine)."""
        return min(self.samples[index])

    def ratio(self, index: int) -> float:
        """Median over repeats of run ``index`` / run 0 timed next to it.

        Pairing runs timed a moment apart cancels most of the machine's drift,
        which a ratio of two separate minimums does not.
        """
        return statistics.median(
            mine / base for mine, base in zip(self.samples[index], self.samples[0])
        )


def measure(runs: Sequence[Callable[[], None]], repeats: int) -> Timings:
    """Time each run ``repeats`` times, interleaved, so a slow moment hits all of them alike.

    The order of the runs is reversed every other repeat, so none of them always
    follows the same one (and inherits its leftover work). No garbage collection
    is forced between runs: with many objects alive, a forced full collection
    leaves the next run slower than the application would ever be.
    """
    samples: list[list[float]] = [[] for _ in runs]
    order = list(range(len(runs)))
    gc.freeze()  # what the setup made is not the runs' garbage
    for _ in range(repeats):
        for index in order:
            gc.collect()
            gc.disable()
            try:
                begin = time.perf_counter()
                runs[index]()
                samples[index].append(time.perf_counter() - begin)
            finally:
                gc.enable()
        order.reverse()
    gc.unfreeze()
    return Timings(samples)
