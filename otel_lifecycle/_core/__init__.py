"""The core: the mechanisms a span goes through from ``on_start`` to the exporter.

Reasons, failing and stamping a span (``finalize``), the open spans
(``open_spans``), pending endings (``endings``), conversation ids
(``conversation``), the export stage (``export``), root timeouts (``watchdog``),
in-progress markers (``markers``), counters, metrics and the finalization log
line (``stats``, ``metrics``, ``summary``), the live processors and their one
interface to the process hooks (``active``), background threads and bounded
calls (``threads``, ``bounded``), and the attribute names (``semconv``).

May import: ``_settings`` and ``_version``. Nothing in it knows about signals,
the journal, the decorator API or the command line.
"""
