"""Reading a ``SpanContext`` on the hot path: by position, not through its properties.

``SpanContext`` is a tuple ``(trace_id, span_id, is_remote, trace_flags,
trace_state, is_valid)``, and each of its properties is a Python function: a
frame per read. The hot path reads the tuple by position instead, which saves
about a microsecond per span (7 reads in ``on_start`` and ``on_end``). A test
pins this layout against the installed opentelemetry-api.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.trace import TraceFlags

TRACE_ID: Final = 0
SPAN_ID: Final = 1
IS_REMOTE: Final = 2
TRACE_FLAGS: Final = 3

SAMPLED = TraceFlags.SAMPLED
"""The sampled bit of ``trace_flags``."""
