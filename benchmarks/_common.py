"""Helpers shared by the benchmarks: a no-op exporter and an interleaved, paired timer."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def collector_paused() -> Iterator[None]:
    """Collect garbage now, then keep the collector off for the timed block, as ``timeit`` does.

    Otherwise a run pays for the garbage of the run before it, whenever the
    collector's threshold happens to fall: the largest source of noise here.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def measure(runs: Sequence[Callable[[], None]], repeats: int) -> Timings:
    """Time each run ``repeats`` times, interleaved, so a slow moment hits all of them alike.

    The order of the runs is reversed every other repeat, so none of them always
    follows the same one (and inherits its leftover work). Each run is timed
    with the collector paused after a collection (:func:`collector_paused`); what
    the setup made is frozen first, so those collections do not walk it.
    """
    samples: list[list[float]] = [[] for _ in runs]
    order = list(range(len(runs)))
    gc.freeze()  # what the setup made is not the runs' garbage
    for _ in range(repeats):
        for index in order:
            with collector_paused():
                begin = time.perf_counter()
                runs[index]()
                samples[index].append(time.perf_counter() - begin)
        order.reverse()
    gc.unfreeze()
    return Timings(samples)
