"""The hot path reads SpanContext by position: the layout it relies on, pinned."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from otel_lifecycle._core.span_context import IS_REMOTE, SAMPLED, SPAN_ID, TRACE_FLAGS, TRACE_ID


@pytest.mark.parametrize("flags", [TraceFlags(0), TraceFlags(TraceFlags.SAMPLED)])
@pytest.mark.parametrize("remote", [False, True])
def test_positions_are_the_properties(flags: TraceFlags, remote: bool) -> None:
    """Each position holds what the property of the same name returns."""
    context = SpanContext(0xABC, 0xDEF, remote, flags, TraceState([("k", "v")]))

    assert context[TRACE_ID] == context.trace_id == 0xABC
    assert context[SPAN_ID] == context.span_id == 0xDEF
    assert context[IS_REMOTE] is context.is_remote is remote
    assert context[TRACE_FLAGS] == context.trace_flags == flags
    assert bool(context[TRACE_FLAGS] & SAMPLED) is context.trace_flags.sampled
