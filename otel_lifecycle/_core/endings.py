"""What to do when a particular span ends: the few spans that are not ended the ordinary way.

The processor keeps one dict, span id -> ending, and looks at it in ``on_end``
only while it is not empty, so ordinary spans pay one truth test:

- :class:`Claim`: a finalizer stamped the span and is ending it. Only the
  finalizer's own ``end()`` (same thread) consumes it; if the application's
  ``end()`` won the race, the stamp is undone on the exported copy, so the span
  is exported as the application ended it.
- :class:`Mark`: a signal or an unhandled exception was recorded while the span
  was open. If the application ends it without a status, it gets this reason;
  if a finalizer ends it, the finalizer uses this reason.
- :class:`Inherited`: in a forked child, a span the parent started. The child
  exports it if it ends it here, and writes the span's id into its slot of
  memory shared with the parent (``_core.forks``), which then no longer
  finalizes it: a span belongs to the process that ends it.
- :data:`EXPORTED`: a dying process already exported a copy of the span (its
  lock was held by the interrupted thread); a later ``end()`` exports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_lifecycle._core.finalize import Reason, Undo


class Claim:
    """A finalizer in ``thread`` stamped the span and is ending it; ``undo`` reverts the stamp."""

    __slots__ = ("consumed", "thread", "undo")

    def __init__(self, undo: Undo, thread: int) -> None:
        self.undo = undo
        self.thread = thread
        self.consumed = False


@dataclass(frozen=True)
class Mark:
    """``reason`` was recorded on the open span (SIGINT, an unhandled exception)."""

    reason: Reason


@dataclass(frozen=True, eq=False)
class Inherited:
    """In a forked child: the parent's span ``span_id``, its slot at ``owner`` of shared ``words``.

    ``words[owner]`` is the slot's owner, ``words[owner + 1]`` its tick. The
    parent gives the slot to another span once this one is no longer open there:
    the owner word tells a late ending to write nothing, and the id written, not
    a flag, tells the parent whose ending a tick is.
    """

    words: memoryview
    owner: int
    span_id: int

    def ended_here(self) -> None:
        """Tell the parent this process ended the span, if the slot is still the span's."""
        words = self.words
        if words[self.owner] == self.span_id:
            words[self.owner + 1] = self.span_id


@dataclass(frozen=True)
class _Exported:
    """The span was exported already."""


EXPORTED = _Exported()

Ending = Claim | Mark | Inherited | _Exported
