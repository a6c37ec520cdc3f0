"""``LifecycleSpanProcessor``: tracks open spans and finalizes them exactly once, with a reason.

The path of a span, from ``on_start`` to the exporter:

1. ``on_start``: one dict set (``_open_spans``); for local roots also their start,
   thread, journal record and watchdog; then the conversation id
   (``_conversation``).
2. ``on_end``: hand the frozen span to the export stage (``_export``): local roots
   to the priority lane, other spans to the normal lane; then one dict pop. A
   span with a pending ending (``_endings``) is stamped first.
3. Finalizing (shutdown, timeout, flush, signals): claim each open span (pop it),
   end it with the public ``end()``, children first; its ``on_end`` stamps the
   reason on the copy that is exported (``_finalize``), through the priority
   lane, waiting for room rather than dropping.

No lock is taken on the hot path, and none that a thread interrupted by a
signal could hold is needed to finalize: a span whose own lock is held is
skipped, or, when the process is about to die, exported as a stamped copy.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from threading import get_ident
from typing import Callable, Union

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, StatusCode

from otel_lifecycle._core.active import live
from otel_lifecycle._core.bounded import call_within
from otel_lifecycle._core.conversation import Conversations, Resolver
from otel_lifecycle._core.endings import EXPORTED, Claim, Ending, ForkRecord, Inherited, Mark
from otel_lifecycle._core.export import ExportStage
from otel_lifecycle._core.finalize import (
    FLUSH,
    SHUTDOWN,
    SIGTERM,
    TIMEOUT,
    Reason,
    kept,
    reason_named,
    stamp,
    stamped,
    undone,
    with_attribute,
)
from otel_lifecycle._core.markers import in_progress_marker
from otel_lifecycle._core.open_spans import OpenSpans, finalization_order
from otel_lifecycle._core.semconv import DROPPED_DESCENDANTS
from otel_lifecycle._core.stats import Counters, LifecycleStats
from otel_lifecycle._core.summary import log_finalized
from otel_lifecycle._core.watchdog import RootWatchdog
from otel_lifecycle._journal.writer import Journal
from otel_lifecycle._process.hooks import register
from otel_lifecycle._settings.environment import (
    FALLBACK_VALUES,
    ON_FLUSH_VALUES,
    Fallback,
    OnFlush,
    check_bool,
    check_choice,
    check_keys,
    check_path,
    check_positive_int,
    check_seconds,
    load_settings,
)

_logger = logging.getLogger(__name__)

Delegate = Union[SpanExporter, SpanProcessor]

DROPPED_MEMORY = 4096
"""How many traces' counts of dropped descendants are kept until their root ends."""


class LifecycleSpanProcessor(SpanProcessor):
    """Track open spans; finalize the ones left open, exactly once, with a reason.

    ``delegate`` receives every ended span: a ``SpanExporter`` gets the package's
    export stage (batched like the SDK's ``BatchSpanProcessor``, configured by the
    same ``OTEL_BSP_*`` variables, with a lane for local roots, finalized spans and
    in-progress markers that overflow cannot drop); a ``SpanProcessor`` is called
    exactly as the SDK would call it. A keyword left as None comes from its
    ``OTEL_LIFECYCLE_*`` environment variable, else its default.
    """

    def __init__(
        self,
        delegate: Delegate,
        *,
        root_timeout: float | None = None,
        on_flush: OnFlush | None = None,
        conversation_id_keys: tuple[str, ...] | list[str] | None = None,
        conversation_id_fallback: Fallback | None = None,
        conversation_id_resolver: Resolver | None = None,
        max_tracked_spans: int | None = None,
        shutdown_timeout: float | None = None,
        clock: Callable[[], float] | None = None,
        journal: str | os.PathLike[str] | None = None,
        handle_signals: bool | None = None,
        drain_timeout: float | None = None,
    ) -> None:
        settings = load_settings()
        if not isinstance(delegate, (SpanExporter, SpanProcessor)):
            raise TypeError(
                f"delegate must be a SpanExporter or a SpanProcessor, got {type(delegate).__name__}"
            )
        if conversation_id_resolver is not None and not callable(conversation_id_resolver):
            raise TypeError("conversation_id_resolver must be callable")
        if clock is not None and not callable(clock):
            raise TypeError("clock must be callable")
        self._root_timeout = (
            settings.root_timeout
            if root_timeout is None
            else check_seconds("root_timeout", root_timeout, allow_zero=True) or None
        )
        self._on_flush = (
            settings.on_flush
            if on_flush is None
            else check_choice("on_flush", on_flush, ON_FLUSH_VALUES)
        )
        self._conversations = Conversations(
            settings.conversation_id_keys
            if conversation_id_keys is None
            else check_keys("conversation_id_keys", conversation_id_keys),
            conversation_id_resolver,
            settings.conversation_id_fallback
            if conversation_id_fallback is None
            else check_choice(  # type: ignore[arg-type]
                "conversation_id_fallback", conversation_id_fallback, FALLBACK_VALUES
            ),
        )
        self._shutdown_timeout = (
            settings.shutdown_timeout
            if shutdown_timeout is None
            else check_seconds("shutdown_timeout", shutdown_timeout, allow_zero=False)
        )
        max_spans = (
            settings.max_tracked_spans
            if max_tracked_spans is None
            else check_positive_int("max_tracked_spans", max_tracked_spans)
        )
        self._handles_signals = (
            settings.handle_signals
            if handle_signals is None
            else check_bool("handle_signals", handle_signals)
        )
        self._drain_timeout: float | None = (
            check_seconds("drain_timeout", drain_timeout, allow_zero=True)
            if drain_timeout is not None
            else settings.drain_timeout
            if settings.sources.get("drain_timeout") == "environment"
            else None
        )
        """The drain window after SIGTERM, if set; else the server's, else the default."""
        self._exit_reason = SHUTDOWN
        """The reason spans still open at shutdown get: ``SIGTERM`` once one arrived."""
        journal_path = settings.journal if journal is None else check_path("journal", journal)
        self._strict = settings.strict
        self._clock = clock or time.monotonic
        self._delegate = delegate
        self._stage: ExportStage | None = None
        self._processor: SpanProcessor | None = None
        self._delegate_on_ending: Callable[[Span], None] | None = None
        if isinstance(delegate, SpanExporter):
            self._stage = ExportStage(delegate)
        else:
            self._processor = delegate
            self._delegate_on_ending = getattr(delegate, "_on_ending", None)
        self._open = OpenSpans(max_spans)
        self._spans = self._open.spans
        """The open spans, read on the hot path (the same dict for the processor's life)."""
        self._max_spans = max_spans
        self._endings: dict[int, Ending] = {}
        self._snapshotted: set[int] = set()
        self._dropped_by_trace: dict[int, int] = {}
        self._forks: list[ForkRecord] = []
        self._forking: ForkRecord | None = None
        self._counters = Counters()
        self._id_generator = RandomIdGenerator()
        self._logged_errors: set[str] = set()
        self._shutdown_calls = itertools.count()
        self._accepting = True
        self._watchdog: RootWatchdog | None = None
        self._start_watchdog()
        self._journal: Journal | None = None
        if journal_path is not None:
            self._journal = Journal(
                journal_path, self._export_recovered, self._conversations.of_span
            )
            self._journal.start()
        register(self)

    def _start_watchdog(self) -> None:
        if self._root_timeout is not None:
            self._watchdog = RootWatchdog(
                self._root_timeout, self._clock, self._open.roots, self._expire
            )
            self._watchdog.start()

    @property
    def delegate(self) -> Delegate:
        """The exporter or span processor given to the constructor."""
        return self._delegate

    # The hot path.

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Track ``span`` and give it its conversation id. Never raises."""
        try:
            if self._accepting:
                context: SpanContext = span._context  # type: ignore[assignment]
                spans = self._spans
                if len(spans) < self._max_spans:
                    span_id = context.span_id
                    spans[span_id] = span
                    parent = span._parent
                    if parent is None or parent.is_remote:
                        self._root_started(span, span_id)
                else:
                    self._counters.add("untracked")
                self._conversations.on_start(span, context.trace_id, parent_context)
            else:
                self._counters.add("started_after_shutdown")
        except Exception as error:  # noqa: BLE001 - a hook must never raise into the application
            self._internal_error("on_start", error)
        if self._processor is not None:
            try:
                self._processor.on_start(span, parent_context)
            except Exception as error:  # noqa: BLE001
                self._internal_error("delegate.on_start", error)

    def _root_started(self, span: Span, span_id: int) -> None:
        self._open.roots[span_id] = (self._clock(), get_ident())
        if self._watchdog is not None:
            self._watchdog.on_root_started()
        if self._journal is not None:
            self._journal.opened(span)

    def _on_ending(self, span: Span) -> None:
        """Forwarded to a delegate span processor that has the SDK's ``_on_ending`` hook."""
        if self._delegate_on_ending is not None:
            try:
                self._delegate_on_ending(span)
            except Exception as error:  # noqa: BLE001
                self._internal_error("delegate._on_ending", error)

    def on_end(self, span: ReadableSpan) -> None:
        """Hand ``span`` to the export path, then stop tracking it. Never raises."""
        try:
            context: SpanContext = span._context  # type: ignore[assignment]
            span_id = context.span_id
            priority = False
            if self._endings:
                ending = self._endings.pop(span_id, None)
                if ending is not None:
                    applied = self._apply(ending, span)
                    if applied is None:
                        return
                    span, priority = applied
            parent = span._parent
            if parent is None or parent.is_remote:
                self._open.roots.pop(span_id, None)
                if self._journal is not None:
                    self._journal.closed(context.trace_id, span_id)
                if self._snapshotted:
                    self._snapshotted.discard(span_id)
                if self._dropped_by_trace:
                    span = self._with_dropped_count(span, context.trace_id)
                self._emit_priority(span)
            elif priority:
                self._emit_priority(span)
            elif self._stage is None:
                self._processor.on_end(span)  # type: ignore[union-attr]
            elif context.trace_flags.sampled and not self._stage.emit(span):
                self._dropped(context.trace_id)
            self._spans.pop(span_id, None)
        except Exception as error:  # noqa: BLE001
            self._internal_error("on_end", error)

    def _emit_priority(self, span: ReadableSpan) -> None:
        """Queue a local root, finalized span or marker; count it if the lane refuses it."""
        stage = self._stage
        if stage is None:
            self._processor.on_end(span)  # type: ignore[union-attr]
        elif span.context.trace_flags.sampled and not stage.emit_priority(span):
            self._counters.add("dropped_after_shutdown" if stage.closed else "dropped_priority")

    def _with_dropped_count(self, root: ReadableSpan, trace_id: int) -> ReadableSpan:
        """The ending local root, with how many of its trace's spans the full queue dropped."""
        dropped = self._dropped_by_trace.pop(trace_id, 0)
        return with_attribute(root, DROPPED_DESCENDANTS, dropped) if dropped else root

    def _dropped(self, trace_id: int) -> None:
        """An ordinary span was refused by the full queue: count it, and tell its root later."""
        if self._stage is not None and self._stage.closed:
            self._counters.add("dropped_after_shutdown")
            return
        self._counters.add("dropped_overflow")
        by_trace = self._dropped_by_trace
        by_trace[trace_id] = by_trace.get(trace_id, 0) + 1
        if len(by_trace) > DROPPED_MEMORY:
            with contextlib.suppress(RuntimeError, StopIteration):  # changed meanwhile: next time
                by_trace.pop(next(iter(by_trace)), None)

    def _apply(self, ending: Ending, span: ReadableSpan) -> tuple[ReadableSpan, bool] | None:
        """The span to export for a span with a pending ending, and whether it is a priority."""
        if isinstance(ending, Claim):
            if ending.thread != get_ident():
                return undone(span, ending.undo), False
            ending.consumed = True
            if span.status is ending.undo.reason.status:
                return span, True
            return kept(span, ending.undo), True  # the application set a status meanwhile
        if ending is EXPORTED:
            return None  # claimed (no longer open) and exported already
        if isinstance(ending, Inherited):
            ending.ended_here()
            return span, False
        assert isinstance(ending, Mark)
        if span.status.status_code is not StatusCode.UNSET:
            return span, False
        conversation_id = self._conversations.of_trace(span.context.trace_id)
        return stamped(span, ending.reason, conversation_id, finalized=False), True

    # Finalizing.

    def finalize_open_spans(self, reason: str) -> int:
        """Finalize every open span now with ``reason``; return how many this call ended."""
        return self._finalize_all(reason_named(reason), time.monotonic() + self._shutdown_timeout)

    def _finalize_all(
        self, reason: Reason, deadline: float, *, in_handler: bool = False, dying: bool = False
    ) -> int:
        self._reclaim_forked()
        spans = finalization_order(self._open.spans)
        return self._finalize(spans, reason, deadline, in_handler=in_handler, dying=dying)

    def _finalize(
        self,
        spans: Iterable[Span],
        reason: Reason,
        deadline: float,
        *,
        in_handler: bool = False,
        dying: bool = False,
    ) -> int:
        """End ``spans`` (children first) with ``reason``; the count this call ended.

        ``in_handler``: running in a signal handler, in the thread it interrupted;
        a span whose lock is held (by that thread) is skipped, or, if the process
        is ``dying``, exported now as a stamped copy.
        """
        ended: Counter[str] = Counter()
        for span in spans:
            try:
                used = self._finalize_one(span, reason, deadline, in_handler, dying)
                if used is not None:
                    ended[used.error_type] += 1
            except Exception as error:  # noqa: BLE001 - one bad span must not stop the others
                self._internal_error("finalize", error)
        for error_type, count in ended.items():
            self._counters.finalized(error_type, count)
        log_finalized(reason, ended)  # one WARNING per batch; safe in a signal handler (RLocks)
        return sum(ended.values())

    def _finalize_one(
        self, span: Span, reason: Reason, deadline: float, in_handler: bool, dying: bool
    ) -> Reason | None:
        span_id = span.context.span_id
        stage = self._stage
        if (
            stage is not None
            and len(stage.priority) >= stage.priority_limit
            and not stage.wait_for_room(deadline - time.monotonic())
        ):
            return None
        if in_handler and not _lock_is_free(span):
            return self._export_held(span, span_id, reason) if dying else None
        if self._open.claim(span_id) is None:
            return None
        used = self._marked_reason(span_id, reason)
        endings = self._endings
        with span._lock:
            if not span.is_recording():
                return None  # the application's end() came first and delivers it
            claim = Claim(stamp(span, used, self._conversations.of_span), get_ident())
            endings[span_id] = claim
        # Whichever end() wins, its on_end takes the claim: consumed if it was this one.
        span.end()
        return used if claim.consumed else None

    def _marked_reason(self, span_id: int, reason: Reason) -> Reason:
        """The reason a signal or an unhandled exception recorded on the span, else ``reason``."""
        mark = self._endings.get(span_id) if self._endings else None
        return mark.reason if isinstance(mark, Mark) else reason

    def _export_held(self, span: Span, span_id: int, reason: Reason) -> Reason | None:
        """Dying, the span's lock held by the interrupted thread: export a stamped copy now."""
        if self._open.claim(span_id) is None:
            return None
        used = self._marked_reason(span_id, reason)
        self._endings[span_id] = EXPORTED
        conversation_id = self._conversations.of_span(span)
        now = time.time_ns()
        self._emit_priority(stamped(span, used, conversation_id, finalized=True, end_time=now))
        return used

    def _deliver_interrupted_endings(self) -> None:
        """Dying: export spans whose ``end()`` the signal interrupted before they were queued."""
        for span_id, span in self._open.spans.copy().items():
            if span.is_recording() or (self._stage is not None and _queued(self._stage, span_id)):
                continue
            if self._open.claim(span_id) is not None:
                self._endings[span_id] = EXPORTED
                self._emit_priority(span)

    def _expire(self, root_ids: list[int]) -> None:
        self._reclaim_forked()
        spans = finalization_order(self._open.spans, root_ids)
        self._finalize(spans, TIMEOUT, time.monotonic() + self._shutdown_timeout)

    def _snapshot_roots(self, deadline: float) -> None:
        for span_id in list(self._open.roots):
            root = self._open.spans.get(span_id)
            if root is None or span_id in self._snapshotted:
                continue
            if self._stage is not None and not self._stage.wait_for_room(
                deadline - time.monotonic()
            ):
                return
            self._snapshotted.add(span_id)
            marker = in_progress_marker(root, self._conversations.of_span(root), self._id_generator)
            self._emit_priority(marker)

    # Flush and shutdown.

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Check timeouts, apply ``on_flush``, write the journal, then flush the export path.

        Runs in the caller's thread; False if the journal or the export path did
        not finish within ``timeout_millis``.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        try:
            if self._watchdog is not None:
                self._watchdog.check()
            if self._on_flush == "snapshot":
                self._snapshot_roots(deadline)
            elif self._on_flush == "finalize":
                self._finalize_all(FLUSH, deadline)
        except Exception as error:  # noqa: BLE001
            self._internal_error("force_flush", error)
        journaled = self._journal is None or self._journal.flush(deadline - time.monotonic())
        return self._flush_export(deadline) and journaled

    def _flush_export(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if self._stage is not None:
            return self._stage.flush(remaining)
        if remaining <= 0:
            return False
        try:
            flushed = self._processor.force_flush(int(remaining * 1000))  # type: ignore[union-attr]
        except Exception as error:  # noqa: BLE001
            self._internal_error("delegate.force_flush", error)
            return False
        return flushed is not False

    def shutdown(self) -> None:
        """Finalize every open span, then flush and shut down the export path. Idempotent."""
        self._shut_down(self._exit_reason)

    def _shut_down(self, reason: Reason, *, in_handler: bool = False) -> None:
        """Finalize with ``reason``, close the journal, shut the export path down; once, in time."""
        if next(self._shutdown_calls):
            return
        deadline = time.monotonic() + self._shutdown_timeout
        self._accepting = False
        if self._watchdog is not None:
            self._watchdog.stop(wait=not in_handler)
        try:
            if in_handler:
                self._deliver_interrupted_endings()
            self._finalize_all(reason, deadline, in_handler=in_handler, dying=in_handler)
        except Exception as error:  # noqa: BLE001
            self._internal_error("shutdown", error)
        if self._journal is not None:
            self._journal.close(deadline - time.monotonic())
        if self._stage is not None:
            self._stage.shutdown(deadline - time.monotonic())
        elif not call_within(
            self._processor.shutdown,  # type: ignore[union-attr]
            deadline - time.monotonic(),
            "shutdown",
        ):
            _logger.warning(
                "otel_lifecycle: the span processor did not shut down within %ss",
                self._shutdown_timeout,
            )

    # The ``Lifecycle`` interface (``_core.active``): the process hooks and the metrics.

    def _open_span_count(self) -> int:
        return len(self._spans)

    def _drain_started(self) -> None:
        self._exit_reason = SIGTERM

    def _end_for_signal(self, reason: Reason, *, dying: bool) -> None:
        """In a signal handler: finalize what can be, export; shut down if the process dies."""
        if dying:
            self._shut_down(reason, in_handler=True)
            return
        deadline = time.monotonic() + self._shutdown_timeout
        try:
            self._finalize_all(reason, deadline, in_handler=True)
        except Exception as error:  # noqa: BLE001
            self._internal_error("signal", error)
        if self._stage is not None:
            self._stage.flush(deadline - time.monotonic())
        elif not call_within(lambda: self._flush_export(deadline), deadline, "flush"):
            _logger.warning("otel_lifecycle: the span processor did not flush in time")

    def _end_after_drain(self, reason: Reason) -> None:
        """After the drain window (a thread of its own): finalize what is still open, export."""
        deadline = time.monotonic() + self._shutdown_timeout
        self._finalize_all(reason, deadline)
        if not self._flush_export(deadline):
            _logger.warning("otel_lifecycle: spans finalized after the drain were not all exported")

    def _mark_open_spans(self, reason: Reason) -> None:
        """Record ``reason`` on every open span without ending it or taking any lock (SIGINT)."""
        for span_id in list(self._open.spans):
            self._endings.setdefault(span_id, Mark(reason))

    def _record_unhandled(
        self, reason: Reason, exception: BaseException, thread: int | None
    ) -> None:
        """Record an unhandled exception on the open local roots (of ``thread``, if given)."""
        for span_id, root in list(self._open.roots.items()):
            span = self._open.spans.get(span_id)
            if span is None or thread not in (None, root[1]):
                continue
            try:
                span.record_exception(exception, escaped=True)
            except Exception as error:  # noqa: BLE001 - an exit hook must never raise
                self._internal_error("record_unhandled", error)
            self._endings.setdefault(span_id, Mark(reason))

    def _before_fork(self) -> None:
        span_ids = tuple(self._open.spans)
        self._forking = ForkRecord.of(span_ids) if span_ids else None

    def _after_fork_in_parent(self) -> None:
        if self._forking is not None:
            self._forks.append(self._forking)
            self._forking = None

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's open spans are the parent's, unless ended here."""
        inherited = {
            span_id: ending
            for span_id, ending in self._endings.items()
            if isinstance(ending, Inherited)
        }
        if self._forking is not None:
            inherited.update(self._forking.inherited())
        self._endings = dict(inherited)
        self._forking = None
        self._forks = []
        self._open.spans.clear()
        self._open.roots.clear()
        self._snapshotted = set()
        self._dropped_by_trace = {}
        self._counters = Counters()
        if self._watchdog is not None and self._accepting:
            self._start_watchdog()

    def _reclaim_forked(self) -> None:
        """Forget the spans that a forked child ended: they were exported there."""
        if not self._forks:
            return
        for record in self._forks:
            for span_id in record.ended_in_child():
                self._open.claim(span_id)
        self._forks = [
            record
            for record in self._forks
            if any(span_id in self._open.spans for span_id in record.span_ids)
        ]

    # Introspection.

    def stats(self) -> LifecycleStats:
        """An immutable snapshot of the open spans and of the counters."""
        self._reclaim_forked()
        open_traces, open_spans = self._open.counts()
        return self._counters.snapshot(open_traces, open_spans)

    def _export_recovered(self, span: ReadableSpan) -> None:
        """The journal's recovered roots take the priority lane."""
        self._emit_priority(span)

    def _internal_error(self, where: str, error: Exception) -> None:
        self._counters.add("internal_errors")
        if self._strict:
            raise error
        if where not in self._logged_errors:
            self._logged_errors.add(where)
            _logger.error(
                "otel_lifecycle: internal error in %s (logged once)", where, exc_info=error
            )


def _lock_is_free(span: Span) -> bool:
    """Whether nobody holds the span's own lock now (pinned by a test against the SDK)."""
    lock = span._lock
    if not lock.acquire(blocking=False):
        return False
    lock.release()
    return True


def _queued(stage: ExportStage, span_id: int) -> bool:
    return any(
        queued.context.span_id == span_id
        for lane in (stage.priority, stage.normal)
        for queued in list(lane)
    )


def processors() -> list[LifecycleSpanProcessor]:
    """The ``LifecycleSpanProcessor`` instances of this process, in no particular order.

    Every processor created here and not garbage-collected yet, shut down or
    not, including one that ``opentelemetry-instrument`` or ``configure()``
    created; a forked child lists the ones it inherited.
    """
    return [processor for processor in live() if isinstance(processor, LifecycleSpanProcessor)]
