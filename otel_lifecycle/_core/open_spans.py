"""The open spans: started, not yet ended, in one dict keyed by span id.

The hot path is a dict set in ``on_start`` and a dict pop in ``on_end``, both
atomic under the GIL: no lock, the same work whatever the number of threads,
attributes or open traces. Local roots (no parent, or a remote one) also get an
entry in ``roots`` with their start on the clock and the thread that started
them. Nothing is kept per trace: the children-first order comes from the dict's
insertion order, and descendants are found only when roots time out.

Whoever pops a span from ``spans`` decides its ending, and nobody else: a
finalizer ends it (or, finding it ended, leaves it to the ``on_end`` under
way), a dying signal handler exports it, the ``on_end`` of its ``end()`` hands
it to the export path (popping it just before).
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.trace import Span

Root = tuple[float, int]
"""An open local root: when it started (on the processor's clock), and its thread's id."""


class OpenSpans:
    """Open spans by span id, and open local roots (the processor's ``on_start`` caps them)."""

    __slots__ = ("roots", "spans")

    def __init__(self) -> None:
        self.spans: dict[int, Span] = {}
        self.roots: dict[int, Root] = {}

    def claim(self, span_id: int) -> Span | None:
        """Take the open span ``span_id`` for finalizing; None if it ended or another took it."""
        span = self.spans.pop(span_id, None)
        if span is not None:
            self.roots.pop(span_id, None)
        return span

    def clear(self) -> None:
        """Forget every open span (in a forked child: they are the parent's)."""
        self.spans.clear()
        self.roots.clear()

    def counts(self) -> tuple[int, int]:
        """(open traces, open spans)."""
        spans = list(self.spans.values())
        return len({span.context.trace_id for span in spans}), len(spans)


def finalization_order(spans: dict[int, Span], root_ids: Iterable[int] | None = None) -> list[Span]:
    """A snapshot of the open spans, every child before its parent.

    A span starts after its parent, so the dict's insertion order has parents
    first: newest first is children first, with no lineage to compute. With
    ``root_ids``, only those spans and their open descendants.
    """
    snapshot = spans.copy()
    order = list(reversed(snapshot.values()))
    if root_ids is None:
        return order
    selected = _descendants(snapshot, set(root_ids))
    return [span for span in order if span.context.span_id in selected]


def _descendants(by_id: dict[int, Span], tops: set[int]) -> set[int]:
    """``tops`` that are open, and every open span below them."""
    children: dict[int, list[int]] = {}
    for span_id, span in by_id.items():
        parent = span.parent
        if parent is not None and not parent.is_remote:
            children.setdefault(parent.span_id, []).append(span_id)
    found: set[int] = set()
    stack = [span_id for span_id in tops if span_id in by_id]
    while stack:
        span_id = stack.pop()
        if span_id not in found:
            found.add(span_id)
            stack.extend(children.get(span_id, ()))
    return found
