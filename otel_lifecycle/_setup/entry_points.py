"""Installed entry points by group and name, on every supported Python.

``importlib.metadata.entry_points(group=...)`` needs Python 3.10; on 3.9 the
function returns a dict of groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points


def find_entry_points(group: str, name: str | None = None) -> list[EntryPoint]:
    """The entry points of ``group`` (only those called ``name``, if given)."""
    installed = entry_points()
    members: Iterable[EntryPoint] = (
        installed.select(group=group) if hasattr(installed, "select") else installed.get(group, [])
    )
    return [entry for entry in members if name is None or entry.name == name]
