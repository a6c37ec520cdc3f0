"""Attribute names written by otel_lifecycle, and the ones it reads."""

from __future__ import annotations

CONVERSATION_ID = "gen_ai.conversation.id"
"""GenAI semantic convention for the conversation (session, thread) id."""

ERROR_TYPE = "error.type"
"""Stable semantic convention: a low-cardinality reason the operation failed."""

FINALIZED_BY = "otel_lifecycle.finalized_by"
"""Why the processor, not the application, ended the span."""

DROPPED_DESCENDANTS = "otel_lifecycle.dropped_descendants"
"""On a local root: how many of its descendants the full export queue dropped (best effort)."""

STATE = "otel_lifecycle.state"
"""``in_progress`` on the snapshot markers exported by ``force_flush``."""

STATE_IN_PROGRESS = "in_progress"

INPUT_VALUE = "input.value"
"""The input of an operation (OpenInference, read by Phoenix and Langfuse)."""

INPUT_MIME_TYPE = "input.mime_type"
"""The media type of ``input.value``."""

OUTPUT_VALUE = "output.value"
"""The output of an operation (OpenInference, read by Phoenix and Langfuse)."""

OUTPUT_MIME_TYPE = "output.mime_type"
"""The media type of ``output.value``."""

JSON_MIME_TYPE = "application/json"
"""What otel_lifecycle records input and output values as."""
