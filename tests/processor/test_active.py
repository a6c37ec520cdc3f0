"""otel_lifecycle.processors(): the live lifecycle processors of this process."""

from __future__ import annotations

import gc
import weakref

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_lifecycle
from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._setup.instrument import lifecycle_processors


def test_a_new_processor_is_listed_until_it_is_garbage_collected() -> None:
    """A processor is listed with its stats while it lives, shut down or not; then it is not."""
    processor = LifecycleSpanProcessor(InMemorySpanExporter(), handle_signals=False)
    assert processor in otel_lifecycle.processors()
    processor.shutdown()
    assert processor in otel_lifecycle.processors()
    assert processor.stats().open_spans == 0
    gone = weakref.ref(processor)
    del processor
    gc.collect()
    assert gone() is None


@pytest.mark.usefixtures("global_provider")
def test_the_processor_of_a_zero_code_setup_is_listed() -> None:
    """The processor ``configure()`` created, which the application never saw, is listed."""
    [configured] = lifecycle_processors(otel_lifecycle.configure())
    assert configured in otel_lifecycle.processors()
