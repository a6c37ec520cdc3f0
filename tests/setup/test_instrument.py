"""The real ``opentelemetry-instrument`` command on an app that leaves its root open."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lifecycle import LifecycleConfigurator, LifecycleSpanProcessor
from otel_lifecycle._core.export import FanOutExporter
from otel_lifecycle._setup.instrument import attach, lifecycle_processors, post_instrument
from tests._paths import APPS
from tests.receiver import OtlpReceiver, ReceivedSpan

APP = APPS / "open_root.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def run_instrumented(receiver: OtlpReceiver, **variables: str) -> tuple[ReceivedSpan, ...]:
    """Run the app under opentelemetry-instrument; return the spans of its trace."""
    receiver.clear()
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME="open-root-app",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_EXPORTER_OTLP_INSECURE="true",
        **variables,
    )
    completed = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(APP)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Configuration of" not in completed.stderr  # no configurator of ours to displace
    expected = "0" if variables.get("OTEL_LIFECYCLE_ENABLED") == "false" else "1"
    assert completed.stdout.splitlines() == [f"lifecycle_processors={expected}"]
    # The app has exited: everything it exported at exit has been received.
    assert receiver.wait_for(lambda spans: any(s.name == "app.child" for s in spans), 10)
    return receiver.spans()


@pytest.mark.parametrize(
    "configurator",
    [
        pytest.param(None, id="first-configurator-found"),
        pytest.param("configurator", id="distro-configurator-selected"),
    ],
)
def test_open_root_arrives_finalized_once(receiver: OtlpReceiver, configurator: str | None) -> None:
    """Through the post-instrument hook, with the configurator found first or the one selected."""
    selected = {} if configurator is None else {"OTEL_PYTHON_CONFIGURATOR": configurator}
    spans = run_instrumented(receiver, **selected)
    assert sorted(span.name for span in spans) == ["app.child", "app.root"]
    root = next(span for span in spans if span.name == "app.root")
    assert root.status_code == "ERROR"
    assert root.attributes["error.type"] == "shutdown"
    assert root.attributes["otel_lifecycle.finalized_by"] == "shutdown"
    assert root.attributes["gen_ai.conversation.id"] == "conv-7"
    assert root.resource["service.name"] == "open-root-app"


def test_disabled_leaves_the_sdk_as_it_is(receiver: OtlpReceiver) -> None:
    spans = run_instrumented(receiver, OTEL_LIFECYCLE_ENABLED="false")
    assert [span.name for span in spans] == ["app.child"]
    assert "gen_ai.conversation.id" not in spans[0].attributes


def test_attach_adds_one_processor_whose_spans_reach_existing_exporters() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    processor = attach(provider)
    assert isinstance(processor, LifecycleSpanProcessor)
    assert attach(provider) is None
    assert lifecycle_processors(provider) == [processor]
    tracer = provider.get_tracer("tests")
    root = tracer.start_span("root")
    processor.shutdown()
    provider.shutdown()
    root.end()
    [exported] = exporter.get_finished_spans()
    assert exported.attributes is not None
    assert exported.attributes["error.type"] == "shutdown"


def test_attach_moves_batch_processors_exporters_to_its_export_stage() -> None:
    """Batch processors are retired after exporting their queue; their exporters get every span."""
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    batches = [BatchSpanProcessor(first), BatchSpanProcessor(second)]
    provider = TracerProvider(shutdown_on_exit=False)
    for batch in batches:
        provider.add_span_processor(batch)
    tracer = provider.get_tracer("tests")
    tracer.start_span("before").end()
    processor = attach(provider)
    assert isinstance(processor, LifecycleSpanProcessor)
    assert isinstance(processor.delegate, FanOutExporter)
    assert processor.delegate.exporters == (first, second)
    assert not any(batch._batch_processor._worker_thread.is_alive() for batch in batches)
    root = tracer.start_span("root")
    tracer.start_span("child", context=trace.set_span_in_context(root)).end()
    provider.shutdown()
    for exporter in (first, second):
        spans = {span.name: span for span in exporter.get_finished_spans()}
        assert sorted(spans) == ["before", "child", "root"]
        assert len(exporter.get_finished_spans()) == 3
        assert spans["root"].attributes is not None
        assert spans["root"].attributes["error.type"] == "shutdown"


def test_attach_keeps_other_processors_as_its_delegate() -> None:
    """Processors other than the SDK's batch processor are called through the lifecycle one."""
    exporter = InMemorySpanExporter()
    simple = SimpleSpanProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(simple)
    processor = attach(provider)
    assert isinstance(processor, LifecycleSpanProcessor)
    assert isinstance(processor.delegate, SynchronousMultiSpanProcessor)
    assert processor.delegate._span_processors == (simple,)


@pytest.mark.usefixtures("global_provider")
def test_the_configurator_puts_the_processor_in_front_of_each_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LifecycleConfigurator, for distributions: one processor per exporter, owning it."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    LifecycleConfigurator().configure()  # type: ignore[no-untyped-call]  # the SDK's base is untyped
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    [processor] = lifecycle_processors(provider)
    assert type(processor.delegate).__name__ == "ConsoleSpanExporter"


def test_attach_does_nothing_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_ENABLED", "false")
    provider = TracerProvider(shutdown_on_exit=False)
    assert attach(provider) is None
    assert lifecycle_processors(provider) == []


@pytest.mark.usefixtures("global_provider")
def test_post_instrument_attaches_once_to_the_global_sdk_provider() -> None:
    post_instrument()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    provider = TracerProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(provider)
    post_instrument()
    post_instrument()
    assert len(lifecycle_processors(provider)) == 1


class BrokenProvider(TracerProvider):
    """A provider whose processors can only be added, and adding fails."""

    def __init__(self) -> None:
        super().__init__(
            shutdown_on_exit=False, active_span_processor=ConcurrentMultiSpanProcessor()
        )

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        raise RuntimeError("broken provider")


@pytest.mark.usefixtures("global_provider")
def test_post_instrument_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    trace.set_tracer_provider(BrokenProvider())
    post_instrument()
    assert "could not attach to the tracer provider" in caplog.text
