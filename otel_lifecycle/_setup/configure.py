"""``configure()``: a global TracerProvider from the standard OpenTelemetry environment.

The SDK reads most of the environment itself: ``Resource.create()`` reads
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, ``TracerProvider()`` the
sampler variables, each OTLP exporter its ``OTEL_EXPORTER_OTLP_*`` variables. This
module only picks the exporters, the way ``opentelemetry-instrument`` does: the
names in ``OTEL_TRACES_EXPORTER`` (default ``otlp``) are looked up in the
``opentelemetry_traces_exporter`` entry-point group, ``otlp`` meaning the gRPC or
HTTP exporter per ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` /
``OTEL_EXPORTER_OTLP_PROTOCOL``. Unlike the SDK, a bad value logs a warning and
does not raise.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_lifecycle._core.export import FanOutExporter
from otel_lifecycle._processor.processor import LifecycleSpanProcessor
from otel_lifecycle._settings.environment import load_settings, otlp_traces_protocol
from otel_lifecycle._setup.entry_points import find_entry_points
from otel_lifecycle._setup.instrument import attach

_logger = logging.getLogger(__name__)

_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}

_lock = threading.Lock()


def _otlp_entry_point(environ: Mapping[str, str]) -> str:
    return _OTLP_BY_PROTOCOL[otlp_traces_protocol(environ)]


def trace_exporters(environ: Mapping[str, str] | None = None) -> list[SpanExporter]:
    """The span exporters named by ``OTEL_TRACES_EXPORTER`` in ``environ`` (default ``os.environ``).

    Unset or empty means ``otlp``; ``none`` means no exporter. An unknown name
    logs a warning naming the variable and is skipped.
    """
    env = os.environ if environ is None else environ
    names = [name.strip().lower() for name in env.get(OTEL_TRACES_EXPORTER, "").split(",")]
    names = [name for name in names if name] or ["otlp"]
    if "none" in names:
        return []
    exporters: list[SpanExporter] = []
    for name in dict.fromkeys(names):
        entry_point = _otlp_entry_point(env) if name == "otlp" else name
        found = find_entry_points(_EXPORTER_GROUP, entry_point)
        exporter_class = next(iter(found)).load() if found else None
        if not (isinstance(exporter_class, type) and issubclass(exporter_class, SpanExporter)):
            _logger.warning(
                "otel_lifecycle: unknown exporter %r in %s: expected otlp, console, "
                "lifecycle_console, none or an installed %s entry point; skipped",
                name,
                OTEL_TRACES_EXPORTER,
                _EXPORTER_GROUP,
            )
            continue
        exporters.append(exporter_class())
    return exporters


def _fan_out(exporters: list[SpanExporter]) -> SpanExporter:
    return exporters[0] if len(exporters) == 1 else FanOutExporter(exporters)


def configure(**overrides: Any) -> TracerProvider:
    """Build a TracerProvider from the standard environment and set it as the global provider.

    One ``LifecycleSpanProcessor`` (``overrides`` are its keywords) sits in front
    of all the exporters, through its own export stage (several exporters share it
    through a fan-out), so each span is tracked and finalized once whatever the
    number of exporters. With
    ``OTEL_LIFECYCLE_ENABLED=false`` the exporters get plain ``BatchSpanProcessor``\\s.

    If the global provider already is an SDK ``TracerProvider`` (a second call, or
    ``opentelemetry-instrument``), it is returned as it is, with a lifecycle
    processor attached if it had none; ``overrides`` then apply only to a processor
    attached by this call.
    """
    with _lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            attach(current, **overrides)
            return current
        exporters = trace_exporters()
        if load_settings().enabled:
            processors: list[SpanProcessor] = [
                LifecycleSpanProcessor(_fan_out(exporters), **overrides)
            ]
        else:
            processors = [BatchSpanProcessor(exporter) for exporter in exporters]
        provider = TracerProvider(resource=Resource.create())
        for processor in processors:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        return provider


def exporter_from_environment() -> SpanExporter:
    """The OTLP span exporter configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables."""
    (exporter,) = trace_exporters({**os.environ, OTEL_TRACES_EXPORTER: "otlp"})
    return exporter
