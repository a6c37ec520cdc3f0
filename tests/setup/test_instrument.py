"""The real ``opentelemetry-instrument`` command on an app that leaves its root open."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

import otel_lifecycle
from otel_lifecycle import LifecycleConfigurator, LifecycleSpanProcessor
from otel_lifecycle._core.export import FanOutExporter
from otel_lifecycle._setup.handover import SharedExporter
from otel_lifecycle._setup.instrument import attach, lifecycle_processors, post_instrument
from tests._paths import APPS
from tests.receiver import OtlpReceiver, ReceivedSpan

APP = APPS / "open_root.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
LIMIT = 10.0
"""Seconds a test waits for another thread before it fails (never reached when it passes)."""


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
    assert "no thread for a bounded call" not in completed.stderr  # 3.12+: none starts at exit
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
    """The batch processors' exporters, shared with them, get every span once through the stage."""
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
    shared = processor.delegate.exporters
    assert all(isinstance(exporter, SharedExporter) for exporter in shared)
    assert [exporter.exporter for exporter in shared if isinstance(exporter, SharedExporter)] == [
        first,
        second,
    ]
    root = tracer.start_span("root")
    tracer.start_span("child", context=trace.set_span_in_context(root)).end()
    provider.shutdown()
    for batch in batches:  # their workers are let go once the exporters have shut down
        batch._batch_processor._worker_thread.join(LIMIT)
        assert not batch._batch_processor._worker_thread.is_alive()
    for exporter in (first, second):
        spans = {span.name: span for span in exporter.get_finished_spans()}
        assert sorted(spans) == ["before", "child", "root"]
        assert len(exporter.get_finished_spans()) == 3
        assert spans["root"].attributes is not None
        assert spans["root"].attributes["error.type"] == "shutdown"


class SlowExporter(SpanExporter):
    """Records the ids it exports and how many ``export()`` calls ever ran at once.

    Each call waits until ``release`` is set, then takes ``EXPORT_TIME`` more, as an
    exporter talking to a slow collector does.
    """

    EXPORT_TIME = 0.002

    def __init__(self) -> None:
        self.span_ids: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.most_at_once = 0
        self._inside = 0
        self._lock = threading.Lock()
        self._never = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._inside += 1
            self.most_at_once = max(self.most_at_once, self._inside)
        self.entered.set()
        self.release.wait(LIMIT)
        self._never.wait(self.EXPORT_TIME)
        with self._lock:
            self.span_ids.extend(span.context.span_id for span in spans if span.context)
            self._inside -= 1
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


class Traffic:
    """A thread ending a span about every ``PAUSE`` seconds, recording each id it ended."""

    PAUSE = 0.002

    def __init__(self, provider: TracerProvider) -> None:
        self.ended: list[int] = []
        self._tracer = provider.get_tracer("tests.traffic")
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="traffic")

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            span = self._tracer.start_span("traffic")
            span.end()
            with self._progress:
                self.ended.append(span.get_span_context().span_id)
                self._progress.notify_all()
            self._stop.wait(self.PAUSE)

    def wait_for_more(self, count: int) -> None:
        """Return once ``count`` more spans have ended than now."""
        with self._progress:
            target = len(self.ended) + count
            assert self._progress.wait_for(lambda: len(self.ended) >= target, LIMIT)


def configure_global(provider: TracerProvider) -> None:
    """``configure()`` finding ``provider`` already set as the global provider."""
    trace.set_tracer_provider(provider)
    assert otel_lifecycle.configure() is provider


@pytest.mark.usefixtures("global_provider")
@pytest.mark.parametrize(
    "take_over",
    [pytest.param(attach, id="attach"), pytest.param(configure_global, id="configure")],
)
def test_taking_over_a_provider_serving_traffic_loses_no_span(
    monkeypatch: pytest.MonkeyPatch, take_over: Callable[[TracerProvider], object]
) -> None:
    """Spans end every 2 ms while the batch processor's worker is inside a slow export.

    Every span ended, before, during or after the handover, is exported once, and the
    batch processor's worker and the new export stage (which exports every millisecond
    too, so an overlap would show) never export at the same time.
    """
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "1")
    exporter = SlowExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1))
    with Traffic(provider) as traffic:
        assert exporter.entered.wait(LIMIT)  # the worker holds spans in a slow export
        taking_over = threading.Thread(target=take_over, args=(provider,), name="take-over")
        taking_over.start()
        traffic.wait_for_more(25)  # spans end during the handover, that export in flight
        exporter.release.set()
        taking_over.join()
        traffic.wait_for_more(25)  # and after it
    assert len(lifecycle_processors(provider)) == 1
    provider.shutdown()
    ended = set(traffic.ended)
    lost = ended - set(exporter.span_ids)
    exported_twice = [i for i, count in Counter(exporter.span_ids).items() if count > 1]
    assert (len(lost), len(exported_twice), exporter.most_at_once) == (0, 0, 1), (
        f"{len(lost)} of {len(ended)} spans lost, {len(exported_twice)} exported twice, "
        f"up to {exporter.most_at_once} export() calls at once"
    )
    assert sorted(exporter.span_ids) == sorted(traffic.ended)


def test_a_span_reaching_a_batch_processor_after_the_handover_is_exported_once() -> None:
    """A thread that read the provider's processors just before the handover ends its span
    through the batch processor just after it: exported once, before the exporter shuts down."""
    exporter = InMemorySpanExporter()
    batch = BatchSpanProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(batch)
    assert isinstance(attach(provider), LifecycleSpanProcessor)
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    batch.on_end(ReadableSpan("straggler", context=context))
    provider.shutdown()
    assert [(span.name, span.context) for span in exporter.get_finished_spans()] == [
        ("straggler", context)
    ]


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
