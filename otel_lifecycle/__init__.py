"""otel_lifecycle: every span that was started is exported exactly once, with how it ended.

The public API is re-exported here; the work is in private packages, one concept
each, whose imports flow one way (README, "Architecture"):

- ``_settings``: every environment variable, its default, and argument checks;
- ``_core``: what a span goes through from ``on_start`` to the exporter: open
  spans, pending endings, reasons and stamping, conversation ids, the export
  stage, root timeouts, in-progress markers, counters and metrics;
- ``_journal``: the crash journal and its recovery;
- ``_process``: signals, excepthooks, atexit, fork, and servers that drain;
- ``_api``: ``@traced``, ``span()``, ``fail()``, ``set_output()``, sanitizing;
- ``_console``: the compact tree exporter for development;
- ``_processor``: ``LifecycleSpanProcessor``, putting the core, the journal and
  the process hooks together;
- ``_setup``: ``configure()`` and the hooks of ``opentelemetry-instrument``;
- ``_cli``: the ``otel-lifecycle`` command (doctor, recover, demo).
"""

from __future__ import annotations

from otel_lifecycle._api.span import TracedSpan, fail, set_output, span
from otel_lifecycle._api.traced import traced
from otel_lifecycle._console.exporter import ConsoleTreeSpanExporter
from otel_lifecycle._core.conversation import conversation
from otel_lifecycle._core.stats import LifecycleStats
from otel_lifecycle._journal.recovery import RecoveryError, recover
from otel_lifecycle._processor.live import processors
from otel_lifecycle._processor.processor import LifecycleSpanProcessor
from otel_lifecycle._setup.configure import configure
from otel_lifecycle._setup.instrument import LifecycleConfigurator
from otel_lifecycle._version import __version__

__all__ = [
    "ConsoleTreeSpanExporter",
    "LifecycleConfigurator",
    "LifecycleSpanProcessor",
    "LifecycleStats",
    "RecoveryError",
    "TracedSpan",
    "__version__",
    "configure",
    "conversation",
    "fail",
    "processors",
    "recover",
    "set_output",
    "span",
    "traced",
]
