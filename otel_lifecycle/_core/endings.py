"""What to do when a particular span ends: the few spans that are not ended the ordinary way.

The processor keeps one dict, span id -> ending, and looks at it in
``_on_ending`` and ``on_end`` only while it is not empty, so ordinary spans pay
one truth test in each:

- :class:`Claim`: a finalizer is ending the span. Nothing of it shows on the
  live span until its own ``end()`` (same thread) has won the race: the span is
  stamped in ``_on_ending``, after ``end()`` froze it and before any processor's
  ``on_end``. If the application's ``end()`` won, the span is exported as the
  application ended it, with the mark the claim replaced, if any.
- :class:`Mark`: a signal or an unhandled exception was recorded while the span
  was open. If the application ends it without a status, it gets this reason;
  if a finalizer ends it, the finalizer uses this reason.
- :class:`Inherited`: in a forked child, a span the parent started. The child
  exports it if it ends it here, and writes the span's id into its slot of
  memory shared with the parent (``_core.forks``), which then no longer
  finalizes it: a span belongs to the process that ends it.
- :data:`EXPORTED`: a dying process exported the span itself (a stamped copy
  when the interrupted thread held its lock, or the span whose ``end()`` it
  interrupted); an ``on_end`` that finds it exports nothing. Written before the
  handler claims the span, so the span's ``on_end`` either pops the span first
  (and exports it) or finds the entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_lifecycle._core.finalize import Reason


@dataclass(frozen=True)
class Mark:
    """``reason`` was recorded on the open span (SIGINT, an unhandled exception)."""

    reason: Reason


class Claim:
    """A finalizer in ``thread`` is ending the span with ``reason``.

    ``mark`` is the mark the claim replaced: the span keeps it if the
    application's ``end()`` wins. ``stamped``: the finalizer's ``end()`` won and
    the span was stamped in ``_on_ending``; ``consumed``: that ``end()``'s
    ``on_end`` took the claim (the span counts as finalized).
    """

    __slots__ = ("consumed", "mark", "reason", "stamped", "thread")

    def __init__(self, reason: Reason, thread: int, mark: Mark | None) -> None:
        self.reason = reason
        self.thread = thread
        self.mark = mark
        self.stamped = False
        self.consumed = False


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
