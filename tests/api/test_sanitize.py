"""Tests for ``otel_lifecycle._api.sanitize``: conversion, redaction, bounds and robustness."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import time
import uuid
from collections import OrderedDict, deque, namedtuple
from collections.abc import Iterator
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pytest

from otel_lifecycle._api.sanitize import REDACTED, sanitize
from otel_lifecycle._settings.environment import DEFAULT_MAX_VALUE_LENGTH, DEFAULT_REDACT_KEYS


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Credentials:
    user: str
    api_key: str
    extra: dict[str, object] = dataclasses.field(default_factory=dict)


class FakeModel:
    """Duck-typed pydantic v2 model."""

    def __init__(self, **fields: object) -> None:
        self._fields = fields

    def model_dump(self) -> dict[str, object]:
        return dict(self._fields)


class FakeV1Model:
    """Duck-typed pydantic v1 model."""

    __fields__ = ("name", "token")

    def dict(self) -> dict[str, object]:
        return {"name": "v1", "token": "t0k3n"}


class BrokenModel:
    def model_dump(self) -> dict[str, object]:
        raise RuntimeError("boom")


class FakeArray:
    """Duck-typed numpy array."""

    shape = (2, 2)
    dtype = "int64"

    def __init__(self, size: int = 4) -> None:
        self.size = size

    def tolist(self) -> list[list[int]]:
        return [[1, 2], [3, 4]]

    def __repr__(self) -> str:
        return f"FakeArray(size={self.size})"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Plain:
    def __init__(self) -> None:
        self.name = "plain"
        self.password = "hunter2"


class HostileKey:
    """Hashable while it is inserted into a dict, then every dunder raises."""

    armed = False

    def __hash__(self) -> int:
        if self.armed:
            raise RuntimeError("hash")
        return 1

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __repr__(self) -> str:
        raise RuntimeError("repr")


class BadMessageError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


Point = namedtuple("Point", ["x", "token"])


def _generator() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (1.5, "1.5"),
        (math.nan, '"NaN"'),
        (math.inf, '"Infinity"'),
        (-math.inf, '"-Infinity"'),
        ("héllo", '"héllo"'),
        ('quo"te', '"quo\\"te"'),
        ("", '""'),
        (b"\x00\xff", '"<bytes len=2>"'),
        (bytearray(b"abc"), '"<bytes len=3>"'),
        (memoryview(b"abcd"), '"<bytes len=4>"'),
        ([1, "a", None], '[1,"a",null]'),
        ((1, 2), "[1,2]"),
        (deque([1]), "[1]"),
        ({3, 1, 2}, "[1,2,3]"),
        (frozenset({"b", "a"}), '["a","b"]'),
        ({}, "{}"),
        ({1: "a", None: "b", (1, 2): "c"}, '{"1":"a","None":"b","(1, 2)":"c"}'),
        (OrderedDict(a=1), '{"a":1}'),
        (Point(1, "t"), '{"x":1,"token":"[REDACTED]"}'),
        (Color.RED, '"red"'),
        (Level.HIGH, "3"),
        (datetime.datetime(2024, 1, 2, 3, 4, 5), '"2024-01-02T03:04:05"'),
        (datetime.date(2024, 1, 2), '"2024-01-02"'),
        (datetime.time(3, 4), '"03:04:00"'),
        (uuid.UUID(int=1), '"00000000-0000-0000-0000-000000000001"'),
        (Decimal("1.10"), '"1.10"'),
        (PurePosixPath("/tmp/x"), '"/tmp/x"'),
        (ValueError("bad value"), '"ValueError: bad value"'),
        (KeyError(), '"KeyError"'),
        (BadMessageError(), '"BadMessageError: <str failed>"'),
        (range(3), '"range(0, 3)"'),
        (Plain(), '{"name":"plain","password":"[REDACTED]"}'),
        (BadRepr(), '"<BadRepr object (repr failed)>"'),
        (BrokenModel(), '"<BrokenModel object (unserializable)>"'),
        (FakeModel(a=1, secret="s"), '{"a":1,"secret":"[REDACTED]"}'),
        (FakeV1Model(), '{"name":"v1","token":"[REDACTED]"}'),
        (FakeArray(), "[[1,2],[3,4]]"),
        (FakeArray(size=10**6), '"FakeArray(size=1000000)"'),
    ],
)
def test_exact_output(value: object, expected: str) -> None:
    assert sanitize(value) == expected


def test_iterators_are_not_consumed() -> None:
    generator = _generator()
    iterator = iter([1, 2])
    assert sanitize(generator).startswith('"<generator object _generator')
    assert sanitize(iterator).startswith('"<list_iterator object')
    assert next(generator) == 1
    assert list(iterator) == [1, 2]


@pytest.mark.parametrize(
    ("key", "redacted"),
    [
        ("password", True),
        ("user_password", True),
        ("PASSWORD", True),
        ("X-Api-Key", True),
        ("x_api_key", True),
        ("Authorization", True),
        ("refresh_token", True),
        ("Set-Cookie", True),
        ("client-secret", True),
        ("Session-Key", True),
        ("passwd", True),
        ("privateKey", False),
        ("monkey", False),
        ("Accept", False),
    ],
)
def test_default_redaction_keys(key: str, redacted: bool) -> None:
    assert json.loads(sanitize({key: "v"})) == {key: REDACTED if redacted else "v"}


def test_redaction_at_depth() -> None:
    value = {
        "request": [
            {"headers": {"X-Api-Key": "k", "Authorization": "Bearer x", "Accept": "*/*"}},
            Credentials(user="bob", api_key="k2", extra={"nested": [{"token": "t"}]}),
        ],
        "token": {"whole": "subtree"},
    }
    assert sanitize(value) == (
        '{"request":[{"headers":{"X-Api-Key":"[REDACTED]","Authorization":"[REDACTED]",'
        '"Accept":"*/*"}},{"user":"bob","api_key":"[REDACTED]","extra":{"nested":'
        '[{"token":"[REDACTED]"}]}}],"token":"[REDACTED]"}'
    )


@pytest.mark.parametrize(
    ("redact_keys", "expected"),
    [
        (["SSN"], '{"ssn":"[REDACTED]","password":"p","customer-ssn":"[REDACTED]"}'),
        (("customer_ssn",), '{"ssn":1,"password":"p","customer-ssn":"[REDACTED]"}'),
        (frozenset(), '{"ssn":1,"password":"p","customer-ssn":2}'),
    ],
)
def test_custom_redact_keys(redact_keys: Any, expected: str) -> None:
    value = {"ssn": 1, "password": "p", "customer-ssn": 2}
    assert sanitize(value, redact_keys=redact_keys) == expected


def test_redacted_keys_are_stringified_first() -> None:
    assert (
        sanitize({b"password": 1, Color.RED: 2}) == '{"b\'password\'":"[REDACTED]","Color.RED":2}'
    )


def test_self_referencing_list() -> None:
    value: list[object] = [1]
    value.append(value)
    assert sanitize(value) == '[1,"<cycle>"]'


def test_self_referencing_dict() -> None:
    value: dict[str, object] = {"a": 1}
    value["self"] = value
    value["inner"] = [value, {"x": value}]
    assert sanitize(value) == '{"a":1,"self":"<cycle>","inner":["<cycle>",{"x":"<cycle>"}]}'


def test_shared_objects_are_not_cycles() -> None:
    shared = [1]
    assert sanitize([shared, shared]) == "[[1],[1]]"


def test_deep_nesting_is_cut() -> None:
    value: list[object] = []
    for _ in range(200):
        value = [value]
    assert sanitize(value) == "[" * 32 + '"<max depth>"' + "]" * 32


def test_breadth_limit_with_marker() -> None:
    result = json.loads(sanitize(list(range(1500)), max_length=100_000))
    assert result[:1000] == list(range(1000))
    assert result[1000:] == ["<… 500 more items>"]
    mapping = json.loads(sanitize({f"k{i}": i for i in range(1002)}, max_length=100_000))
    assert len(mapping) == 1001
    assert mapping["<truncated>"] == "<… 2 more items>"


def test_hostile_dict_key() -> None:
    key = HostileKey()
    value = {key: "v", "ok": 1}
    HostileKey.armed = True
    try:
        assert sanitize(value) == '{"<HostileKey object (repr failed)>":"v","ok":1}'
    finally:
        HostileKey.armed = False


def test_huge_list_is_fast_and_bounded() -> None:
    value = list(range(1_000_000))
    start = time.perf_counter()
    default = sanitize(value)
    small = sanitize(value, max_length=1000)
    assert time.perf_counter() - start < 0.5
    assert len(default) <= DEFAULT_MAX_VALUE_LENGTH
    assert default.endswith(',"<… 999000 more items>"]')
    assert len(small) == 1000
    assert small.startswith("[0,1,2,")
    assert small.endswith(" chars]")
    assert "...[truncated " in small


def test_huge_string_is_truncated_with_exact_count() -> None:
    result = sanitize("x" * 10_000, max_length=100)
    assert len(result) == 100
    marker = "...[truncated 9927 chars]"  # the full JSON text has 10_002 characters
    assert result == '"' + "x" * (100 - len(marker) - 1) + marker


def test_output_within_limit_is_untouched() -> None:
    value = "y" * 62
    assert sanitize(value, max_length=64) == json.dumps(value)
    assert sanitize(value + "y", max_length=64).endswith("...[truncated 24 chars]")


def test_lone_surrogate_is_replaced() -> None:
    assert sanitize("a\ud800b") == '"a?b"'


def test_defaults() -> None:
    assert DEFAULT_MAX_VALUE_LENGTH == 4096
    assert "api_key" in DEFAULT_REDACT_KEYS
    assert REDACTED == "[REDACTED]"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_length": 63}, ValueError),
        ({"max_length": 0}, ValueError),
        ({"max_length": True}, TypeError),
        ({"max_length": 100.0}, TypeError),
        ({"max_length": "100"}, TypeError),
        ({"redact_keys": "password"}, TypeError),
        ({"redact_keys": b"password"}, TypeError),
        ({"redact_keys": None}, TypeError),
        ({"redact_keys": [1]}, TypeError),
        ({"redact_keys": [""]}, ValueError),
    ],
)
def test_argument_validation(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        sanitize({"a": 1}, **kwargs)
