"""Helpers shared by the benchmarks: a no-op exporter and two paired timers.

``measure`` interleaves whole runs timed by the wall clock; ``measure_blocks``
interleaves short blocks and charges each side the CPU time of its own threads.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

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
            mine / base for mine, base in zip(self.samples[index], self.samples[0], strict=False)
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


def cpu_seconds(thread: threading.Thread) -> float:
    """The CPU time ``thread`` has used so far (Linux: its own CPU clock)."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


class Side:
    """One side of a block-interleaved benchmark: ``threads`` threads that each call
    ``work`` once per block, the thread that exports what they end, and ``settle``,
    which flushes it.

    The threads live as long as the side, so a block costs no thread start; two
    barriers start and finish each block.
    """

    def __init__(
        self,
        work: Callable[[], None],
        threads: int,
        exporting: threading.Thread,
        settle: Callable[[], object],
    ) -> None:
        self._work = work
        self._exporting = exporting
        self.settle = settle
        self._start = threading.Barrier(threads + 1)
        self._done = threading.Barrier(threads + 1)
        self._closing = False
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _loop(self) -> None:
        while True:
            self._start.wait()
            if self._closing:
                return
            self._work()
            self._done.wait()

    def block(self) -> None:
        """Run one block: every thread calls ``work`` once; return when all have."""
        self._start.wait()
        self._done.wait()

    def cpu(self) -> float:
        """CPU seconds used so far by the side's threads and by its exporting thread."""
        return sum(map(cpu_seconds, [*self._threads, self._exporting]))

    def close(self) -> None:
        self._closing = True
        self._start.wait()
        for thread in self._threads:
            thread.join()


def measure_blocks(sides: Sequence[Side], repeats: int, blocks: int) -> Timings:
    """Each repeat: ``blocks`` blocks of each side, interleaved A B B A, then each side settles.

    A side's sample is the CPU time its own threads used in the repeat: the
    threads that run its blocks, the thread that exports for it, and the calling
    thread while it settles (the SDK's batch processor exports a flush in the
    caller). Each side is charged for its own work wherever and whenever it ran,
    so exports that overlap the other side's blocks are not misattributed.

    The machines this runs on change speed in steps that last a tenth of a
    second or more; blocks a few milliseconds long, interleaved, put both sides
    on the same steps, which whole runs of 0.1 s each do not. The sides start in
    turn (A B B A, then B A A B), and the collector is paused through a repeat
    (:func:`collector_paused`). The sides' threads are stopped at the end: a
    side serves one measurement.
    """
    samples: list[list[float]] = [[] for _ in sides]
    gc.freeze()
    try:
        for repeat in range(repeats):
            first = repeat % len(sides)
            order = [*range(first, len(sides)), *range(first)]
            sequence = (order + order[::-1]) * (blocks // 2)
            with collector_paused():
                before = [side.cpu() for side in sides]
                for index in sequence:
                    sides[index].block()
                settled = []
                for side in sides:
                    begin = time.thread_time()
                    side.settle()
                    settled.append(time.thread_time() - begin)
                after = [side.cpu() for side in sides]
            for index in range(len(sides)):
                samples[index].append(after[index] - before[index] + settled[index])
    finally:
        gc.unfreeze()
        for side in sides:
            side.close()
    return Timings(samples)
