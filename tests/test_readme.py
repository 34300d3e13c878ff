"""The README as written: its two set-up commands, its three snippets (run as written, with the numbers
their comments quote), and its benchmark table (exactly what bench/render.py makes of the results file
it names). docs/claims.md lists every README number with the test that checks it.

These tests need the README beside the tests (a source checkout) and skip when it is not there (the
tests of an installed wheel run from a copy of tests/ alone).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import implicitbias as ib

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
pytestmark = pytest.mark.skipif(not README.is_file(), reason="README.md is not beside the tests")

SETUP = ['pip install ".[plot]" && implicitbias reproduce weightnorm --out results',
         'pip install ".[test]" && python -m pytest']


def _text() -> str:
    return README.read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", _text(), flags=re.MULTILINE | re.DOTALL)


def test_readme_is_short():
    assert len(_text().splitlines()) <= 200


def test_the_two_setup_commands_and_ci_runs_the_test_command():
    assert [b.strip() for b in _blocks("bash")] == SETUP
    ci = ROOT / ".ci" / "run"
    if ci.is_file():  # the CI script runs the README's test command as written (keep the two in sync),
        # as two consecutive lines so that `set -e` stops on a failing install (it ignores the left of `&&`)
        install, test = SETUP[1].split(" && ")
        lines = [line.strip() for line in ci.read_text().splitlines()]
        assert any(a.removeprefix("time ") == install and b == test for a, b in zip(lines, lines[1:]))


@pytest.fixture(scope="module")
def snippets() -> list[dict]:
    """The README's python blocks, run in order; the namespace after each."""
    blocks = _blocks("python")
    assert len(blocks) == 3  # one per family
    ns: dict = {}
    out = []
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md, python block {i + 1}", "exec"), ns)
        out.append(dict(ns))
    return out


NUMBER = r"~?-?\d+(?:\.\d+)?(?:e-?\d+)?"
QUOTED = rf"(?:{NUMBER}|'[^']*')"


def _agrees(value, quoted: str) -> bool:
    """A quoted number holds to one unit of its last digit; ``~`` with an exponent (an order of magnitude, e.g.
    an integrator's error) to a factor of 1.5; a quoted string exactly."""
    if quoted.startswith("'"):
        return value == quoted.strip("'")
    approx, q = quoted.startswith("~"), quoted.lstrip("~")
    mantissa, _, exponent = q.partition("e")
    if approx and exponent:
        return abs(float(value) - float(q)) <= 0.5 * abs(float(q))
    unit = 10.0 ** (-len(mantissa.partition(".")[2]) + (int(exponent) if exponent else 0))
    return abs(float(value) - float(q)) <= unit * (1 + 1e-9)


def test_every_number_a_snippet_comment_quotes(snippets):
    """Each line ``expression  # v1, v2: words`` of a snippet: the expression's values are the quoted ones."""
    checked = 0
    for block, ns in zip(_blocks("python"), snippets):
        for line in block.splitlines():
            code, sep, comment = line.partition("  # ")
            quoted = re.match(rf"\s*({QUOTED}(?:,\s*{QUOTED})*)(?::|$)", comment) if sep else None
            if not quoted:
                continue
            try:
                expr = compile(code.strip(), "README.md", "eval")
            except SyntaxError:  # an assignment or part of a longer statement
                continue
            value = eval(expr, dict(ns))
            values = value if isinstance(value, tuple) else (value,)
            items = [q.strip() for q in quoted.group(1).split(",")]
            assert len(values) == len(items), line
            for v, q in zip(values, items):
                assert _agrees(v, q), f"README.md: {code.strip()} is {v!r}, the comment says {q}"
                checked += 1
    assert checked >= 12


def test_diagonal_snippet_reaches_the_predicted_limits(snippets):
    ns = snippets[0]
    r, x_lim, d, w, x_eff = ns["r"], ns["x_lim"], ns["d"], ns["w"], ns["x_eff"]
    assert r.status == "converged" and np.linalg.norm(r.x - x_lim) <= 1e-6  # README: ~2e-7
    assert 0.3 <= np.linalg.norm(x_lim - d.x_star) <= 0.4  # README: ~0.34, not sparse
    assert np.linalg.norm(w.x - x_eff) <= 1e-6  # README: ~3e-7
    assert 0.01 <= np.linalg.norm(w.x - d.x_star) <= 0.02  # README: ~0.015
    assert w.invariant_drift() <= 1e-6  # docs/tutorial.md: ~3e-7 at rtol 1e-8


def test_steepest_snippet_maximizes_the_margin_of_its_own_norm(snippets):
    ns = snippets[1]
    sign, gd, best = ns["sign"], ns["gd"], ns["best"]
    assert 0.999 <= sign.margin("linf") / best["linf"] <= 1 + 1e-9  # README: 0.999
    assert 0.85 <= sign.margin("l2") / best["l2"] <= 0.89  # README: 0.87
    assert 0.70 <= gd.margin("linf") / best["linf"] <= 0.72  # README: 0.71
    assert 0.9999 <= gd.margin("l2") / best["l2"] <= 1 + 1e-9  # README: 0.9999


def test_factorization_snippet_finds_the_minimum_nuclear_norm(snippets):
    ns = snippets[2]
    flat, plain, nuc, op = ns["flat"], ns["plain"], ns["nuc"], ns["op"]
    assert flat.nuclear_norm / nuc == pytest.approx(1.0, abs=5e-3)  # README: ~1.00 (measured 0.99995)
    assert 4.5 <= plain.nuclear_norm / nuc <= 5.0  # README: ~4.7 (measured 4.74)
    assert ib.hessian.trace(flat.layers, op) == pytest.approx(104, rel=0.02)  # README: ~104
    assert ib.hessian.trace(plain.layers, op) == pytest.approx(1838, rel=0.02)  # README: ~1838


def test_benchmark_table_is_what_render_makes_of_the_named_results():
    text = _text()
    cmd = re.search(r"`python (bench/render\.py [^`]*--readme[^`]*)`", text)
    assert cmd, "the README names the render command of its table"
    args = shlex.split(cmd.group(1))
    script, results = ROOT / args[0], ROOT / args[1]
    if not script.is_file():
        pytest.skip("bench/ is not beside the tests")
    exclude = [args[i + 1] for i, a in enumerate(args) if a == "--exclude"]
    spec = importlib.util.spec_from_file_location("bench_render", script)
    assert spec and spec.loader
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    table = render.readme(json.loads(results.read_text()), exclude)
    generated = re.search(r"<!-- bench table: generated.*?-->\n(.*?)<!-- end of bench table -->", text, flags=re.DOTALL)
    assert generated, "the README marks its generated benchmark table"
    assert generated.group(1) == table
    assert re.search(r"Measured \d{4}-\d{2}-\d{2} on an? .+ CPU \(\d+ cores", table)  # the date and the CPU
