"""Shared fixtures: a provider wired to a lifecycle processor, an in-memory exporter, a receiver."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._api.run import environment_capture
from otel_lifecycle._settings import environment
from tests.receiver import OtlpReceiver


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from a known environment, with internal errors re-raised."""
    for name in list(os.environ):
        if name.startswith(("OTEL_LIFECYCLE_", "OTEL_BSP_", "OTEL_EXPORTER_", "OTEL_TRACES_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_LIFECYCLE_STRICT", "true")


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP receiver (gRPC and HTTP) on 127.0.0.1 for the test."""
    with OtlpReceiver() as running:
        yield running


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


class Harness:
    """A provider whose only processor is a lifecycle processor over ``exporter``."""

    def __init__(self, exporter: InMemorySpanExporter, **options: object) -> None:
        self.exporter = exporter
        self.processor = LifecycleSpanProcessor(SimpleSpanProcessor(exporter), **options)  # type: ignore[arg-type]
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tests")

    def exported(self) -> dict[str, ReadableSpan]:
        """Exported spans by name; fails if a name was exported twice."""
        spans = self.exporter.get_finished_spans()
        names = [span.name for span in spans]
        assert len(names) == len(set(names)), f"exported more than once: {names}"
        return {span.name: span for span in spans}


@pytest.fixture
def make_harness(exporter: InMemorySpanExporter) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**options: object) -> Harness:
        harness = Harness(exporter, **options)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.provider.shutdown()


@pytest.fixture
def global_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No global tracer provider is set during the test; any set by it is shut down after.

    The API sets the global provider once per process; the test resets its private
    once-flag, as the SDK's own test utilities do.
    """
    monkeypatch.setattr(otel_trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(otel_trace, "_TRACER_PROVIDER", None)
    yield
    provider = otel_trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


@pytest.fixture(autouse=True)
def _fresh_capture_settings() -> Iterator[None]:
    """``traced``/``span()`` read their capture settings once per process: re-read per test."""
    environment_capture.cache_clear()
    yield
    environment_capture.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_setting_warnings() -> None:
    """An invalid variable is warned about once per process: let each test see its warning."""
    environment._warned.clear()
