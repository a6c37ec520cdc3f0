"""Attribute names written by otel_lifecycle, and the ones it reads."""

from __future__ import annotations

CONVERSATION_ID = "gen_ai.conversation.id"
"""GenAI semantic convention for the conversation (session, thread) id."""

ERROR_TYPE = "error.type"
"""Stable semantic convention: a low-cardinality reason the operation failed."""

FINALIZED_BY = "otel_lifecycle.finalized_by"
"""Why the processor, not the application, ended the span."""

STATE = "otel_lifecycle.state"
"""``in_progress`` on the snapshot markers exported by ``force_flush``."""

STATE_IN_PROGRESS = "in_progress"
