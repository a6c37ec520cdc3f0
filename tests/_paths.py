"""Paths the tests share: the repository root and the apps that tests run as subprocesses."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent
"""The repository (or unpacked sdist) root: ``README.md``, ``pyproject.toml``, ``tests/``."""
APPS = ROOT / "tests" / "apps"
"""Scripts run with ``sys.executable`` by tests of several folders."""
