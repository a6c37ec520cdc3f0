"""Zero-code setup under ``opentelemetry-instrument``: the post-instrument hook.

The ``opentelemetry_post_instrument`` entry point ``otel_lifecycle`` ->
:func:`post_instrument` runs after whichever configurator ``opentelemetry-instrument``
loaded (the distro's, a vendor's): when the global SDK provider has no lifecycle
processor yet, :func:`attach` puts one in charge of the processors that
configurator registered (taking over a live provider's batch processors is
``_setup.handover``'s job). The package declares no configurator of its own: one
would compete with the distro's for the first place, and make
``opentelemetry-instrument`` log a line about the loser on every start.
:class:`LifecycleConfigurator` is for distributions that want the processor built
in front of each exporter from the start.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from otel_lifecycle._processor.processor import LifecycleSpanProcessor
from otel_lifecycle._settings.environment import load_settings
from otel_lifecycle._setup.handover import install, take_over

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

    It becomes the provider's only processor, so it finalizes open spans before
    anything that exports shuts down, whoever calls ``provider.shutdown()``.
    When every registered processor is the SDK's ``BatchSpanProcessor`` (what the
    configurators build), their exporters move to the processor's own export
    stage (the overload guarantees hold) and the batch processors hand over
    whatever reaches them, without refusing or repeating a span while the
    application runs (see ``_setup.handover``); otherwise the registered
    processors become its delegate, in their order.
    Returns the processor, or None when the package is disabled or the provider
    already has one.
    """
    if not load_settings().enabled or lifecycle_processors(provider):
        return None
    active = getattr(provider, "_active_span_processor", None)
    if not isinstance(active, SynchronousMultiSpanProcessor):
        processor = LifecycleSpanProcessor(SpanProcessor(), **overrides)
        provider.add_span_processor(processor)
        return processor
    taken_over = take_over(active, overrides)
    if taken_over is not None:
        return taken_over
    chain = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    for registered in _registered(provider):
        chain.add_span_processor(registered)
    processor = LifecycleSpanProcessor(chain, **overrides)
    install(active, processor)
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
