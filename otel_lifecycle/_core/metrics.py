"""The process's counts as OpenTelemetry metrics, through the global ``MeterProvider``.

Every processor's ``Counters`` (``stats``) also adds what it counts to
``TOTALS``, the counts of the whole process. The instruments are asynchronous:
they read ``TOTALS``, and the open spans of the live processors, only when a
metric reader collects. So counting costs a dict increment and never calls into
the metrics SDK, whose aggregation locks are not reentrant: a signal handler
that counts the spans it finalizes cannot wait on a lock held by the thread it
interrupted.

The instruments are created once per process, when the first processor is,
from the meter ``otel_lifecycle``. Until the application sets a
``MeterProvider`` they are the API's proxies and do nothing; when it sets one,
before or after the processor was created, the API binds them to it.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import Counter
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_lifecycle._core.active import live
from otel_lifecycle._core.semconv import ERROR_TYPE
from otel_lifecycle._version import __version__

METER_NAME = "otel_lifecycle"

FINALIZED = "otel_lifecycle.span.finalized"
"""Spans the processor finalized, by ``error.type`` (the reason)."""
OPEN = "otel_lifecycle.span.open"
"""Spans started and not yet ended, tracked by the processors."""
DROPPED = "otel_lifecycle.span.dropped"
"""Ended spans not exported, by ``error.type``: queue_full, priority_full, already_shutdown."""
UNTRACKED = "otel_lifecycle.span.untracked"
"""Spans started but not tracked, by ``error.type``: tracking_full, already_shutdown."""
RECOVERED = "otel_lifecycle.span.recovered"
"""Spans of crashed processes recovered from the crash journal."""

SPAN_UNIT = "{span}"

Key = tuple[str, str | None]
"""An instrument's name and the ``error.type`` of the count, if it has one."""


class Totals:
    """What every processor of this process counted, since the process started.

    Never reset, except in a forked child (a new process, which counts from
    zero, like its processors' ``stats()``), so the counters only go up. The
    lock is reentrant: a signal handler may count while the thread it
    interrupted was counting.
    """

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._counts: Counter[Key] = Counter()

    def add(self, instrument: str, error_type: str | None, count: int) -> None:
        """Add ``count`` to ``instrument``, for ``error_type``."""
        with self._lock:
            self._counts[instrument, error_type] += count

    def of(self, instrument: str) -> list[tuple[str | None, int]]:
        """The counts of ``instrument``: (``error.type``, count) for each one counted."""
        with self._lock:
            return [(key[1], count) for key, count in self._counts.items() if key[0] == instrument]

    def reset_in_child(self) -> None:
        """In a forked child: count from zero, with a lock no parent's thread can hold."""
        self._lock = threading.RLock()
        self._counts = Counter()


TOTALS = Totals()
os.register_at_fork(after_in_child=TOTALS.reset_in_child)

_install_lock = threading.Lock()
_installed = threading.Event()


def install() -> None:
    """Create the instruments, once per process, from the global meter provider."""
    if _installed.is_set():
        return
    with _install_lock:
        if not _installed.is_set():
            _create_instruments(metrics.get_meter(METER_NAME, __version__))
            _installed.set()


def _create_instruments(meter: Meter) -> None:
    meter.create_observable_counter(
        FINALIZED,
        [functools.partial(_observe, FINALIZED)],
        SPAN_UNIT,
        "Spans the processor finalized (ended with status ERROR), by reason.",
    )
    meter.create_observable_up_down_counter(
        OPEN,
        [_observe_open],
        SPAN_UNIT,
        "Spans started and not yet ended, tracked by the lifecycle processors.",
    )
    meter.create_observable_counter(
        DROPPED,
        [functools.partial(_observe, DROPPED)],
        SPAN_UNIT,
        "Ended spans the processor's export path did not export, by reason.",
    )
    meter.create_observable_counter(
        UNTRACKED,
        [functools.partial(_observe, UNTRACKED)],
        SPAN_UNIT,
        "Spans started but not tracked (not finalized if never ended), by reason.",
    )
    meter.create_observable_counter(
        RECOVERED,
        [functools.partial(_observe, RECOVERED)],
        SPAN_UNIT,
        "Spans of crashed processes recovered from the crash journal.",
    )


def _observe(instrument: str, options: CallbackOptions) -> Iterable[Observation]:
    return [
        Observation(count, None if error_type is None else {ERROR_TYPE: error_type})
        for error_type, count in TOTALS.of(instrument)
    ]


def _observe_open(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(sum(processor._open_span_count() for processor in live()))]
