"""Code-shape rules of the package: no function in python/implicitbias longer than 80 lines (its
docstring not counted: a public function's signature and numpydoc may take more)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "implicitbias"
MAX_LINES = 80


def _functions() -> list[tuple[str, int]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                doc = node.body[0] if ast.get_docstring(node) is not None else None
                doc_lines = 0 if doc is None else doc.end_lineno - doc.lineno + 1
                out.append((f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}",
                            node.end_lineno - first + 1 - doc_lines))
    return out


@pytest.mark.skipif(not PACKAGE.is_dir(), reason="the source tree is not beside the tests")
def test_no_function_is_longer_than_80_lines():
    functions = _functions()
    assert len(functions) > 100  # the walk found the package
    long = [(name, n) for name, n in functions if n > MAX_LINES]
    assert not long, f"functions over {MAX_LINES} lines: {long}"


BINDINGS = Path(__file__).resolve().parents[1] / "cpp" / "bindings"


@pytest.mark.skipif(not BINDINGS.is_dir(), reason="the source tree is not beside the tests")
def test_every_bound_type_is_module_local():
    """Three ISA variants of the core are loaded side by side: a type registered globally by one variant
    would clash with (or be silently reused by) another, so every py::class_ / py::enum_ is module_local."""
    import re

    found = 0
    for path in sorted(BINDINGS.glob("*.[ch]pp")):
        text = re.sub(r"//[^\n]*", "", path.read_text())  # comments do not count
        for m in re.finditer(r"py::(class_|enum_)<", text):
            found += 1
            call = text[m.start():text.index(";", m.start())]
            assert "py::module_local()" in call, f"{path.name}: {call[:80]!r} is not module_local"
    assert found >= 20, found  # the scan sees the bindings
