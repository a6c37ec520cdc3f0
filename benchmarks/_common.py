"""Helpers shared by the benchmarks: a no-op exporter and an interleaved best-of-N timer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing: the benchmarks measure the processors."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def best_of(runs: Sequence[Callable[[], None]], repeats: int) -> list[float]:
    """The fastest of ``repeats`` timings of each run, in seconds.

    The runs are interleaved, so a slow moment of the machine hits all of them
    alike and the ratios stay meaningful.
    """
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            begin = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - begin)
    return best
