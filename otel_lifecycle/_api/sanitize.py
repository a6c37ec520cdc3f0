"""Turn arbitrary Python values into safe, bounded JSON strings for span attributes.

:func:`sanitize` is used for ``input.value`` / ``output.value``: it converts any value into a
JSON-able tree (redacting secrets on the way), serializes it and caps its length. It never
executes user code it does not have to: iterators and generators are not consumed, ``str()`` and
``repr()`` are always guarded, and object identity (never ``__eq__``/``__hash__``) is used for
cycle detection.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import json
import math
import re
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from otel_lifecycle._settings.environment import (
    DEFAULT_MAX_VALUE_LENGTH,
    DEFAULT_REDACT_KEYS,
    MIN_MAX_VALUE_LENGTH,
)

REDACTED = "[REDACTED]"

_MAX_DEPTH = 32
_MAX_ITEMS = 1000
_TRUNCATED_KEY = "<truncated>"
_TRUNCATION_MARKER = "...[truncated {} chars]"
_UNSERIALIZABLE = json.dumps("<unserializable>")
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))

_Json = None | bool | int | float | str | list["_Json"] | dict[str, "_Json"]
_Matcher = Callable[[str], bool]


@functools.lru_cache(maxsize=32)
def _compile_matcher(words: frozenset[str]) -> _Matcher:
    alternatives = "|".join(sorted(re.escape(word.lower().replace("-", "_")) for word in words))
    search = re.compile(alternatives or "(?!)").search
    return functools.lru_cache(maxsize=1024)(
        lambda key: search(key.lower().replace("-", "_")) is not None
    )


_DEFAULT_MATCHER = _compile_matcher(frozenset(DEFAULT_REDACT_KEYS))


def _matcher_for(redact_keys: Collection[str]) -> _Matcher:
    if redact_keys is DEFAULT_REDACT_KEYS:
        return _DEFAULT_MATCHER
    if isinstance(redact_keys, (str, bytes)) or not isinstance(redact_keys, Collection):
        raise TypeError(
            f"redact_keys must be a collection of str, not {type(redact_keys).__name__}"
        )
    if not all(isinstance(key, str) for key in redact_keys):
        raise TypeError("redact_keys must only contain str items")
    if "" in redact_keys:
        raise ValueError("redact_keys must not contain an empty string")
    return _compile_matcher(frozenset(redact_keys))


class _State:
    __slots__ = ("budget", "dropped", "limit", "path", "redact")

    def __init__(self, redact: _Matcher, limit: int) -> None:
        self.redact = redact
        self.limit = limit
        self.budget = limit
        self.dropped = 0
        self.path: set[int] = set()

    def text(self, value: str) -> str:
        self.budget -= len(value) + 2
        if len(value) <= self.limit:
            return value
        self.dropped += len(value) - self.limit
        return value[: self.limit]


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001 - user code must never break tracing
        return f"<{type(obj).__name__} object (repr failed)>"


def _key_to_str(key: object) -> str:
    try:
        return str(key)
    except Exception:  # noqa: BLE001
        return _safe_repr(key)


def _convert(obj: object, state: _State, depth: int) -> _Json:
    if isinstance(obj, str):
        return state.text(obj if type(obj) is str else str.__str__(obj))
    if obj is None or isinstance(obj, bool):
        state.budget -= 4
        return obj
    if isinstance(obj, int):
        state.budget -= 1
        return int.__int__(obj)
    if isinstance(obj, float):
        state.budget -= 3
        number = float.__float__(obj)
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
    if isinstance(obj, (bytes, bytearray, memoryview)):
        size = obj.nbytes if isinstance(obj, memoryview) else len(obj)
        return state.text(f"<bytes len={size}>")
    if depth >= _MAX_DEPTH:
        return state.text("<max depth>")
    identity = id(obj)
    if identity in state.path:
        return state.text("<cycle>")
    state.path.add(identity)
    try:
        return _convert_object(obj, state, depth + 1)
    except Exception:  # noqa: BLE001 - a failing value must not hide the others
        return state.text(f"<{type(obj).__name__} object (unserializable)>")
    finally:
        state.path.discard(identity)


def _convert_object(obj: object, state: _State, depth: int) -> _Json:
    if isinstance(obj, (dict, Mapping)):
        return _convert_items(obj.items(), len(obj), state, depth)
    cls = type(obj)
    duck: Any = obj
    if isinstance(obj, tuple) and hasattr(cls, "_fields"):
        return _convert_items(zip(duck._fields, obj, strict=False), len(obj), state, depth)
    if isinstance(obj, (list, tuple, deque)):
        return _convert_sequence(obj, len(obj), state, depth, ordered=False)
    if isinstance(obj, (set, frozenset)):
        return _convert_sequence(obj, len(obj), state, depth, ordered=True)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [field.name for field in dataclasses.fields(obj)]
        pairs = ((name, getattr(obj, name)) for name in names)
        return _convert_items(pairs, len(names), state, depth)
    if isinstance(obj, enum.Enum):
        return _convert(obj.value, state, depth)
    if hasattr(cls, "model_dump"):
        return _convert(duck.model_dump(), state, depth)
    if hasattr(cls, "__fields__") and hasattr(cls, "dict"):
        return _convert(duck.dict(), state, depth)
    if hasattr(cls, "tolist") and (hasattr(cls, "shape") or hasattr(cls, "dtype")):
        size = getattr(obj, "size", 0)
        if not isinstance(size, int) or size <= _MAX_ITEMS:
            return _convert(duck.tolist(), state, depth)
    if isinstance(obj, (datetime.date, datetime.time)):
        return state.text(obj.isoformat())
    if isinstance(obj, (uuid.UUID, Decimal, PurePath)):
        return state.text(str(obj))
    if isinstance(obj, BaseException):
        return state.text(describe_exception(obj))
    attributes = getattr(obj, "__dict__", None)
    if cls.__repr__ is object.__repr__ and isinstance(attributes, dict):
        return _convert_items(attributes.items(), len(attributes), state, depth)
    return state.text(_safe_repr(obj))


def _convert_items(
    items: Iterable[tuple[object, object]], total: int, state: _State, depth: int
) -> dict[str, _Json]:
    state.budget -= 2
    result: dict[str, _Json] = {}
    for index, (key, value) in enumerate(items):
        if index >= _MAX_ITEMS or state.budget <= 0:
            result[_TRUNCATED_KEY] = f"<… {total - index} more items>"
            break
        name = state.text(key if type(key) is str else _key_to_str(key))
        result[name] = REDACTED if state.redact(name) else _convert(value, state, depth)
    return result


def _convert_sequence(
    items: Iterable[object], total: int, state: _State, depth: int, *, ordered: bool
) -> list[_Json]:
    state.budget -= 2
    result: list[_Json] = []
    marker: list[_Json] = []
    for index, item in enumerate(items):
        if index >= _MAX_ITEMS or state.budget <= 0:
            marker.append(f"<… {total - index} more items>")
            break
        result.append(_convert(item, state, depth))
    if ordered:
        result.sort(key=repr)
    return result + marker


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: message"`` (or ``"TypeName"``), even if the exception's ``str()`` raises."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001
        message = "<str failed>"
    return f"{name}: {message}" if message else name


def _truncate(text: str, max_length: int, dropped: int) -> str:
    removed = len(text) - max_length + dropped
    while True:
        marker = _TRUNCATION_MARKER.format(removed)
        keep = max_length - len(marker)
        if len(text) - keep + dropped == removed:
            return text[:keep] + marker
        removed = len(text) - keep + dropped


def sanitize(
    value: object,
    *,
    redact_keys: Collection[str] = DEFAULT_REDACT_KEYS,
    max_length: int = DEFAULT_MAX_VALUE_LENGTH,
) -> str:
    """Return ``value`` as a redacted JSON string of at most ``max_length`` characters.

    Conversion: ``None``/``bool``/``int``/``str`` are kept; non-finite floats become ``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"``; bytes-like values always become ``"<bytes len=N>"`` (never
    decoded, so binary payloads cannot leak); mappings become objects with ``str()`` keys; lists,
    tuples and deques become arrays; sets become arrays sorted by the repr of their converted
    items; namedtuples, dataclasses, pydantic-like models (``model_dump()`` or v1 ``dict()``) and
    objects with a ``__dict__`` and the default ``repr`` become objects of their fields;
    numpy-like values use ``tolist()`` (``repr()`` above 1000 elements); dates and times use
    ``isoformat()``; UUID, Decimal and paths use ``str()``; enums their value; exceptions become
    ``"TypeName: message"``; anything else, iterators and generators included (never consumed),
    uses ``repr()``, or ``"<TypeName object (repr failed)>"``.

    A mapping key or attribute name that contains one of ``redact_keys``, both lowercased with
    ``-`` read as ``_``, has its value replaced with ``"[REDACTED]"`` at any depth. Cycles become
    ``"<cycle>"``, nesting deeper than 32 levels ``"<max depth>"``; a container is cut after 1000
    items, or once about ``max_length`` characters were produced, with a last ``"<… N more
    items>"`` item (value of a ``"<truncated>"`` key in objects). A value whose conversion fails
    becomes ``"<TypeName object (unserializable)>"``; lone surrogates become ``?``.

    If the JSON text is longer than ``max_length``, it is cut and ``"...[truncated N chars]"`` is
    appended, giving exactly ``max_length`` characters; such a result is **not** valid JSON. ``N``
    counts the characters cut from the JSON text plus those cut beforehand from over-long strings
    (but not the items skipped by the budget above, which is then a lower bound).

    Exceptions raised by user code are swallowed (the last resort is ``'"<unserializable>"'``);
    only invalid arguments raise: :class:`TypeError` if ``max_length`` is not an ``int`` (``bool``
    included) or ``redact_keys`` is not a non-``str`` collection of ``str``, :class:`ValueError`
    if ``max_length`` is below 64 or ``redact_keys`` contains an empty string.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise TypeError(f"max_length must be an int, not {type(max_length).__name__}")
    if max_length < MIN_MAX_VALUE_LENGTH:
        raise ValueError(f"max_length must be >= {MIN_MAX_VALUE_LENGTH}, got {max_length}")
    redact = _matcher_for(redact_keys)
    try:
        state = _State(redact, max_length)
        text = _ENCODER.encode(_convert(value, state, 0))
        if not text.isascii():
            text = text.encode("utf-8", "replace").decode("utf-8")
        return text if len(text) <= max_length else _truncate(text, max_length, state.dropped)
    except Exception:  # noqa: BLE001 - last resort, sanitize() must never raise
        return _UNSERIALIZABLE
