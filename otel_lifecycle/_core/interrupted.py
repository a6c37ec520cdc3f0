"""What a signal handler can read of the state the thread it interrupted left a span in.

Both read the SDK's private span internals; tests pin them against every
supported SDK version.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import FrameType

from opentelemetry.sdk.trace import Span


def lock_is_free(span: Span) -> bool:
    """Whether nobody holds the span's own lock now (pinned by a test against the SDK)."""
    lock = span._lock
    if not lock.acquire(blocking=False):
        return False
    lock.release()
    return True


def attribute_being_set(span: Span, frame: FrameType | None) -> dict[str, object]:
    """The attribute this thread's interrupted frames were writing into ``span``, if any.

    The SDK's ``BoundedAttributes`` (``__setitem__`` up to 1.40,
    ``_setitem_locked`` since) deletes a key before it writes it again: a
    signal in between finds the span without it. Reading this thread's own
    frames is safe: they do not run meanwhile. Only a key that is missing now
    and a value already of an attribute's type are taken.
    """
    attributes: Mapping[str, object] | None = span._attributes
    if attributes is None:
        return {}
    has = attributes.__contains__
    while frame is not None:
        local = frame.f_locals if frame.f_code.co_name in _SETTERS else {}
        if local.get("self") is not attributes:
            frame = frame.f_back
            continue
        key, value = local.get("key"), local.get("value")
        if isinstance(key, str) and not has(key) and _is_attribute_value(value):
            return {key: value}
        return {}
    return {}


_SETTERS = frozenset({"__setitem__", "_setitem_locked"})
_PRIMITIVES = (str, bool, int, float)


def _is_attribute_value(value: object) -> bool:
    """Whether ``value`` is a primitive or a sequence of primitives (what the SDK stores)."""
    if isinstance(value, (tuple, list)):
        return all(isinstance(item, _PRIMITIVES) for item in value)
    return isinstance(value, _PRIMITIVES)
