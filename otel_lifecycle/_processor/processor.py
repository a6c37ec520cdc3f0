"""``LifecycleSpanProcessor``: tracks open spans and finalizes them exactly once, with a reason.

1. ``on_start``: the conversation id; a local root's start, thread and
   watchdog; the journal record; then, last, one dict set (``_core.open_spans``).
2. ``on_end``: a span with a pending ending (``_core.endings``) is settled first
   (``finalizing``); then one dict pop, which makes this call the span's
   exporter; then local roots, finalized spans and markers go to the export
   path's priority lane, other spans to its normal lane (``_core.export``).
3. Shutdown, timeouts, flush and signals hand the open spans to the
   ``finalizing`` module, within a deadline on the processor's clock.

No lock is taken on the hot path.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from threading import get_ident

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import SpanContext

from otel_lifecycle._core.conversation import Resolver, for_settings
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.delegate import DelegatePath
from otel_lifecycle._core.dropped import DroppedDescendants
from otel_lifecycle._core.errors import InternalErrors
from otel_lifecycle._core.export import ExportPath, ExportStage
from otel_lifecycle._core.finalize import (
    FLUSH,
    SHUTDOWN,
    SIGTERM,
    TIMEOUT,
    Reason,
    reason_named,
)
from otel_lifecycle._core.losses import Losses
from otel_lifecycle._core.markers import Markers
from otel_lifecycle._core.open_spans import OpenSpans
from otel_lifecycle._core.span_context import IS_REMOTE, SPAN_ID, TRACE_ID
from otel_lifecycle._core.stats import Counters, LifecycleStats
from otel_lifecycle._core.watchdog import RootWatchdog
from otel_lifecycle._journal.writer import Journal
from otel_lifecycle._process.hooks import ending, register
from otel_lifecycle._processor.finalizing import Finalizer
from otel_lifecycle._settings.checks import check_callables
from otel_lifecycle._settings.environment import Fallback, OnFlush
from otel_lifecycle._settings.processor import processor_settings

_logger = logging.getLogger(__name__)

Delegate = SpanExporter | SpanProcessor


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
        conversation_ids: bool | None = None,
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
        if not isinstance(delegate, (SpanExporter, SpanProcessor)):
            raise TypeError(
                f"delegate must be a SpanExporter or a SpanProcessor, got {type(delegate).__name__}"
            )
        check_callables(conversation_id_resolver=conversation_id_resolver, clock=clock)
        settings = processor_settings(
            {
                "root_timeout": root_timeout,
                "on_flush": on_flush,
                "conversation_ids": conversation_ids,
                "conversation_id_keys": conversation_id_keys,
                "conversation_id_fallback": conversation_id_fallback,
                "max_tracked_spans": max_tracked_spans,
                "shutdown_timeout": shutdown_timeout,
                "journal": journal,
                "handle_signals": handle_signals,
                "drain_timeout": drain_timeout,
            }
        )
        self._root_timeout = settings.root_timeout
        self._on_flush = settings.on_flush
        self._conversations = for_settings(settings, conversation_id_resolver)
        self._shutdown_timeout = settings.shutdown_timeout
        self._handles_signals = settings.handle_signals
        self._drain_timeout = (
            None if settings.sources["drain_timeout"] == "default" else settings.drain_timeout
        )
        """The drain window after SIGTERM, if set; else the server's, else the default."""
        self._exit_reason = SHUTDOWN
        """The reason spans still open at shutdown get: ``SIGTERM`` once one arrived."""
        self._clock = clock or time.monotonic
        self._delegate = delegate
        self._counters = Counters()
        self._internal_error = InternalErrors(self._counters, strict=settings.strict)
        self._losses = Losses(self._counters)
        self._processor: SpanProcessor | None = None
        """A delegate span processor: also gets ``on_start`` and ``_on_ending``."""
        self._delegate_on_ending: Callable[[Span], None] | None = None
        self._path: ExportPath
        if isinstance(delegate, SpanExporter):
            self._path = ExportStage(delegate, lost=self._losses.lost)
        else:
            self._processor = delegate
            self._delegate_on_ending = getattr(delegate, "_on_ending", None)
            self._path = DelegatePath(delegate)
        self._open = OpenSpans()
        self._spans = self._open.spans
        """The open spans, read on the hot path (the same dict for the processor's life)."""
        self._max_spans = settings.max_tracked_spans
        self._markers = Markers()
        self._refused = DroppedDescendants()
        self._finalizer = Finalizer(
            self._open,
            conversations=self._conversations,
            path=self._path,
            emit_priority=self._emit_priority,
            on_end=self.on_end,
            counters=self._counters,
            internal_error=self._internal_error,
        )
        self._endings = self._finalizer.endings
        """Spans with a pending ending, read on the hot path (the same dict for life)."""
        self._shutdown_calls = itertools.count()
        self._accepting = True
        self._watchdog: RootWatchdog | None = None
        self._start_watchdog()
        self._journal: Journal | None = None
        if settings.journal is not None:
            self._journal = Journal(
                settings.journal,
                self._emit_priority,
                self._conversations.of_span,
                stopped=lambda: self._counters.add("journal_stopped"),
            )
            self._path.exported = self._journal.exported
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
        """Give ``span`` its conversation id, then track it. Never raises.

        Tracked last: a finalizer never finds it without its id or its root entry.
        """
        try:
            if self._accepting:
                context: SpanContext = span._context  # type: ignore[assignment]
                try:
                    self._conversations.on_start(span, context[TRACE_ID], parent_context)
                finally:  # a resolver that raised leaves the span tracked all the same
                    spans = self._spans
                    if len(spans) < self._max_spans:
                        span_id = context[SPAN_ID]
                        parent = span._parent
                        if parent is None or parent[IS_REMOTE]:
                            self._root_started(span_id)
                        if self._journal is not None:
                            self._journal.opened(span)
                        spans[span_id] = span
                    else:
                        self._counters.add("untracked")
            else:
                self._losses.lost("started_after_shutdown", (span,))
        except Exception as error:  # noqa: BLE001 - a hook must never raise into the application
            self._internal_error("on_start", error)
        if self._processor is not None:
            try:
                self._processor.on_start(span, parent_context)
            except Exception as error:  # noqa: BLE001
                self._internal_error("delegate.on_start", error)

    def _root_started(self, span_id: int) -> None:
        self._open.roots[span_id] = (self._clock(), get_ident())
        if self._watchdog is not None:
            self._watchdog.on_root_started()

    def _on_ending(self, span: Span) -> None:
        """Stamp a span its finalizer is ending; forward to a delegate that has this hook."""
        if self._endings:
            self._finalizer.on_ending(span)
        if self._delegate_on_ending is not None:
            try:
                self._delegate_on_ending(span)
            except Exception as error:  # noqa: BLE001
                self._internal_error("delegate._on_ending", error)

    def on_end(self, span: ReadableSpan) -> None:
        """Stop tracking ``span``, then hand it to the export path. Never raises."""
        try:
            context: SpanContext = span._context  # type: ignore[assignment]
            span_id = context[SPAN_ID]
            priority = False
            if self._endings:
                ending = self._endings.pop(span_id, None)
                if ending is not None:
                    applied = self._finalizer.apply(ending, span)
                    if applied is None:
                        return
                    span, priority = applied
            parent = span._parent
            if parent is None or parent[IS_REMOTE]:
                priority = True
                self._open.roots.pop(span_id, None)
                if self._markers.sent:
                    self._markers.sent.pop(span_id, None)
                if self._refused.by_trace:
                    span = self._refused.reported_on(span, context[TRACE_ID])
            if self._spans.pop(span_id, None) is None and (  # forgotten, then handed over
                self._endings and self._finalizer.taken(span_id)
            ):
                return  # a dying signal handler took it first, and exports it
            if priority:
                self._emit_priority(span)
            elif not self._path.emit(span):
                self._dropped(span, context[TRACE_ID])
        except Exception as error:  # noqa: BLE001
            self._internal_error("on_end", error)

    def _emit_priority(self, span: ReadableSpan) -> None:
        """Queue a local root, finalized span or marker; count it if the lane refuses it."""
        path = self._path
        if not path.emit_priority(span):
            self._losses.refused(span, closed=path.closed, priority=True)

    def _dropped(self, span: ReadableSpan, trace_id: int) -> None:
        """An ordinary span was refused by the full queue: count it, and tell its root later."""
        self._losses.refused(span, closed=self._path.closed, priority=False)
        if not self._path.closed:
            self._refused.add(trace_id)

    # Finalizing.

    def finalize_open_spans(self, reason: str) -> int:
        """Finalize every open span now with ``reason``; return how many this call ended."""
        return self._finalizer.finalize_all(reason_named(reason), self._deadline())

    def _deadline(self) -> Deadline:
        """The budget of a shutdown, a signal or a finalization: ``shutdown_timeout`` from now."""
        return Deadline(self._clock, self._shutdown_timeout)

    def _expire(self, root_ids: list[int]) -> None:
        self._finalizer.expire(root_ids, TIMEOUT, self._deadline())

    # Flush and shutdown.

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Check timeouts, apply ``on_flush``, flush the export path, then write the journal.

        Runs in the caller's thread; False if the journal or the export path did
        not finish within ``timeout_millis``.
        """
        deadline = Deadline(self._clock, timeout_millis / 1000)
        try:
            if self._watchdog is not None:
                self._watchdog.check()
            if self._on_flush == "snapshot":
                self._markers.snapshot(
                    self._open, self._conversations, self._path, self._emit_priority, deadline
                )
            elif self._on_flush == "finalize":
                self._finalizer.finalize_all(FLUSH, deadline)
        except Exception as error:  # noqa: BLE001
            self._internal_error("force_flush", error)
        exported = self._flush_export(deadline)  # first: the journal then lets their rows go
        return (self._journal is None or self._journal.flush(deadline.remaining())) and exported

    def _flush_export(self, deadline: Deadline) -> bool:
        try:
            return self._path.flush(deadline.remaining())
        except Exception as error:  # noqa: BLE001 - a delegate's failure must not reach the caller
            self._internal_error("delegate.force_flush", error)
            return False

    def shutdown(self) -> None:
        """Finalize every open span, then flush and shut down the export path. Idempotent."""
        with ending():  # a signal meanwhile waits for it
            self._shut_down(self._exit_reason)

    def _shut_down(self, reason: Reason, *, in_handler: bool = False) -> None:
        """Finalize with ``reason``, shut the export path down, close the journal; once, in time."""
        if next(self._shutdown_calls):
            return
        deadline = self._deadline()
        self._accepting = False
        if self._watchdog is not None:
            self._watchdog.stop(wait=not in_handler)
        try:
            self._finalizer.finalize_last(reason, deadline, in_handler=in_handler)
        except Exception as error:  # noqa: BLE001
            self._internal_error("shutdown", error)
        if self._journal is not None:  # crashed roots it is recovering leave with ours
            self._journal.finish_recovery(deadline.remaining())
        if not self._path.shutdown(deadline.remaining()):
            _logger.warning(
                "otel_lifecycle: the export path did not shut down within %ss",
                self._shutdown_timeout,
            )
        if self._journal is not None:  # after the export: a journal locked elsewhere gets the rest
            self._journal.close(deadline.remaining())

    # The ``Lifecycle`` interface (``_core.active``): the process hooks and the metrics.

    def _open_span_count(self) -> int:
        return len(self._spans)

    def _drain_started(self) -> None:
        self._exit_reason = SIGTERM

    def _die_of_signal(self, reason: Reason) -> None:
        self._shut_down(reason, in_handler=True)

    def _end_for_signal(self, reason: Reason) -> None:
        self._finalize_and_export(reason, in_handler=True)

    def _end_after_drain(self, reason: Reason) -> None:
        self._finalize_and_export(reason, in_handler=False)

    def _finalize_and_export(self, reason: Reason, *, in_handler: bool) -> None:
        """Finalize what is open (in a handler: what the interrupted thread does not hold)."""
        deadline = self._deadline()
        try:
            self._finalizer.finalize_all(reason, deadline, in_handler=in_handler)
        except Exception as error:  # noqa: BLE001
            self._internal_error("signal", error)
        if self._accepting and not self._flush_export(deadline):  # else the shutdown exports
            _logger.warning(
                "otel_lifecycle: spans finalized (%s) were not all exported", reason.error_type
            )

    def _mark_open_spans(self, reason: Reason) -> None:
        self._finalizer.mark_open_spans(reason)

    def _record_unhandled(
        self, reason: Reason, exception: BaseException, thread: int | None
    ) -> None:
        self._finalizer.record_unhandled(reason, exception, thread)

    def _before_fork(self) -> None:
        self._finalizer.forks.before_fork(self._open)

    def _after_fork_in_parent(self) -> None:
        self._finalizer.forks.after_fork_in_parent()

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's open spans are the parent's, unless ended here."""
        self._finalizer.after_fork_in_child()
        self._open.clear()
        self._markers.sent.clear()
        self._refused.by_trace.clear()
        self._counters.reset_after_fork()
        if self._watchdog is not None and self._accepting:
            self._start_watchdog()

    def stats(self) -> LifecycleStats:
        """An immutable snapshot of the open spans and of the counters."""
        self._finalizer.forks.reclaim(self._open)
        open_traces, open_spans = self._open.counts()
        return self._counters.snapshot(open_traces, open_spans)
