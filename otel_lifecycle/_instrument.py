"""Zero-code setup under ``opentelemetry-instrument``: a configurator and a post-instrument hook.

Two entry points, declared in ``pyproject.toml``:

- ``opentelemetry_configurator`` ``otel_lifecycle`` -> :class:`LifecycleConfigurator`.
  Selected with ``OTEL_PYTHON_CONFIGURATOR=otel_lifecycle``, it is the SDK's own
  configurator with one change: each exporter named by ``OTEL_TRACES_EXPORTER``
  is wrapped in a ``LifecycleSpanProcessor`` instead of a ``BatchSpanProcessor``,
  so open spans are finalized before their exporter shuts down.
- ``opentelemetry_post_instrument`` ``otel_lifecycle`` -> :func:`post_instrument`.
  Runs after whichever configurator was loaded; when the global SDK provider has
  no lifecycle processor yet (another configurator built it), :func:`attach` puts
  one in charge of the processors that configurator registered.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from otel_lifecycle._processor import LifecycleSpanProcessor
from otel_lifecycle._settings import load_settings

_logger = logging.getLogger(__name__)


def lifecycle_processors(provider: TracerProvider) -> list[LifecycleSpanProcessor]:
    """The lifecycle processors registered on ``provider``, in registration order.

    The SDK has no public way to list a provider's processors; if its internals
    change this finds none, and the worst outcome is a second processor, which
    still exports every span exactly once (``Span.end()`` is idempotent).
    """
    return [p for p in _registered(provider) if isinstance(p, LifecycleSpanProcessor)]


def _registered(provider: TracerProvider) -> tuple[SpanProcessor, ...]:
    active = getattr(provider, "_active_span_processor", None)
    return tuple(getattr(active, "_span_processors", ()))


def attach(provider: TracerProvider, **overrides: Any) -> LifecycleSpanProcessor | None:
    """Put a lifecycle processor in charge of ``provider``'s processors, unless it has one.

    The processors already registered (the configurator's batch processors) become
    the lifecycle processor's delegate, in their order, and it becomes the
    provider's only processor: every span reaches them through it, stamped when
    it was finalized, and they shut down after it has finalized the open spans,
    whoever calls ``provider.shutdown()``. Returns the processor, or None when the
    package is disabled or the provider already has one.
    """
    if not load_settings().enabled or lifecycle_processors(provider):
        return None
    active = getattr(provider, "_active_span_processor", None)
    existing = _registered(provider)
    if not isinstance(active, SynchronousMultiSpanProcessor):
        processor = LifecycleSpanProcessor(SpanProcessor(), **overrides)
        provider.add_span_processor(processor)
        return processor
    delegate = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    for registered in existing:
        delegate.add_span_processor(registered)
    processor = LifecycleSpanProcessor(delegate, **overrides)
    with active._lock:
        active._span_processors = (processor,)
    return processor


def _lifecycle_export_processor(exporter: SpanExporter) -> SpanProcessor:
    return LifecycleSpanProcessor(exporter)


class LifecycleConfigurator(_OTelSDKConfigurator):
    """The SDK's configurator, with a ``LifecycleSpanProcessor`` in front of each exporter.

    With ``OTEL_LIFECYCLE_ENABLED=false`` it is exactly the SDK's configurator.
    """

    def _configure(self, **kwargs: Any) -> None:
        if load_settings().enabled:
            kwargs.setdefault("export_span_processor", _lifecycle_export_processor)
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]


def post_instrument() -> None:
    """Attach a lifecycle processor to the global SDK provider if it has none. Never raises."""
    try:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            _logger.debug("otel_lifecycle: no SDK tracer provider to attach to")
            return
        attach(provider)
    except Exception:  # must never break the instrumented application
        _logger.exception("otel_lifecycle: could not attach to the tracer provider")
