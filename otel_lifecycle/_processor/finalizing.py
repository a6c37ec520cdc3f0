"""Finalizing: end open spans with a reason, exactly once, children first, within a deadline.

A finalizer claims a span (pops it from the open spans), stamps the live span
under its own lock, records a :class:`Claim` and calls the public ``end()``.
Whichever ``end()`` wins the race, the span's ``on_end`` takes the claim
(:meth:`Finalizer.apply`): the finalizer's own call exports the stamped span; the
application's exports it as the application ended it, the stamp undone.

In a signal handler, no lock the interrupted thread could hold is waited for: a
span whose own lock is held is skipped or, when the process is dying, exported
now as a stamped copy.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from threading import get_ident

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import StatusCode

from otel_lifecycle._core.conversation import ConversationIds
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.endings import EXPORTED, Claim, Ending, Inherited, Mark
from otel_lifecycle._core.export import ExportPath
from otel_lifecycle._core.finalize import Reason, kept, stamp, stamped, undone
from otel_lifecycle._core.forks import Forks
from otel_lifecycle._core.open_spans import OpenSpans, finalization_order
from otel_lifecycle._core.span_context import SPAN_ID
from otel_lifecycle._core.stats import Counters
from otel_lifecycle._core.summary import log_finalized


class Finalizer:
    """The open spans' endings that do not come from the application: finalized, marked."""

    def __init__(
        self,
        open_spans: OpenSpans,
        *,
        conversations: ConversationIds,
        path: ExportPath,
        emit_priority: Callable[[ReadableSpan], None],
        counters: Counters,
        internal_error: Callable[[str, Exception], None],
    ) -> None:
        self.open = open_spans
        self.endings: dict[int, Ending] = {}
        """The spans with a pending ending, by span id; looked at in ``on_end`` when not empty."""
        self.forks = Forks()
        self._conversations = conversations
        self._path = path
        self._emit_priority = emit_priority
        self._counters = counters
        self._internal_error = internal_error

    def apply(self, ending: Ending, span: ReadableSpan) -> tuple[ReadableSpan, bool] | None:
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

    def finalize_all(
        self, reason: Reason, deadline: Deadline, *, in_handler: bool = False, dying: bool = False
    ) -> int:
        """End every open span with ``reason``; the count this call ended.

        ``in_handler``: running in a signal handler, in the thread it interrupted;
        a span whose lock is held (by that thread) is skipped, or, if the process
        is ``dying``, exported now as a stamped copy.
        """
        if in_handler:
            self._path.enter_handler()
        self.forks.reclaim(self.open)
        spans = finalization_order(self.open.spans)
        return self._finalize(spans, reason, deadline, in_handler, dying)

    def expire(self, root_ids: list[int], reason: Reason, deadline: Deadline) -> int:
        """End the open roots ``root_ids`` and their open descendants with ``reason``."""
        self.forks.reclaim(self.open)
        spans = finalization_order(self.open.spans, root_ids)
        return self._finalize(spans, reason, deadline, False, False)

    def _finalize(
        self,
        spans: Iterable[Span],
        reason: Reason,
        deadline: Deadline,
        in_handler: bool,
        dying: bool,
    ) -> int:
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
        self, span: Span, reason: Reason, deadline: Deadline, in_handler: bool, dying: bool
    ) -> Reason | None:
        span_id = span._context[SPAN_ID]  # type: ignore[index]
        if not self._path.wait_for_room(deadline):
            return None
        if in_handler and not _lock_is_free(span):
            return self._export_held(span, span_id, reason) if dying else None
        if self.open.claim(span_id) is None:
            return None
        used = self._marked_reason(span_id, reason)
        endings = self.endings
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
        mark = self.endings.get(span_id) if self.endings else None
        return mark.reason if isinstance(mark, Mark) else reason

    def _export_held(self, span: Span, span_id: int, reason: Reason) -> Reason | None:
        """Dying, the span's lock held by the interrupted thread: export a stamped copy now."""
        if self.open.claim(span_id) is None:
            return None
        used = self._marked_reason(span_id, reason)
        self.endings[span_id] = EXPORTED
        conversation_id = self._conversations.of_span(span)
        self._emit_priority(
            stamped(span, used, conversation_id, finalized=True, end_time=time.time_ns())
        )
        return used

    def deliver_interrupted_endings(self) -> None:
        """Dying: export spans whose ``end()`` the signal interrupted before they were queued."""
        self._path.enter_handler()
        for span_id, span in self.open.spans.copy().items():
            if span.is_recording() or self._path.queued(span_id):
                continue
            if self.open.claim(span_id) is not None:
                self.endings[span_id] = EXPORTED
                self._emit_priority(span)

    def mark_open_spans(self, reason: Reason) -> None:
        """Record ``reason`` on every open span without ending it or taking any lock (SIGINT)."""
        for span_id in list(self.open.spans):
            self.endings.setdefault(span_id, Mark(reason))

    def record_unhandled(
        self, reason: Reason, exception: BaseException, thread: int | None
    ) -> None:
        """Record an unhandled exception on the open local roots (of ``thread``, if given)."""
        for span_id, root in list(self.open.roots.items()):
            span = self.open.spans.get(span_id)
            if span is None or thread not in (None, root[1]):
                continue
            try:
                span.record_exception(exception, escaped=True)
            except Exception as error:  # noqa: BLE001 - an exit hook must never raise
                self._internal_error("record_unhandled", error)
            self.endings.setdefault(span_id, Mark(reason))

    def after_fork_in_child(self) -> None:
        """In a forked child: only the parent's spans inherited at forks are pending."""
        inherited = {
            span_id: ending
            for span_id, ending in self.endings.items()
            if isinstance(ending, Inherited)
        }
        inherited.update(self.forks.after_fork_in_child())
        self.endings.clear()
        self.endings.update(inherited)


def _lock_is_free(span: Span) -> bool:
    """Whether nobody holds the span's own lock now (pinned by a test against the SDK)."""
    lock = span._lock
    if not lock.acquire(blocking=False):
        return False
    lock.release()
    return True
