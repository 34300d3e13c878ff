"""The type stubs of the compiled core list exactly what the module exports (regenerate them with
tools/make_stubs.sh)."""

from __future__ import annotations

import ast
from pathlib import Path

import implicitbias
from implicitbias._native import core


def test_core_stub_matches_the_compiled_module():
    stub = Path(implicitbias.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    exported = {k for k in dir(core) if not k.startswith("_")}
    assert {k for k in stubbed if not k.startswith("_")} == exported
    # every stubbed function's parameters are the binding's keyword names
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            doc = getattr(core, node.name).__doc__ or ""
            names = [a.arg for a in node.args.args]
            for name in names:
                assert f"{name}:" in doc.split("\n")[0], (node.name, name)


def test_core_stub_classes_match_the_compiled_classes():
    """Every class of the stub has exactly the public members of the compiled class: methods, properties
    and enum values (a value added to or removed from an enum, or a field of a run struct, shows here)."""
    stub = Path(implicitbias.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes
    for node in classes:
        stubbed = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        stubbed |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        compiled = {k for k in dir(getattr(core, node.name)) if not k.startswith("_")}
        assert {k for k in stubbed if not k.startswith("_")} == compiled, node.name
