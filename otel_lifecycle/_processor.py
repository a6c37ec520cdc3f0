"""``LifecycleSpanProcessor``: tracks open spans and finalizes them exactly once."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from typing import Callable, Union

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Status, StatusCode

from otel_lifecycle._bounded import call_within
from otel_lifecycle._conversation import (
    ConversationResolver,
    Resolver,
    from_mapping,
    live_attributes,
)
from otel_lifecycle._exits import register
from otel_lifecycle._finalize import FLUSH, SHUTDOWN, TIMEOUT, Reason, finalize_span, reason_named
from otel_lifecycle._journal import Journal
from otel_lifecycle._semconv import CONVERSATION_ID, ERROR_TYPE
from otel_lifecycle._settings import (
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
from otel_lifecycle._snapshot import in_progress_marker
from otel_lifecycle._stats import Counters, LifecycleStats
from otel_lifecycle._tracking import OpenSpans, TraceState, finalization_order
from otel_lifecycle._watchdog import Expired, RootWatchdog

_logger = logging.getLogger(__name__)

Delegate = Union[SpanExporter, SpanProcessor]


class LifecycleSpanProcessor(SpanProcessor):
    """Track open spans per trace; finalize the ones left open, exactly once, with a reason.

    ``delegate`` receives every ended span: a ``SpanExporter`` is wrapped in the
    SDK's ``BatchSpanProcessor`` (configured by the ``OTEL_BSP_*`` variables); a
    ``SpanProcessor`` is used as it is. A keyword left as None comes from its
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
        timeout = (
            settings.root_timeout
            if root_timeout is None
            else check_seconds("root_timeout", root_timeout, allow_zero=True) or None
        )
        self._on_flush = (
            settings.on_flush
            if on_flush is None
            else check_choice("on_flush", on_flush, ON_FLUSH_VALUES)
        )
        self._conversations = ConversationResolver(
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
        self._max_tracked_spans = (
            settings.max_tracked_spans
            if max_tracked_spans is None
            else check_positive_int("max_tracked_spans", max_tracked_spans)
        )
        self._handles_signals = (
            settings.handle_signals
            if handle_signals is None
            else check_bool("handle_signals", handle_signals)
        )
        journal_path = settings.journal if journal is None else check_path("journal", journal)
        self._delegate: SpanProcessor = (
            BatchSpanProcessor(delegate) if isinstance(delegate, SpanExporter) else delegate
        )
        self._open = OpenSpans(self._max_tracked_spans)
        self._root_threads: dict[int, int] = {}
        """The thread that started each open local root, by span id."""
        self._exit_reasons: dict[int, Reason] = {}
        """Reasons recorded on open spans by a signal or an unhandled exception, by span id."""
        self._strict = settings.strict
        self._clock = clock or time.monotonic
        self._counters = Counters()
        self._id_generator = RandomIdGenerator()
        self._logged_errors: set[str] = set()
        self._shutdown_lock = threading.Lock()
        self._is_shut_down = False
        self._queue = _owned_queue(self._delegate) if isinstance(delegate, SpanExporter) else None
        self._root_timeout = timeout
        self._watchdog: RootWatchdog | None = None
        self._start_watchdog()
        self._journal: Journal | None = None
        if journal_path is not None:
            self._journal = Journal(journal_path, self._delegate.on_end, self._conversation_of)
            self._journal.start()
        register(self)

    def _start_watchdog(self) -> None:
        if self._root_timeout is not None:
            self._watchdog = RootWatchdog(self._root_timeout, self._clock, self._open, self._expire)
            self._watchdog.start()

    @property
    def delegate(self) -> SpanProcessor:
        """The span processor that receives every ended span."""
        return self._delegate

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Track ``span`` and give it its conversation id. Never raises."""
        try:
            self._track(span, parent_context)
        except Exception as error:  # noqa: BLE001 - a hook must never raise into the application
            self._internal_error("on_start", error)
        try:
            self._delegate.on_start(span, parent_context)
        except Exception as error:  # noqa: BLE001
            self._internal_error("delegate.on_start", error)

    def on_end(self, span: ReadableSpan) -> None:
        """Stop tracking ``span`` and hand it to the delegate. Never raises."""
        try:
            context = span.context
            if context is not None:
                self._open.remove(context.trace_id, context.span_id)
                if self._exit_reasons:
                    self._exit_reasons.pop(context.span_id, None)
                parent = span.parent
                if parent is None or parent.is_remote:
                    self._root_threads.pop(context.span_id, None)
                    if self._journal is not None:
                        self._journal.closed(context.trace_id, context.span_id)
            queue = self._queue
            if queue is not None and len(queue) >= (queue.maxlen or 0):
                self._counters.add("dropped_overflow")
        except Exception as error:  # noqa: BLE001
            self._internal_error("on_end", error)
        try:
            self._delegate.on_end(span)
        except Exception as error:  # noqa: BLE001
            self._internal_error("delegate.on_end", error)

    def _track(self, span: Span, parent_context: Context | None) -> None:
        if not span.is_recording():
            return
        parent = span.parent
        is_local_root = parent is None or parent.is_remote
        state = self._open.add(span, self._clock() if is_local_root else None)
        if state is None:
            self._counters.add("untracked")
        elif is_local_root:
            self._root_threads[span.context.span_id] = threading.get_ident()
            if self._watchdog is not None:
                self._watchdog.on_root_started()
        if is_local_root and self._journal is not None:
            self._journal.opened(span, state)
        attributes = live_attributes(span)
        found = (
            from_mapping(attributes, self._conversations.keys)
            or (state.conversation_id if state is not None else None)
            or self._conversations.from_context(span, parent_context)
        )
        if found is None:
            return
        if state is not None and state.conversation_id is None:
            state.conversation_id = found
        if CONVERSATION_ID not in attributes:
            span.set_attribute(CONVERSATION_ID, found)

    def finalize_open_spans(self, reason: str) -> int:
        """Finalize every open span now with ``reason``; return how many this call ended."""
        return self._finalize_all(reason_named(reason))

    def _finalize_all(self, reason: Reason) -> int:
        return sum(
            self._finalize_trace(state, finalization_order(state), reason)
            for state in self._open.traces()
        )

    def _finalize_trace(self, state: TraceState, spans: list[Span], reason: Reason) -> int:
        ended: Counter[str] = Counter()
        for span in spans:
            try:
                span_reason = self._exit_reasons.get(span.context.span_id, reason)
                if finalize_span(
                    span, span_reason, self._conversation_of(span, state), time.time_ns()
                ):
                    ended[span_reason.error_type] += 1
            except Exception as error:  # noqa: BLE001 - one bad span must not stop the others
                self._internal_error("finalize", error)
        for error_type, count in ended.items():
            self._counters.finalized(error_type, count)
        return sum(ended.values())

    def _conversation_of(self, span: Span, state: TraceState | None) -> str | None:
        """The conversation id of a live span: its own attributes, else its trace's."""
        found = from_mapping(live_attributes(span), self._conversations.keys)
        return found or (state.conversation_id if state is not None else None)

    def _expire(self, expired: Expired) -> None:
        for state, root_ids in expired:
            self._finalize_trace(state, finalization_order(state, root_ids), TIMEOUT)

    def _snapshot_roots(self) -> None:
        for state in self._open.traces():
            with state.lock:
                pending = [
                    state.spans[span_id]
                    for span_id in state.roots
                    if span_id not in state.snapshotted and span_id in state.spans
                ]
                state.snapshotted.update(span.context.span_id for span in pending)
            for root in pending:
                marker = in_progress_marker(
                    root, self._conversation_of(root, state), self._id_generator
                )
                self._delegate.on_end(marker)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Check timeouts, apply ``on_flush``, write the journal, then flush the delegate in time.

        False if the journal or the delegate did not finish within ``timeout_millis``.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        try:
            if self._watchdog is not None:
                self._watchdog.check()
            if self._on_flush == "snapshot":
                self._snapshot_roots()
            elif self._on_flush == "finalize":
                self._finalize_all(FLUSH)
        except Exception as error:  # noqa: BLE001
            self._internal_error("force_flush", error)
        journaled = self._journal is None or self._journal.flush(deadline - time.monotonic())
        remaining = deadline - time.monotonic()
        return journaled and call_within(
            lambda: self._delegate.force_flush(max(int(remaining * 1000), 0)),
            remaining,
            "force_flush",
        )

    def shutdown(self) -> None:
        """Finalize every open span, then flush and shut down the delegate. Idempotent."""
        self._end_for_exit(SHUTDOWN, shutdown=True)

    def _end_for_exit(self, reason: Reason, *, shutdown: bool) -> None:
        """Finalize every open span with ``reason``, then shut down (once) or flush, in time."""
        if not shutdown:
            try:
                self._finalize_all(reason)
            except Exception as error:  # noqa: BLE001
                self._internal_error("finalize_all", error)
            self.force_flush(int(self._shutdown_timeout * 1000))
            return
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        deadline = time.monotonic() + self._shutdown_timeout
        if self._watchdog is not None:
            self._watchdog.stop()
        try:
            self._finalize_all(reason)
        except Exception as error:  # noqa: BLE001
            self._internal_error("shutdown", error)
        if self._journal is not None:
            self._journal.close(deadline - time.monotonic())
        if not call_within(self._delegate.shutdown, deadline - time.monotonic(), "shutdown"):
            _logger.warning(
                "otel_lifecycle: the exporter did not shut down within %ss", self._shutdown_timeout
            )

    def _mark_open_spans(self, reason: Reason) -> None:
        """Record ``reason`` on every open span without ending it (SIGINT)."""
        for state in self._open.traces():
            for span in list(state.spans.values()):
                self._mark(span, reason, None)

    def _record_unhandled(
        self, reason: Reason, exception: BaseException, thread: int | None
    ) -> None:
        """Record an unhandled exception on the open local roots (of ``thread``, if given)."""
        for state in self._open.traces():
            for span_id in list(state.roots):
                span = state.spans.get(span_id)
                if span is not None and thread in (None, self._root_threads.get(span_id)):
                    self._mark(span, reason, exception)

    def _mark(self, span: Span, reason: Reason, exception: BaseException | None) -> None:
        """Give a live span an ERROR status and ``reason``, kept if it is finalized later."""
        try:
            if not span.is_recording():
                return
            if exception is not None:
                span.record_exception(exception, escaped=True)
            kept = self._exit_reasons.setdefault(span.context.span_id, reason)
            span.set_attribute(ERROR_TYPE, kept.error_type)
            span.set_status(Status(StatusCode.ERROR, kept.description))
        except Exception as error:  # noqa: BLE001 - an exit hook must never raise
            self._internal_error("mark", error)

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's open spans stay the parent's; restart the thread."""
        self._open = OpenSpans(self._max_tracked_spans)
        self._root_threads = {}
        self._exit_reasons = {}
        self._counters = Counters()
        self._shutdown_lock = threading.Lock()
        if self._watchdog is not None and not self._is_shut_down:
            self._start_watchdog()

    def stats(self) -> LifecycleStats:
        """An immutable snapshot of the open spans and of the counters."""
        open_traces, open_spans = self._open.counts()
        return self._counters.snapshot(open_traces, open_spans)

    def _internal_error(self, where: str, error: Exception) -> None:
        self._counters.add("internal_errors")
        if self._strict:
            raise error
        if where not in self._logged_errors:
            self._logged_errors.add(where)
            _logger.error(
                "otel_lifecycle: internal error in %s (logged once)", where, exc_info=error
            )


def _owned_queue(processor: SpanProcessor) -> deque[object] | None:
    """The queue of a ``BatchSpanProcessor`` we created, to count overflow drops."""
    queue = getattr(getattr(processor, "_batch_processor", None), "_queue", None)
    return queue if isinstance(queue, deque) and queue.maxlen else None
