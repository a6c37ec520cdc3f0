"""What a signal handler reads of a span the interrupted thread was writing, on this SDK."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest
from opentelemetry.sdk.trace import Span, TracerProvider

from otel_lifecycle._core.interrupted import attribute_being_set, lock_is_free


@pytest.fixture
def span() -> Span:
    started = TracerProvider().get_tracer(__name__).start_span("s", attributes={"kept": 1})
    assert isinstance(started, Span)
    return started


def seen_between_delete_and_write(span: Span, key: str, value: object) -> list[dict[str, object]]:
    """``attribute_being_set`` at every line the SDK runs while ``key`` is missing from ``span``."""
    attributes = span._attributes
    seen: list[dict[str, object]] = []

    def trace_lines(frame: FrameType, event: str, arg: Any) -> Any:  # sys.settrace's type
        if frame.f_locals.get("self") is not attributes:
            return None
        if event == "line" and key not in attributes:  # type: ignore[operator]
            seen.append(attribute_being_set(span, frame))
        return trace_lines

    sys.settrace(trace_lines)
    try:
        span.set_attribute(key, value)  # type: ignore[arg-type]
    finally:
        sys.settrace(None)
    return seen


def test_a_rewritten_attribute_is_read_from_the_interrupted_frame(span: Span) -> None:
    seen = seen_between_delete_and_write(span, "kept", 2)
    assert seen, "the SDK no longer deletes a key before writing it: the reader is not needed"
    assert all(read == {"kept": 2} for read in seen)


def test_a_new_attribute_is_taken_only_in_its_cleaned_form(span: Span) -> None:
    seen = seen_between_delete_and_write(span, "tokens", ["a", "b"])
    assert {"tokens": ("a", "b")} in seen
    assert all(read in ({}, {"tokens": ("a", "b")}, {"tokens": ["a", "b"]}) for read in seen)


def test_a_value_of_no_attribute_type_is_not_taken(span: Span) -> None:
    seen = seen_between_delete_and_write(span, "bad", {"a": 1})
    assert seen
    assert all(read == {} for read in seen)


def test_nothing_is_read_outside_the_sdks_setter(span: Span) -> None:
    assert attribute_being_set(span, sys._getframe()) == {}


def test_the_lock_reader_sees_the_spans_own_lock(span: Span) -> None:
    assert lock_is_free(span)
    with span._lock:
        assert not lock_is_free(span)
    assert lock_is_free(span)
