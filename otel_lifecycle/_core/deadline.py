"""A time budget measured on the processor's clock (injected, else ``time.monotonic``)."""

from __future__ import annotations

from collections.abc import Callable


class Deadline:
    """The end of a budget of ``seconds`` from now on ``clock``.

    Every wait takes ``remaining()`` at most, once, so a budget holds in real
    time even with an injected clock that does not move.
    """

    __slots__ = ("_at", "_clock")

    def __init__(self, clock: Callable[[], float], seconds: float) -> None:
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(self._at - self._clock(), 0.0)
