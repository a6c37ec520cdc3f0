"""Finalizing: end open spans with a reason, exactly once, children first, within a deadline.

A finalizer claims a span (pops it from the open spans), records a
:class:`Claim` under the span's own lock while it is open, and calls the public
``end()``. Nothing shows on the live span before that ``end()`` wins the race
with the application's: then, in ``_on_ending`` (:meth:`Finalizer.on_ending`),
the span is stamped, so every processor's ``on_end`` sees it finalized.
Whichever ``end()`` wins, the span's ``on_end`` takes the claim
(:meth:`Finalizer.apply`): the application's is exported as the application
ended it, keeping the mark a signal or an unhandled exception left.

A shutdown stops the finalizations of other threads at their next span and
waits for them (:meth:`Finalizer.finalize_last`) before its export path
closes: a span one of them claimed reaches the exporter.

In a signal handler, no lock the interrupted thread could hold is waited for: a
span whose own lock is held is skipped or, when the process is dying, exported
now as a stamped copy. A dying handler also exports the spans whose ``end()``
it interrupted; a span another thread is ending is exported by that thread or
by the handler, never both (:meth:`Finalizer._take`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from threading import get_ident
from types import CodeType, FrameType

from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import StatusCode

from otel_lifecycle._core.conversation import ConversationIds
from otel_lifecycle._core.deadline import Deadline
from otel_lifecycle._core.endings import EXPORTED, Claim, Ending, Inherited, Mark
from otel_lifecycle._core.export import ExportPath
from otel_lifecycle._core.finalize import Reason, stamp, stamped
from otel_lifecycle._core.forks import Forks
from otel_lifecycle._core.interrupted import attribute_being_set, lock_is_free
from otel_lifecycle._core.open_spans import OpenSpans, finalization_order
from otel_lifecycle._core.span_context import SPAN_ID
from otel_lifecycle._core.stats import Counters
from otel_lifecycle._core.summary import log_finalized

_logger = logging.getLogger(__name__)


class Finalizer:
    """The open spans' endings that do not come from the application: finalized, marked."""

    def __init__(
        self,
        open_spans: OpenSpans,
        *,
        conversations: ConversationIds,
        path: ExportPath,
        emit_priority: Callable[[ReadableSpan], None],
        on_end: Callable[[ReadableSpan], None],
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
        self._on_end_code: CodeType = on_end.__func__.__code__  # type: ignore[attr-defined]
        self._owner: object = on_end.__self__  # type: ignore[attr-defined]
        """The processor's ``on_end``: a dying handler finds the one it interrupted by it."""
        self._counters = counters
        self._internal_error = internal_error
        self._runs: set[_Run] = set()
        """The finalizations under way, in any thread."""
        self._closer: int | None = None
        """The thread shutting the processor down, once one does."""

    def on_ending(self, span: Span) -> None:
        """``span`` just ended, frozen, before any ``on_end``: stamp it if its finalizer ended it.

        Called by the SDK in the thread whose ``end()`` won: the claim's own
        thread means the finalizer's ``end()``. Never raises.
        """
        try:
            claim = self.endings.get(span._context[SPAN_ID])  # type: ignore[index]
            if isinstance(claim, Claim) and claim.thread == get_ident():
                stamp(span, claim.reason, self._conversations.of_span)
                claim.stamped = True
        except Exception as error:  # noqa: BLE001 - a hook must never raise into the application
            self._internal_error("_on_ending", error)

    def apply(self, ending: Ending, span: ReadableSpan) -> tuple[ReadableSpan, bool] | None:
        """The span to export for a span with a pending ending, and whether it is a priority."""
        if isinstance(ending, Claim):
            if ending.thread != get_ident():  # the application's end() won: the span is its own
                return (span, False) if ending.mark is None else self._marked(ending.mark, span)
            ending.consumed = True
            if ending.stamped:
                return span, True
            conversation_id = self._conversations.of_trace(span.context.trace_id)
            return stamped(span, ending.reason, conversation_id, finalized=True), True
        if ending is EXPORTED:
            return None  # claimed (no longer open) and exported already
        if isinstance(ending, Inherited):
            ending.ended_here()
            return span, False
        assert isinstance(ending, Mark)
        return self._marked(ending, span)

    def _marked(self, mark: Mark, span: ReadableSpan) -> tuple[ReadableSpan, bool]:
        """A span the application ended after ``mark``: its reason, unless it set a status."""
        if span.status.status_code is not StatusCode.UNSET:
            return span, False
        conversation_id = self._conversations.of_trace(span.context.trace_id)
        return stamped(span, mark.reason, conversation_id, finalized=False), True

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

    def finalize_last(self, reason: Reason, deadline: Deadline, *, in_handler: bool) -> None:
        """Shutting down: end every open span with ``reason`` before the export path closes.

        Finalizations under way in other threads stop at their next span and are
        waited for (:meth:`_settle`). In a signal handler the process is dying:
        the endings it interrupted are delivered first, and other threads are not
        waited for, as they may wait for what the interrupted thread holds.
        """
        self._closer = get_ident()
        if in_handler:
            self._deliver_interrupted_endings()
        else:
            self._settle(deadline)
        self.finalize_all(reason, deadline, in_handler=in_handler, dying=in_handler)

    def _settle(self, deadline: Deadline) -> None:
        """Wait, until ``deadline`` at most, for the finalizations of other threads to end.

        A span one of them claimed is no longer open for the shutdown to
        finalize: it reaches the export path only through that thread, which
        must hand it over before the path closes.
        """
        others = [run for run in list(self._runs) if run.thread != get_ident()]
        if others:
            _logger.debug(
                "otel_lifecycle: shutdown waits for %d finalization(s) under way in other threads",
                len(others),
            )
        for run in others:
            run.wait(deadline)

    def _finalize(
        self,
        spans: Iterable[Span],
        reason: Reason,
        deadline: Deadline,
        in_handler: bool,
        dying: bool,
    ) -> int:
        ended: Counter[str] = Counter()
        run = _Run()
        self._runs.add(run)
        try:
            for span in spans:
                if self._closer not in (None, run.thread):
                    break  # a shutdown in another thread finalizes the rest
                try:
                    used = self._finalize_one(span, reason, deadline, in_handler, dying)
                    if used is not None:
                        ended[used.error_type] += 1
                except Exception as error:  # noqa: BLE001 - one bad span must not stop the others
                    self._internal_error("finalize", error)
        finally:
            self._runs.discard(run)
            run.end()
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
        if in_handler and not lock_is_free(span):
            return self._export_held(span, span_id, reason) if dying else None
        if self.open.claim(span_id) is None:
            return None
        endings = self.endings
        with span._lock:
            if not span.is_recording():
                return None  # the application's end() came first and delivers it
            mark = endings.get(span_id)
            mark = mark if isinstance(mark, Mark) else None
            claim = Claim(reason if mark is None else mark.reason, get_ident(), mark)
            endings[span_id] = claim
        # Whichever end() wins, its on_end takes the claim: consumed if it was this one.
        span.end()
        return claim.reason if claim.consumed else None

    def _export_held(self, span: Span, span_id: int, reason: Reason) -> Reason | None:
        """Dying, the span's lock held by the interrupted thread: export a stamped copy now."""
        taken, mark = self._take(span_id)
        if not taken:
            return None
        used = reason if mark is None else mark.reason
        conversation_id = self._conversations.of_span(span)
        being_set = attribute_being_set(span, sys._getframe(1))
        copy = stamped(
            span,
            used,
            conversation_id,
            finalized=True,
            end_time=time.time_ns(),
            being_set=being_set,
        )
        self._emit_priority(copy)
        return used

    def _deliver_interrupted_endings(self) -> None:
        """Dying: export, once, each span that ended but that no ``on_end`` will hand over.

        The thread the signal interrupted never resumes: an ``on_end`` of it
        (found in its frames) that had the span is finished here, unless the
        span is queued already. Every other span that ended but is still open
        is in an ``end()`` that has not reached the point where ``on_end``
        pops it: this handler takes it (:meth:`_take`) and exports it.
        """
        self._path.enter_handler()
        for span_id, span in self._interrupted_on_end():
            if not self._path.queued(span_id):
                self._emit_priority(span)
        for span_id, open_span in self.open.spans.copy().items():
            if open_span.is_recording():
                continue
            taken, mark = self._take(span_id)
            if taken:
                self._emit_priority(open_span if mark is None else self._marked(mark, open_span)[0])

    def _interrupted_on_end(self) -> list[tuple[int, ReadableSpan]]:
        """The spans that ``on_end`` calls of this thread, below this handler, would export.

        A call that already popped the span's pending ending holds the span to
        export in its ``span``; one that had not gets the ending applied here. A
        span still open is taken from the open spans, so it is exported once.
        Reading this thread's own frames is safe: they do not run meanwhile.
        """
        found: list[tuple[int, ReadableSpan]] = []
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            local = frame.f_locals if frame.f_code is self._on_end_code else {}
            span = local.get("span")
            if local.get("self") is self._owner and isinstance(span, ReadableSpan):
                span_id = span._context[SPAN_ID]  # type: ignore[index]
                ending = self.endings.pop(span_id, None)
                applied = (span, True) if ending is None else self.apply(ending, span)
                self.open.claim(span_id)
                if applied is not None:
                    found.append((span_id, applied[0]))
            frame = frame.f_back
        return found

    def _take(self, span_id: int) -> tuple[bool, Mark | None]:
        """Dying: whether this handler, not the span's ``on_end``, exports the ended span.

        Also the mark the span had, which the handler's export carries. An
        ``on_end`` pops its span from the open spans just before handing it
        over. :data:`EXPORTED` is written first, then the span is claimed: if
        the claim wins, that ``on_end`` finds the entry and exports nothing
        (:meth:`taken`); if it loses, the span is that ``on_end``'s, or, when a
        finalizer claimed it and left it to its ``on_end``, the entry settles
        it: whichever of the two takes it back first gives the span up.
        """
        endings = self.endings
        entry = endings.get(span_id)
        mark = entry if isinstance(entry, Mark) else None
        if entry is not None and (mark is None or endings.pop(span_id, None) is not mark):
            return False, None  # a claim, an export, an inheritance or its on_end settles it
        if endings.setdefault(span_id, EXPORTED) is not EXPORTED:
            return False, None
        if self.open.claim(span_id) is not None:
            return True, mark
        return endings.pop(span_id, None) is not EXPORTED, mark

    def taken(self, span_id: int) -> bool:
        """An ``on_end`` that could not pop its span: whether a dying handler took it.

        The handler exports it then. Otherwise the span was not tracked, or a
        finalizer left it, ended, to this ``on_end``, which exports it.
        """
        return self.endings.pop(span_id, None) is EXPORTED

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
        self._runs.clear()


class _Run:
    """A finalization under way in the thread that made it; a shutdown may wait for its end.

    Each waiter brings an event of its own: the run's thread may be a signal
    handler, which must set no event whose lock the code it interrupted holds.
    """

    __slots__ = ("ended", "thread", "waiters")

    def __init__(self) -> None:
        self.thread = get_ident()
        self.ended = False
        self.waiters: deque[threading.Event] = deque()

    def end(self) -> None:
        self.ended = True
        while self.waiters:
            self.waiters.popleft().set()

    def wait(self, deadline: Deadline) -> bool:
        """Wait until the run ends; False if it did not before ``deadline``."""
        done = threading.Event()
        self.waiters.append(done)
        return self.ended or done.wait(deadline.remaining())
