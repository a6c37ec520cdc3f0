"""Packaging: the sdist and wheel as users get them, built and installed for real.

One test, marked ``packaging`` (deselect with ``-m "not packaging"``): it builds
the sdist from a copy of the source tree and the wheel from the unpacked sdist
with the installed setuptools (no build isolation, so no download), installs the
wheel without dependencies into a fresh venv that reaches this environment's
packages through a ``.pth`` file, runs the installed ``otel-lifecycle --version``
and collects the sdist's own test suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import otel_lifecycle
from tests._paths import ROOT

TIMEOUT = 120
SKIPPED_NAMES = {"__pycache__", "build", "dist"}


def run(*command: str | Path, cwd: Path) -> str:
    """Run ``command``; fail with its output unless it succeeds; return its stdout."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    completed = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, f"{command} failed:\n{completed.stdout}{completed.stderr}"
    return completed.stdout


def copy_source(target: Path) -> Path:
    """The source tree without VCS data, virtual environments, caches and build output."""

    def ignored(directory: str, names: list[str]) -> set[str]:
        return {
            name
            for name in names
            if name.startswith(".")
            or name in SKIPPED_NAMES
            or name.endswith(".egg-info")
            or (Path(directory, name) / "pyvenv.cfg").exists()
        }

    shutil.copytree(ROOT, target, ignore=ignored)
    return target


def build(hook: str, source: Path, outdir: Path) -> Path:
    """Call a setuptools PEP 517 build hook in ``source``; return the file it made."""
    code = f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))"
    name = run(sys.executable, "-c", code, outdir, cwd=source).strip().splitlines()[-1]
    return outdir / name


def fresh_venv(path: Path) -> Path:
    """A venv without pip whose ``sys.path`` ends with this environment's packages."""
    run(sys.executable, "-m", "venv", "--without-pip", path, cwd=path.parent)
    python = path / "bin" / "python"
    purelib = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=path
        ).strip()
    )
    ours = dict.fromkeys(sysconfig.get_path(kind) for kind in ("purelib", "platlib"))
    (purelib / "parent_environment.pth").write_text("".join(f"{line}\n" for line in ours))
    return python


@pytest.mark.packaging
def test_sdist_and_wheel_install_and_carry_a_working_test_suite(tmp_path: Path) -> None:
    version = otel_lifecycle.__version__
    dist = tmp_path / "dist"
    dist.mkdir()
    sdist = build("build_sdist", copy_source(tmp_path / "source"), dist)
    assert sdist.name == f"otel_lifecycle-{version}.tar.gz"
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(tmp_path / "unpacked", **options)  # type: ignore[arg-type]
    assert {"LICENSE", "tests/conftest.py", "tests/apps/journal_app.py"} <= members
    unpacked = tmp_path / "unpacked" / f"otel_lifecycle-{version}"

    wheel = build("build_wheel", unpacked, dist)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"otel_lifecycle-{version}.dist-info/METADATA").decode()
    assert f"otel_lifecycle-{version}.dist-info/licenses/LICENSE" in names
    assert "otel_lifecycle/py.typed" in names
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "Project-URL: Issues, https://github.com/otel-lifecycle/otel-lifecycle/issues" in (
        metadata.splitlines()
    )

    venv = tmp_path / "venv"
    python = fresh_venv(venv)
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-deps",
        wheel,
        cwd=tmp_path,
    )
    assert run(venv / "bin" / "otel-lifecycle", "--version", cwd=tmp_path) == (
        f"otel-lifecycle {version}\n"
    )
    imported = run(
        python, "-c", "import otel_lifecycle; print(otel_lifecycle.__file__)", cwd=tmp_path
    )
    assert Path(imported.strip()).is_relative_to(venv)

    collected = run(
        python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", cwd=unpacked
    )
    test_files = {line.split("::")[0] for line in collected.splitlines() if "::" in line}
    assert test_files == {
        path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").rglob("test_*.py")
    }
    assert re.fullmatch(r"\d+ tests collected in [\d.]+s", collected.splitlines()[-1]), collected
