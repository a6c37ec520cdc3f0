"""Spans open when the process forks: each belongs to the process that ends it.

Before ``os.fork()`` the parent records the spans open then, with a region of
shared memory, one byte per span. The child inherits them as
:class:`~otel_lifecycle._core.endings.Inherited` endings: when it ends one, it
exports it and ticks its byte. The parent, before it finalizes or counts open
spans, forgets the ones its children ticked: they were exported there.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

from otel_lifecycle._core.endings import Inherited
from otel_lifecycle._core.open_spans import OpenSpans


@dataclass
class ForkRecord:
    """In a parent: the spans open when it forked, and the bytes its child ticks for them."""

    span_ids: tuple[int, ...]
    region: mmap.mmap = field(repr=False)

    @classmethod
    def of(cls, span_ids: tuple[int, ...]) -> ForkRecord:
        """A record with a shared, zeroed region of one byte per span."""
        return cls(span_ids, mmap.mmap(-1, len(span_ids)))

    def ended_in_child(self) -> list[int]:
        """The span ids a child process ended."""
        region = self.region
        return [span_id for index, span_id in enumerate(self.span_ids) if region[index]]

    def inherited(self) -> dict[int, Inherited]:
        """In the child: an :class:`Inherited` ending per span."""
        return {
            span_id: Inherited(self.region, index) for index, span_id in enumerate(self.span_ids)
        }


class Forks:
    """The fork records of one processor."""

    __slots__ = ("_forking", "_records")

    def __init__(self) -> None:
        self._records: list[ForkRecord] = []
        self._forking: ForkRecord | None = None

    def before_fork(self, open_spans: OpenSpans) -> None:
        """``os.fork()`` is about to run: record the spans open now."""
        span_ids = tuple(open_spans.spans)
        self._forking = ForkRecord.of(span_ids) if span_ids else None

    def after_fork_in_parent(self) -> None:
        """Keep the record of the fork that just happened."""
        if self._forking is not None:
            self._records.append(self._forking)
            self._forking = None

    def after_fork_in_child(self) -> dict[int, Inherited]:
        """In the child: the parent's open spans, now inherited; the parent's records dropped."""
        inherited = self._forking.inherited() if self._forking is not None else {}
        self._forking = None
        self._records = []
        return inherited

    def reclaim(self, open_spans: OpenSpans) -> None:
        """Forget the open spans that a forked child ended: they were exported there."""
        if not self._records:
            return
        for record in self._records:
            for span_id in record.ended_in_child():
                open_spans.claim(span_id)
        self._records = [
            record
            for record in self._records
            if any(span_id in open_spans.spans for span_id in record.span_ids)
        ]
