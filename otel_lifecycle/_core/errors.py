"""The package's own errors: never raised into the application, never hidden from a test suite.

Every hook catches what goes wrong inside it and hands it here: it is counted
(``stats().internal_errors``), logged once per place, and re-raised when
``OTEL_LIFECYCLE_STRICT`` (or ``strict``) asks for it, as a test suite does.
"""

from __future__ import annotations

import logging

from otel_lifecycle._core.stats import Counters

_logger = logging.getLogger(__name__)


class InternalErrors:
    """Called with where an internal error happened and the error."""

    __slots__ = ("_counters", "_logged", "_strict")

    def __init__(self, counters: Counters, *, strict: bool) -> None:
        self._counters = counters
        self._strict = strict
        self._logged: set[str] = set()

    def __call__(self, where: str, error: Exception) -> None:
        self._counters.add("internal_errors")
        if self._strict:
            raise error
        if where not in self._logged:
            self._logged.add(where)
            _logger.error(
                "otel_lifecycle: internal error in %s (logged once)", where, exc_info=error
            )
