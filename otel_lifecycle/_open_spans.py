"""The open spans: started, not yet ended, in one dict keyed by span id.

The hot path is a dict set in ``on_start`` and a dict pop in ``on_end``, both
atomic under the GIL: no lock, the same work whatever the number of threads,
attributes or open traces. Local roots (no parent, or a remote one) also get an
entry in ``roots`` with their start on the clock and the thread that started
them. Nothing is kept per trace: grouping by trace, lineage and the
children-first order are computed only when spans are finalized, from a copy.

Whoever pops a span from ``spans`` owns its ending: the application's
``on_end`` or a finalizer, never both.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.sdk.trace import Span

Root = tuple[float, int]
"""An open local root: when it started (on the processor's clock), and its thread's id."""


class OpenSpans:
    """Open spans by span id, and open local roots; bounded by ``max_spans``."""

    __slots__ = ("max_spans", "roots", "spans")

    def __init__(self, max_spans: int) -> None:
        self.max_spans = max_spans
        self.spans: dict[int, Span] = {}
        self.roots: dict[int, Root] = {}

    def claim(self, span_id: int) -> Span | None:
        """Take the open span ``span_id`` for finalizing; None if it ended or another took it."""
        span = self.spans.pop(span_id, None)
        if span is not None:
            self.roots.pop(span_id, None)
        return span

    def counts(self) -> tuple[int, int]:
        """(open traces, open spans)."""
        spans = list(self.spans.values())
        return len({span.context.trace_id for span in spans}), len(spans)


def finalization_order(spans: Iterable[Span], root_ids: Iterable[int] | None = None) -> list[Span]:
    """Open spans deepest first, so every child ends before its parent.

    With ``root_ids``, only those spans and their open descendants. Depth counts
    open ancestors only: a span whose parent already ended, or lives in another
    process, is a top of its own.
    """
    by_id = {span.context.span_id: span for span in spans}
    depths: dict[int, int] = {}

    def depth(span_id: int) -> int:
        chain: list[int] = []
        current: int | None = span_id
        while current is not None and current in by_id and current not in depths:
            chain.append(current)
            parent = by_id[current].parent
            current = parent.span_id if parent is not None and len(chain) <= len(by_id) else None
        base = depths.get(current, -1) if current is not None else -1
        for offset, item in enumerate(reversed(chain), start=1):
            depths[item] = base + offset
        return depths[span_id]

    for span_id in by_id:
        depth(span_id)
    selected = list(by_id) if root_ids is None else _descendants(by_id, set(root_ids))
    selected.sort(key=depths.__getitem__, reverse=True)
    return [by_id[span_id] for span_id in selected]


def _descendants(by_id: dict[int, Span], tops: set[int]) -> list[int]:
    """``tops`` that are open, and every open span below them."""
    children: dict[int, list[int]] = {}
    for span_id, span in by_id.items():
        parent = span.parent
        if parent is not None and not parent.is_remote:
            children.setdefault(parent.span_id, []).append(span_id)
    found: list[int] = []
    stack = [span_id for span_id in tops if span_id in by_id]
    seen: set[int] = set()
    while stack:
        span_id = stack.pop()
        if span_id in seen:
            continue
        seen.add(span_id)
        found.append(span_id)
        stack.extend(children.get(span_id, ()))
    return found
