"""Spans open when the process forks: each belongs to the process that ends it.

Every span open at an ``os.fork()`` has a slot of memory shared with the
children, given at the first fork that finds it open and reused by every later
fork while the span stays open in the parent. A slot is two 8-byte words: the
owner (the span's id, written by the parent) and the tick (written by a child).
A child inherits the spans as :class:`~otel_lifecycle._core.endings.Inherited`
endings: when it ends one, it exports it and, if the owner word still names the
span, writes the span's id into the tick. The parent, before it finalizes or
counts open spans, forgets each span whose tick holds its id (a child exported
it), and frees the slots of spans no longer open there (owner word zeroed).

Slots live in arenas, one shared ``mmap`` of :data:`ARENA_SLOTS` slots each,
mapped only when three quarters of the slots belong to spans open now. A
process holding one root open while it forks a thousand children maps one
arena, where mapping a region per fork reached ``vm.max_map_count``. The
bookkeeping is two dicts (span id <-> slot) of the spans open at forks, kept
within twice the spans open at the last fork: it never grows with the number
of forks. Free slots are found round-robin, so a freed slot is reused as late
as possible.

A freed slot goes to another span while children of earlier forks may still
end the old one: such a late ending finds another owner (or none) and writes
nothing, and a tick that slips past that check still names the old span, which
the parent compares with the slot's owner: it never forgets the new one.

The fork hooks take no lock (a child would inherit it held): they rely on dict
operations being atomic under the GIL; a slot changes hands only through
``dict.setdefault`` (taking it) and ``dict.pop`` (freeing it), which exactly one
caller wins. Words are read and written through a ``memoryview`` cast to
``"Q"``: one aligned 8-byte copy, a single load or store on 64-bit platforms,
so no process sees half of an id. Residual races, accepted because processes
share no atomic compare-and-swap without a lock that a dying child could hold:

- A child that ends a span while the parent is finalizing it (the parent read
  the tick just before the child wrote it): both export it. Likewise when both
  processes end the span themselves: each exports what it ended.
- A child that read the owner word as its span's, then was descheduled while
  the parent freed the slot, gave it round-robin to a new span, forked, and
  that fork's child ticked the new span, overwrites that tick when it resumes:
  the new span is exported by its child and finalized by the parent too.
- Two threads forking at the same moment share the pending list of the fork
  hooks: a child may inherit the spans recorded for the other thread's fork
  (as before slots: the hooks keep one fork under way).
"""

from __future__ import annotations

import itertools
import mmap

from otel_lifecycle._core.endings import Inherited
from otel_lifecycle._core.open_spans import OpenSpans

ARENA_SLOTS = 4096
"""Slots per shared mapping (16 bytes each: 64 KiB)."""


class Forks:
    """The shared slots of one processor's spans open at forks, and the fork under way."""

    __slots__ = ("_arenas", "_cursor", "_forking", "_owners", "_slots")

    def __init__(self) -> None:
        self._slots: dict[int, int] = {}
        """Span id -> its slot, for the spans open at a fork, until their slot is freed."""
        self._owners: dict[int, int] = {}
        """Slot -> the span id it was given to: the slots in use."""
        self._arenas: list[memoryview] = []
        """The words of each arena: slot ``s`` is in arena ``s // ARENA_SLOTS``."""
        self._cursor = itertools.count()
        """Where the round-robin search for a free slot goes on."""
        self._forking: tuple[int, ...] | None = None
        """The spans open at the fork under way: what its child inherits."""

    def before_fork(self, open_spans: OpenSpans) -> None:
        """``os.fork()`` is about to run: give the spans open now their slots."""
        span_ids = tuple(open_spans.spans)
        if not span_ids:
            self._forking = None
            return
        slots = self._slots
        if len(slots) > 2 * len(span_ids):
            self._free_closed(open_spans)
        for span_id in set(span_ids).difference(slots):  # in C: cheap when all have slots
            self._give(span_id, open_spans)
        self._forking = span_ids

    def after_fork_in_parent(self) -> None:
        """The child has its slots; the parent keeps them while their spans are open here."""
        self._forking = None

    def after_fork_in_child(self) -> dict[int, Inherited]:
        """In the child: the parent's open spans, now inherited; its own slots start empty.

        The parent's arenas stay the parent's: this process maps new ones for
        its own forks, so its children never write where the parent reads.
        """
        forking = self._forking
        slots = self._slots
        inherited: dict[int, Inherited] = {}
        for span_id in forking or ():
            slot = slots.get(span_id)
            if slot is not None:  # else the parent freed it as the fork ran: no longer open there
                words, owner = self._words_at(slot)
                inherited[span_id] = Inherited(words, owner, span_id)
        self._slots = {}
        self._owners = {}
        self._arenas = []
        self._cursor = itertools.count()
        self._forking = None
        return inherited

    def reclaim(self, open_spans: OpenSpans) -> None:
        """Forget the open spans that a forked child ended; free the slots of closed spans."""
        slots = self._slots
        if not slots:
            return
        spans = open_spans.spans
        for span_id, slot in list(slots.items()):
            if self._tick(slot) == span_id:
                open_spans.claim(span_id)  # a child exported it
            elif span_id in spans:
                continue
            self._release(span_id)

    def _give(self, span_id: int, open_spans: OpenSpans) -> None:
        """Give ``span_id`` a slot, its tick zeroed; map a new arena if few are free."""
        if self._crowded():
            self._free_closed(open_spans)
            if self._crowded():
                self._map_arena()
        slot = self._take(span_id)
        while slot is None:  # other threads took every free slot meanwhile
            self._map_arena()
            slot = self._take(span_id)
        words, owner = self._words_at(slot)
        words[owner + 1] = 0
        words[owner] = span_id
        if self._slots.setdefault(span_id, slot) != slot:
            self._vacate(slot)  # another thread's fork gave the span a slot meanwhile

    def _crowded(self) -> bool:
        """Whether three quarters of the slots are in use: the round-robin search gets long."""
        return 4 * len(self._owners) >= 3 * ARENA_SLOTS * len(self._arenas)

    def _take(self, span_id: int) -> int | None:
        """The next free slot round-robin, now ``span_id``'s; None after a whole round."""
        capacity = ARENA_SLOTS * len(self._arenas)
        owners = self._owners
        for _ in range(capacity):
            slot = next(self._cursor) % capacity
            if owners.setdefault(slot, span_id) == span_id:
                return slot
        return None

    def _free_closed(self, open_spans: OpenSpans) -> None:
        """Free the slots of spans no longer open here."""
        for span_id in self._slots.keys() - open_spans.spans.keys():
            self._release(span_id)

    def _release(self, span_id: int) -> None:
        """Free the slot of ``span_id``, if this caller is the one that takes it off the span."""
        slot = self._slots.pop(span_id, None)
        if slot is not None:
            self._vacate(slot)

    def _vacate(self, slot: int) -> None:
        """Zero the owner word (children stop ticking it), then let the slot be taken."""
        words, owner = self._words_at(slot)
        words[owner] = 0
        self._owners.pop(slot, None)

    def _map_arena(self) -> None:
        """Map one more shared arena: two words a slot, zeroed."""
        region = mmap.mmap(-1, ARENA_SLOTS * 16)
        self._arenas.append(memoryview(region).cast("Q"))

    def _tick(self, slot: int) -> int:
        """The id a child wrote into ``slot``'s tick (0 if none since it was given)."""
        words, owner = self._words_at(slot)
        return int(words[owner + 1])

    def _words_at(self, slot: int) -> tuple[memoryview, int]:
        """The words of ``slot``'s arena, and the index of its owner word (the tick is next)."""
        arena, index = divmod(slot, ARENA_SLOTS)
        return self._arenas[arena], 2 * index
