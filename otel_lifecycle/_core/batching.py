"""The batching settings: the ``OTEL_BSP_*`` variables, read as the SDK's batch processor does.

The variables are parsed by the SDK's own helpers, so they mean what they mean
there; like the SDK, ``OTEL_BSP_EXPORT_TIMEOUT`` is accepted but cannot interrupt
an ``export()`` call.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_lifecycle._settings.environment import first_warning

_logger = logging.getLogger(__name__)


SPEC_DEFAULTS = {
    "OTEL_BSP_MAX_QUEUE_SIZE": 2048,
    "OTEL_BSP_SCHEDULE_DELAY": 5000,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512,
}
"""The specification's defaults for the batching variables."""


def batch_settings(
    max_queue_size: int | None,
    schedule_delay_millis: float | None,
    max_export_batch_size: int | None,
) -> tuple[int, float, int]:
    """The batching settings: each argument, else its ``OTEL_BSP_*`` variable, else the default.

    The variables are parsed by the SDK's own ``BatchSpanProcessor`` helpers (a
    value that is not a number logs the SDK's message and gives the default). A
    number that is not positive logs one warning per variable and gives the
    default, and a batch larger than the queue is cut to the queue's size: a bad
    variable must not stop the application. Bad arguments raise ``ValueError``.
    """
    sdk: Any = BatchSpanProcessor  # its helpers are untyped
    queue = (
        _positive("OTEL_BSP_MAX_QUEUE_SIZE", sdk._default_max_queue_size())
        if max_queue_size is None
        else max_queue_size
    )
    delay = (
        _positive("OTEL_BSP_SCHEDULE_DELAY", sdk._default_schedule_delay_millis())
        if schedule_delay_millis is None
        else schedule_delay_millis
    )
    batch = (
        min(
            _positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", sdk._default_max_export_batch_size()), queue
        )
        if max_export_batch_size is None
        else max_export_batch_size
    )
    sdk._validate_arguments(queue, delay, batch)
    return int(queue), float(delay), int(batch)


def _positive(variable: str, value: float) -> float:
    if value > 0:
        return value
    if first_warning(variable):
        _logger.warning(
            "otel_lifecycle: invalid value %s for %s: expected a positive number; using %s",
            value,
            variable,
            SPEC_DEFAULTS[variable],
        )
    return SPEC_DEFAULTS[variable]
