"""Readers of the attributes ``@traced`` and ``span()`` write, shared by the API tests."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def input_of(span: ReadableSpan) -> Any:
    assert attrs(span)["input.mime_type"] == "application/json"
    return json.loads(attrs(span)["input.value"])


def output_of(span: ReadableSpan) -> Any:
    assert attrs(span)["output.mime_type"] == "application/json"
    return json.loads(attrs(span)["output.value"])


def assert_error(span: ReadableSpan, error_type: str, description: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == description
    assert attrs(span)["error.type"] == error_type


def exception_events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(event.attributes or {}) for event in span.events if event.name == "exception"]
