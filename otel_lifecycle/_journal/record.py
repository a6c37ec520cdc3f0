"""The crash journal's record of an open span, and the span re-created from it.

A record is JSON holding everything needed to export the span as a finished
span after its process died: name, kind, start time, trace flags and state, the
parent if any (local or remote), attributes, resource, instrumentation scope,
conversation id, and, once a recoverer adopted it, its ending (``ended``).
Attribute values are primitives or sequences of them; JSON turns sequences into
lists, which ``recovered_span`` turns back into tuples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState

from otel_lifecycle._core.finalize import PROCESS_CRASH, reason_attributes
from otel_lifecycle._journal.store import ClaimedRoot


def encode_root(span: Span, conversation_id: str | None) -> str:
    """The JSON record of the open span ``span``."""
    context = span.get_span_context()
    parent = span.parent
    scope = span.instrumentation_scope
    record: dict[str, Any] = {
        "name": span.name,
        "kind": span.kind.name,
        "start_time": span.start_time,
        "trace_flags": int(context.trace_flags),
        "trace_state": list(context.trace_state.items()),
        "parent": None
        if parent is None
        else [
            parent.span_id,
            int(parent.trace_flags),
            list(parent.trace_state.items()),
            parent.is_remote,
        ],
        "attributes": dict(span.attributes or {}),
        "resource": dict(span.resource.attributes),
        "resource_schema_url": span.resource.schema_url,
        "scope": None if scope is None else [scope.name, scope.version, scope.schema_url],
        "conversation_id": conversation_id,
    }
    return json.dumps(record, separators=(",", ":"), default=str)


def recovered_span(root: ClaimedRoot) -> ReadableSpan:
    """The finished span for a span whose process died: ERROR, ``process_crash``.

    It ends at its owner's last heartbeat (kept in the record by the first
    recoverer that adopted it), never before it started.
    """
    trace_id, span_id = root.trace_id, root.span_id
    data = json.loads(root.record)
    parent = data["parent"]
    scope = data["scope"]
    start_time = int(data["start_time"])
    attributes: dict[str, object] = _tuples(data["attributes"])
    attributes.update(reason_attributes(PROCESS_CRASH, data["conversation_id"]))
    return ReadableSpan(
        name=data["name"],
        context=SpanContext(
            trace_id,
            span_id,
            is_remote=False,
            trace_flags=TraceFlags(data["trace_flags"]),
            trace_state=TraceState(data["trace_state"]),
        ),
        parent=None
        if parent is None
        else SpanContext(
            trace_id,
            parent[0],
            is_remote=parent[3] if len(parent) > 3 else True,
            trace_flags=TraceFlags(parent[1]),
            trace_state=TraceState(parent[2]),
        ),
        resource=Resource(_tuples(data["resource"]), data["resource_schema_url"]),
        attributes=attributes,  # type: ignore[arg-type]
        kind=SpanKind[data["kind"]],
        status=PROCESS_CRASH.status,
        start_time=start_time,
        end_time=max(int(data.get("ended", root.heartbeat_ns)), start_time),
        instrumentation_scope=None if scope is None else InstrumentationScope(*scope),
    )


def _tuples(values: Mapping[str, object]) -> dict[str, Any]:
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in values.items()
    }
