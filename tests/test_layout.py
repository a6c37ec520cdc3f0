"""The package's layout: imports flow one way between its packages, none go round, none too long.

Every module of ``otel_lifecycle/`` is parsed with ``ast``; every import of
``otel_lifecycle`` counts wherever it is (at the top, inside a function, under
``if TYPE_CHECKING:``, or a constant ``importlib.import_module`` string), since
each is a dependency of the module, whenever it runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from pathlib import Path

import otel_lifecycle

PACKAGE = otel_lifecycle.__name__
PACKAGE_DIR = Path(otel_lifecycle.__file__).parent
MAX_LINES = 400

PUBLIC_API = PACKAGE
"""The layer of ``otel_lifecycle/__init__.py``."""

BELOW_SETUP = frozenset(
    {"_version", "_settings", "_core", "_api", "_journal", "_process", "_console", "_processor"}
)
"""Every layer but ``_setup``, the public API, ``_cli`` and ``__main__``."""

ALLOWED: Mapping[str, Set[str]] = {
    # The version literal that pyproject.toml, --version and the metrics scope read: the bottom.
    "_version": frozenset(),
    # Every environment variable, its default, argument checks: nothing of ours but the version.
    "_settings": frozenset({"_version"}),
    # A span's way from on_start to the exporter; knows no signals, journal, decorators or CLI.
    "_core": frozenset({"_settings", "_version"}),
    # @traced, span(), fail(), set_output(), sanitizing: on the core's names and ids only.
    "_api": frozenset({"_core", "_settings", "_version"}),
    # The crash journal: given an exporter, it never builds one.
    "_journal": frozenset({"_core", "_settings", "_version"}),
    # Signals, excepthooks, atexit, fork, servers: processors only through _core.active.
    "_process": frozenset({"_core", "_settings", "_version"}),
    # The development console's tree exporter.
    "_console": frozenset({"_core", "_settings", "_version"}),
    # LifecycleSpanProcessor: the core, the journal and the process hooks put together.
    "_processor": frozenset({"_core", "_journal", "_process", "_settings", "_version"}),
    # configure() and opentelemetry-instrument's hooks: everything but the command line
    # and the public API (which imports _setup).
    "_setup": BELOW_SETUP,
    # The public API (otel_lifecycle/__init__.py) re-exports everything but the command line.
    PUBLIC_API: BELOW_SETUP | {"_setup"},
    # The command line: everything; nothing imports it but __main__.
    "_cli": BELOW_SETUP | {"_setup", PUBLIC_API},
    # ``python -m otel_lifecycle``: runs the command.
    "__main__": frozenset({"_cli"}),
}
"""Which layers each layer may import; a layer may always import its own modules."""


@dataclass(frozen=True)
class Import:
    """One import of a module of ours, where it is written."""

    source: str
    """The importing module, ``otel_lifecycle._cli.demo``."""
    location: str
    """``otel_lifecycle/_cli/demo.py:21``."""
    statement: str
    target: str
    """The module imported: a submodule when one is named, else the package."""

    def __str__(self) -> str:
        return f"{self.location}: {self.statement}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def layer(module: str) -> str:
    """``_core`` for ``otel_lifecycle._core.export``; the public API for ``otel_lifecycle``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PUBLIC_API


def is_ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(f"{PACKAGE}.")


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE_DIR.parent).as_posix()


def python_files() -> list[Path]:
    return sorted(path for path in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in path.parts)


MODULES = {module_name(path): path for path in python_files()}


def absolute(node: ast.ImportFrom, source: str, is_package: bool) -> str | None:
    """The module a ``from ... import`` names, relative imports resolved."""
    if node.level == 0:
        return node.module
    package = source.split(".") if is_package else source.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_in(
    tree: ast.AST, source: str, location: str, is_package: bool, modules: Set[str]
) -> Iterator[Import]:
    """Every import of ``otel_lifecycle`` anywhere in ``tree``."""
    for node in ast.walk(tree):
        where = f"{location}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_ours(alias.name):
                    yield Import(source, where, ast.unparse(node), alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, source, is_package)
            if base is None or not is_ours(base):
                continue
            named = (f"{base}.{alias.name}" for alias in node.names)
            for target in dict.fromkeys(name if name in modules else base for name in named):
                yield Import(source, where, ast.unparse(node), target)
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in {"import_module", "__import__"}
                )
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and is_ours(node.args[0].value)
        ):
            yield Import(source, where, ast.unparse(node), node.args[0].value)


def package_imports() -> list[Import]:
    found: list[Import] = []
    for source, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        found.extend(imports_in(tree, source, relative(path), is_package, MODULES.keys()))
    return found


def strongly_connected(graph: Mapping[str, Set[str]]) -> list[frozenset[str]]:
    """Tarjan's strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            components.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles_inside_packages() -> dict[frozenset[str], list[Import]]:
    """Each import cycle between modules of one package, with the imports that make it."""
    inside = [
        found
        for found in package_imports()
        if layer(found.source) == layer(found.target)
        and (PACKAGE_DIR / layer(found.source)).is_dir()
    ]
    graph: dict[str, set[str]] = {}
    for found in inside:
        graph.setdefault(found.source, set()).add(found.target)
    return {
        component: [
            found for found in inside if found.source in component and found.target in component
        ]
        for component in strongly_connected(graph)
        if len(component) > 1 or any(node in graph.get(node, ()) for node in component)
    }


def test_the_table_has_every_layer_and_its_layers_form_no_cycle() -> None:
    """Each package and top-level module is in ALLOWED, and the table itself only flows down."""
    layers = {layer(module) for module in MODULES}
    assert sorted(layers - set(ALLOWED)) == [], "layers missing from ALLOWED"
    assert sorted(set(ALLOWED) - layers) == [], "ALLOWED names layers that do not exist"
    assert sorted(set().union(*ALLOWED.values()) - set(ALLOWED)) == [], "unknown layers allowed"
    cycles = [
        component
        for component in strongly_connected(ALLOWED)
        if len(component) > 1 or any(node in ALLOWED[node] for node in component)
    ]
    assert cycles == [], "ALLOWED lets layers import each other"


def against_the_direction(imports: Iterable[Import]) -> list[str]:
    """Each import of a layer its module's layer may not import, said with what it may import."""
    return [
        f"{found}: {layer(found.source)} may not import {layer(found.target)}"
        f" (it may import {', '.join(sorted(ALLOWED[layer(found.source)])) or 'nothing of ours'})"
        for found in imports
        if layer(found.target) not in ALLOWED[layer(found.source)] | {layer(found.source)}
    ]


def test_imports_flow_only_the_allowed_way_between_layers() -> None:
    violations = against_the_direction(package_imports())
    assert violations == [], "imports against the direction:\n" + "\n".join(violations)


def test_no_import_cycle_between_modules_of_a_package() -> None:
    cycles = cycles_inside_packages()
    assert cycles == {}, "import cycles:\n" + "\n".join(
        f"{' <-> '.join(sorted(component))}:\n" + "\n".join(f"  {found}" for found in imports)
        for component, imports in cycles.items()
    )


def test_every_package_has_an_init_with_a_docstring() -> None:
    """Each package says in its ``__init__.py`` docstring what it owns and may import."""
    problems = []
    for directory in sorted([PACKAGE_DIR, *PACKAGE_DIR.rglob("*")]):
        if not directory.is_dir() or directory.name == "__pycache__":
            continue
        init = directory / "__init__.py"
        if not init.is_file():
            problems.append(f"{relative(directory)}/: no __init__.py")
        elif not ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))):
            problems.append(f"{relative(init)}: no docstring")
    assert problems == [], "\n".join(problems)


def test_no_module_is_over_the_line_limit() -> None:
    """One concept per module: a module that grows past MAX_LINES is split, not excused."""
    over = {
        relative(path): count
        for path in MODULES.values()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert over == {}, f"over {MAX_LINES} lines, split them: {over}"


SAMPLE = '''
"""A sample module, as if it were otel_lifecycle/_core/sample.py."""
import importlib
from typing import TYPE_CHECKING

import json
import otel_lifecycle._settings.environment
from otel_lifecycle import _version
from otel_lifecycle._core import export, semconv as names
from . import finalize
from .threads import background
from .. import _journal
from .._cli.main import main

if TYPE_CHECKING:
    from otel_lifecycle._api.traced import traced


def later():
    from otel_lifecycle._process.hooks import register
    importlib.import_module("otel_lifecycle._console.exporter")
    importlib.import_module("json")
'''


def sample_imports() -> list[Import]:
    found = imports_in(
        ast.parse(SAMPLE),
        "otel_lifecycle._core.sample",
        "otel_lifecycle/_core/sample.py",
        is_package=False,
        modules=MODULES.keys(),
    )
    return sorted(found, key=lambda each: int(each.location.rsplit(":", 1)[1]))


def test_the_import_finder_sees_every_kind_of_import() -> None:
    """Top-level, relative, in a function, under TYPE_CHECKING, by import_module; nothing else."""
    assert [(each.location, each.target) for each in sample_imports()] == [
        ("otel_lifecycle/_core/sample.py:7", "otel_lifecycle._settings.environment"),
        ("otel_lifecycle/_core/sample.py:8", "otel_lifecycle._version"),
        ("otel_lifecycle/_core/sample.py:9", "otel_lifecycle._core.export"),
        ("otel_lifecycle/_core/sample.py:9", "otel_lifecycle._core.semconv"),
        ("otel_lifecycle/_core/sample.py:10", "otel_lifecycle._core.finalize"),
        ("otel_lifecycle/_core/sample.py:11", "otel_lifecycle._core.threads"),
        ("otel_lifecycle/_core/sample.py:12", "otel_lifecycle._journal"),
        ("otel_lifecycle/_core/sample.py:13", "otel_lifecycle._cli.main"),
        ("otel_lifecycle/_core/sample.py:16", "otel_lifecycle._api.traced"),
        ("otel_lifecycle/_core/sample.py:20", "otel_lifecycle._process.hooks"),
        ("otel_lifecycle/_core/sample.py:21", "otel_lifecycle._console.exporter"),
    ]


def test_a_violation_names_the_module_the_line_and_the_import() -> None:
    may = "(it may import _settings, _version)"
    assert against_the_direction(sample_imports()) == [
        f"otel_lifecycle/_core/sample.py:12: from .. import _journal:"
        f" _core may not import _journal {may}",
        f"otel_lifecycle/_core/sample.py:13: from .._cli.main import main:"
        f" _core may not import _cli {may}",
        f"otel_lifecycle/_core/sample.py:16: from otel_lifecycle._api.traced import traced:"
        f" _core may not import _api {may}",
        f"otel_lifecycle/_core/sample.py:20: from otel_lifecycle._process.hooks import register:"
        f" _core may not import _process {may}",
        f"otel_lifecycle/_core/sample.py:21:"
        f" importlib.import_module('otel_lifecycle._console.exporter'):"
        f" _core may not import _console {may}",
    ]


def test_strongly_connected_finds_each_cycle_once() -> None:
    graph = {"a": {"b"}, "b": {"c", "a"}, "c": set(), "d": {"d"}, "e": {"c"}}
    assert sorted(map(sorted, strongly_connected(graph))) == [["a", "b"], ["c"], ["d"], ["e"]]
