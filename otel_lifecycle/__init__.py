"""otel_lifecycle: every span that was started is exported exactly once, with how it ended.

The public API is re-exported here; the work is in private modules, one concept each:

- the processor: ``_processor`` (hooks, finalizing, flush, shutdown),
  ``_open_spans`` (the open spans by span id), ``_endings`` (spans with a
  pending ending: claimed, marked, inherited across fork), ``_finalize``
  (reasons, stamping a span), ``_export`` (the owned export path),
  ``_watchdog`` (root timeouts), ``_snapshot`` (in-progress markers),
  ``_conversation`` (conversation ids), ``_stats``, ``_bounded`` (calls within
  a time budget);
- operating it: ``_active`` (the live processors), ``_metrics`` (the counts as
  OpenTelemetry metrics), ``_summary`` (one log line per batch finalized);
- process exits: ``_exits`` (signals, excepthooks, atexit, fork), ``_journal``,
  ``_journal_store``, ``_journal_record`` and ``_recover`` (the crash journal);
- setup: ``_settings`` (every environment variable), ``_configure``,
  ``_instrument`` (``opentelemetry-instrument``), ``_entry_points``;
- the root lifecycle API: ``_traced`` (decorator), ``_span`` (context manager,
  ``fail``, ``set_output``), ``_run`` (shared start/finish), ``_sanitize``;
- ``_console``: a compact tree exporter for development;
- the command line: ``_cli``, ``_doctor``, ``_demo`` and ``_demo_app``, ``_report``
  and ``_tree`` (rendering), ``_receiver`` (an embedded OTLP receiver);
- ``_semconv``: the attribute names written and read.
"""

from __future__ import annotations

from otel_lifecycle._api.span import TracedSpan, fail, set_output, span
from otel_lifecycle._api.traced import traced
from otel_lifecycle._console.exporter import ConsoleTreeSpanExporter
from otel_lifecycle._core.conversation import conversation
from otel_lifecycle._core.stats import LifecycleStats
from otel_lifecycle._journal.recovery import RecoveryError, recover
from otel_lifecycle._processor.processor import LifecycleSpanProcessor, processors
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
