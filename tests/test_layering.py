"""Import layering of the package: core -> families -> sweep -> experiments / CLI, one way, no cycles.

Every import is read with ``ast`` (module-level and inside functions). A
module may import its own layer or the ones below, never one above; no two
modules import each other, directly or around a cycle; and the sweep, the
experiments and the CLI use no private name of another module (except
``sweep/_adapters.py``, the one place that reads the families' declarations).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "implicitbias"
FAMILIES = {"diagonal", "steepest", "factorization", "hessian", "torch"}  # torch: the bridge to hessian
LAYERS = ("core", "families", "sweep", "experiments", "cli")
ADAPTERS = "sweep._adapters"
pytestmark = pytest.mark.skipif(not PACKAGE.is_dir(), reason="the source tree is not beside the tests")


def layer(module: str) -> int:
    """core (0): the helpers, data, reference; families (1); sweep (2); experiments (3); cli (4)."""
    top = module.split(".")[0]
    if top == "cli":
        return 4
    if top in ("experiments", "sweep"):
        return LAYERS.index(top)
    return 1 if top in FAMILIES else 0


def sources() -> dict[str, str]:
    """Module name (``sweep._spec``; a package is its name, the root is "") -> source text."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path.read_text()
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) of one import statement, inside the package only."""
    if isinstance(node, ast.Import):
        return [(a.name.removeprefix("implicitbias").lstrip("."), None) for a in node.names
                if a.name == "implicitbias" or a.name.startswith("implicitbias.")]
    if node.level == 0:
        if not (node.module or "").startswith("implicitbias"):
            return []
        base = node.module.removeprefix("implicitbias").lstrip(".")
    else:
        here = module.split(".") if module else []
        package = here if is_package else here[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    return [(base, a.name) for a in node.names]


def imports(srcs: dict[str, str]) -> list[tuple[str, str, str | None, int]]:
    """Every (importer, imported module, name, line) of the package; ``from . import x`` of a
    submodule x is an import of that submodule."""
    out = []
    packages = {m for m in srcs if any(o.startswith(m + ".") for o in srcs if m)}
    for module, text in srcs.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target, name in _resolve(module, module in packages or module == "", node):
                    sub = f"{target}.{name}" if target and name else name
                    if name is not None and sub in srcs:
                        target, name = sub, None
                    out.append((module, target, name, node.lineno))
    return out


def violations(srcs: dict[str, str]) -> list[str]:
    """The rules broken by these sources (empty: the layering holds)."""
    edges = [(a, b, name, line) for a, b, name, line in imports(srcs) if a and b and a != b]
    bad = [f"{a}:{line} imports {b} (layer {LAYERS[layer(b)]} above {LAYERS[layer(a)]})"
           for a, b, _, line in edges if layer(b) > layer(a)]
    for a, b, name, line in edges:
        private = name is not None and name.startswith("_") and not name.startswith("__")
        if private and layer(a) >= 2 and a != ADAPTERS and b.split(".")[0] != a.split(".")[0]:
            bad.append(f"{a}:{line} imports the private name {name} of {b}")
    graph: dict[str, set[str]] = {}
    for a, b, _, _ in edges:
        graph.setdefault(a, set()).add(b)
    bad += [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    bad += _private_attributes(srcs)
    return bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that lies on one (depth-first search)."""
    found, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    return found


def _private_attributes(srcs: dict[str, str]) -> list[str]:
    """``mod._name`` in the sweep, experiments and CLI, where ``mod`` is another package module."""
    bad = []
    modules = {name.rsplit(".", 1)[-1] for name in srcs if name}
    for module, text in srcs.items():
        if not module or layer(module) < 2 or module == ADAPTERS:
            continue
        for node in ast.walk(ast.parse(text)):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.value.id != module.rsplit(".", 1)[-1]):
                bad.append(f"{module}:{node.lineno} uses the private name {node.value.id}.{node.attr}")
    return bad


def test_the_package_is_layered_one_way_without_cycles_or_private_imports():
    srcs = sources()
    assert {"sweep._spec", "sweep._families", "experiments.phase", "cli", "diagonal", "_batch"} <= set(srcs)
    edges = {(a, b) for a, b, _, _ in imports(srcs)}
    assert ("experiments.phase", "sweep") in edges and ("sweep._families", "sweep._adapters") in edges
    assert violations(srcs) == []


@pytest.mark.parametrize("module, line, expected", [
    ("sweep._plot", "from ..experiments._reproduce import save", "layer experiments above sweep"),
    ("sweep._families", "from . import _spec", "import cycle"),
    ("diagonal", "def f():\n    from .sweep import run", "layer sweep above families"),
    ("experiments.phase", "from ..diagonal import _PER_RUN", "private name _PER_RUN"),
    ("sweep._runner", "import implicitbias.steepest as steepest\nx = steepest._METHODS", "steepest._METHODS"),
])
def test_the_check_fails_when_a_loop_or_a_private_import_comes_back(module, line, expected):
    srcs = sources()
    srcs[module] += "\n" + line + "\n"
    assert any(expected in v for v in violations(srcs)), violations(srcs)
