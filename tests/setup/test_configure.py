"""configure(): a global provider from the standard environment, over real OTLP."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import otel_lifecycle
from otel_lifecycle import LifecycleSpanProcessor
from otel_lifecycle._console.exporter import ConsoleTreeSpanExporter
from otel_lifecycle._core.export import FanOutExporter
from otel_lifecycle._setup.configure import trace_exporters
from otel_lifecycle._setup.instrument import lifecycle_processors
from tests.receiver import OtlpReceiver

pytestmark = pytest.mark.usefixtures("global_provider")


def leave_root_open(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests.configure")
    root = tracer.start_span("root", attributes={"gen_ai.conversation.id": "conv-1"})
    tracer.start_span("child", context=trace.set_span_in_context(root)).end()


@pytest.mark.parametrize(
    ("variables", "transport"),
    [
        pytest.param({}, "grpc", id="default-grpc"),
        pytest.param({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc", id="grpc"),
        pytest.param({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http", id="http"),
        pytest.param(
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "HTTP/protobuf",
            },
            "http",
            id="traces-protocol-wins",
        ),
    ],
)
def test_configure_exports_over_real_otlp(
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    transport: str,
) -> None:
    endpoint = receiver.http_base_endpoint if transport == "http" else receiver.grpc_endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "configured-service")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    provider = otel_lifecycle.configure(shutdown_timeout=10)
    assert trace.get_tracer_provider() is provider
    leave_root_open(provider)
    provider.shutdown()

    spans = {span.name: span for span in receiver.spans()}
    assert len(receiver.spans()) == 2
    assert {span.transport for span in spans.values()} == {transport}
    root = spans["root"]
    assert (root.status_code, root.attributes["error.type"]) == ("ERROR", "shutdown")
    assert spans["child"].attributes["gen_ai.conversation.id"] == "conv-1"
    assert root.resource["service.name"] == "configured-service"
    assert root.resource["deployment.environment"] == "test"


def test_configure_twice_returns_the_same_provider_with_one_processor() -> None:
    provider = otel_lifecycle.configure()
    assert otel_lifecycle.configure(root_timeout=5) is provider
    assert len(lifecycle_processors(provider)) == 1


def test_configure_attaches_to_a_provider_set_by_someone_else() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    trace.set_tracer_provider(provider)
    assert otel_lifecycle.configure() is provider
    [processor] = lifecycle_processors(provider)
    assert otel_lifecycle.configure() is provider
    assert lifecycle_processors(provider) == [processor]


def test_configure_reads_the_sampler_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = otel_lifecycle.configure()
    assert provider.sampler is ALWAYS_OFF
    assert not provider.get_tracer("t").start_span("unsampled").is_recording()


def test_one_processor_fans_out_to_several_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,otlp")
    [processor] = lifecycle_processors(otel_lifecycle.configure())
    assert isinstance(processor.delegate, FanOutExporter)
    assert [type(exporter).__name__ for exporter in processor.delegate.exporters] == [
        "ConsoleSpanExporter",
        "OTLPSpanExporter",
    ]


def test_disabled_gives_plain_batch_processors(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LIFECYCLE_ENABLED", "false")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    provider = otel_lifecycle.configure()
    assert lifecycle_processors(provider) == []
    leave_root_open(provider)
    provider.shutdown()
    assert [span.name for span in receiver.spans()] == ["child"]


@pytest.mark.parametrize(
    ("overrides", "error", "parameter"),
    [
        ({"root_timeout": -1}, ValueError, "root_timeout"),
        ({"on_flush": "sometimes"}, ValueError, "on_flush"),
        ({"max_tracked_spans": "10"}, TypeError, "max_tracked_spans"),
        ({"no_such_option": 1}, TypeError, "no_such_option"),
    ],
)
def test_bad_overrides_raise_and_install_nothing(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object], error: type, parameter: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with pytest.raises(error, match=parameter):
        otel_lifecycle.configure(**overrides)
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, [GrpcExporter]),
        ({"OTEL_TRACES_EXPORTER": ""}, [GrpcExporter]),
        ({"OTEL_TRACES_EXPORTER": " OTLP "}, [GrpcExporter]),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            [HttpExporter],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp_proto_http"}, [HttpExporter]),
        ({"OTEL_TRACES_EXPORTER": "console"}, [ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp,console"}, [ConsoleSpanExporter, GrpcExporter]),
        ({"OTEL_TRACES_EXPORTER": "lifecycle_console"}, [ConsoleTreeSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "None"}, []),
    ],
)
def test_exporter_selection(variables: dict[str, str], expected: list[type]) -> None:
    assert [type(exporter) for exporter in trace_exporters(variables)] == expected


@pytest.mark.parametrize(
    ("variables", "expected", "warning"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "zipkin_nope,console"},
            [ConsoleSpanExporter],
            "otel_lifecycle: unknown exporter 'zipkin_nope' in OTEL_TRACES_EXPORTER: expected"
            " otlp, console, lifecycle_console, none or an installed"
            " opentelemetry_traces_exporter entry point; skipped",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            [GrpcExporter],
            "invalid value 'http/json' for OTEL_EXPORTER_OTLP_PROTOCOL: "
            "expected grpc or http/protobuf; using grpc",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [GrpcExporter],
            "invalid value 'udp' for OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ),
    ],
)
def test_bad_exporter_variables_warn_once_and_fall_back(
    caplog: pytest.LogCaptureFixture,
    variables: dict[str, str],
    expected: list[type],
    warning: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_lifecycle"):
        exporters = trace_exporters(variables)
    assert [type(exporter) for exporter in exporters] == expected
    [record] = caplog.records
    assert warning in record.getMessage()


def test_a_single_exporter_gets_the_processors_own_export_stage() -> None:
    [processor] = lifecycle_processors(otel_lifecycle.configure())
    assert type(processor) is LifecycleSpanProcessor
    assert isinstance(processor.delegate, OTLPSpanExporter)
