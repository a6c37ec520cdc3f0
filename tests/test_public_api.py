"""The public API: ``otel_lifecycle.__all__`` is exactly these names, and nothing else is public."""

from __future__ import annotations
import __future__

import types

import pytest

import otel_lifecycle
import otel_lifecycle._core

PUBLIC_API = [
    "ConsoleTreeSpanExporter",
    "LifecycleConfigurator",
    "LifecycleSpanProcessor",
    "LifecycleStats",
    "RecoveryError",
    "TracedSpan",
    "__version__",
    "configure",
    "conversation",
    "fail",
    "processors",
    "recover",
    "set_output",
    "span",
    "traced",
]
"""Adding or removing a public name is a decision: change this list with the package."""


def test_all_is_exactly_the_public_api() -> None:
    assert otel_lifecycle.__all__ == PUBLIC_API


def test_all_is_sorted_without_duplicates() -> None:
    assert otel_lifecycle.__all__ == sorted(set(otel_lifecycle.__all__))


@pytest.mark.parametrize("name", PUBLIC_API)
def test_each_name_is_importable_from_the_package(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from otel_lifecycle import {name}", namespace)
    assert namespace[name] is getattr(otel_lifecycle, name)


def test_a_star_import_binds_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from otel_lifecycle import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == otel_lifecycle.__all__


def added_by_python(name: str, value: object) -> bool:
    """A name Python binds in a package that is not part of its API.

    A submodule or subpackage, bound on the package when it is imported (the
    attribute's module is ``otel_lifecycle.<name>`` itself, not one imported
    from elsewhere), and ``annotations`` of ``from __future__ import annotations``.
    """
    if isinstance(value, types.ModuleType):
        return value.__name__ == f"{otel_lifecycle.__name__}.{name}"
    return name == "annotations" and value is __future__.annotations


def test_no_other_public_name_in_the_package() -> None:
    """Every name without a leading underscore in ``dir()`` is in ``__all__``, or Python's own."""
    public = {
        name: getattr(otel_lifecycle, name)
        for name in dir(otel_lifecycle)
        if not name.startswith("_")
    }
    unlisted = sorted(
        name
        for name, value in public.items()
        if name not in otel_lifecycle.__all__ and not added_by_python(name, value)
    )
    assert unlisted == [], f"public in otel_lifecycle but not in __all__: {unlisted}"
    assert sorted(set(public) & set(otel_lifecycle.__all__)) == [
        name for name in PUBLIC_API if not name.startswith("_")
    ]


def test_the_exclusions_of_python_names_are_exact() -> None:
    """Only a submodule of the package itself, or the real ``__future__`` feature, is excused."""
    assert added_by_python("annotations", __future__.annotations)
    assert not added_by_python("annotations", object())
    assert added_by_python("_core", otel_lifecycle._core)
    assert not added_by_python("os", types)
    assert not added_by_python("types", types)
    assert not added_by_python("span", otel_lifecycle.span)
