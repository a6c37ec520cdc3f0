"""The support matrix: the whole test suite on every supported CPython, and on the lowest versions.

``nox`` runs every cell whose interpreter is on the PATH (in CI, where ``CI`` is
set, a missing one is an error); ``nox -s tests-3.12`` runs one cell, ``nox -s
lowest`` the lowest OpenTelemetry and wrapt that ``pyproject.toml`` declares
(``tests/constraints/lowest.txt``) on the lowest Python, and ``nox -s lint`` the
checks. Arguments after ``--`` go to pytest: ``nox -s tests-3.13 -- tests/process``.
"""

from __future__ import annotations

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
"""The CPython versions the package supports (``requires-python``, the classifiers)."""

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lowest"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite with the newest versions the dependencies allow."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHONS[0])
def lowest(session: nox.Session) -> None:
    """The whole suite with the lowest versions pyproject.toml declares."""
    session.install("-e", ".[test]", "-c", "tests/constraints/lowest.txt")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy in strict mode, on the interpreter nox runs on."""
    session.install("-e", ".[test]", "nox")
    paths = ["otel_lifecycle", "tests", "benchmarks", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy")
