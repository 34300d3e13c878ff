"""The documentation site: the tutorial's code runs as written, and the site's sources are complete.

The Sphinx build itself (``sphinx-build -W``) runs in CI (``.ci/run``); these tests need the
docs/ directory beside the tests (a source checkout) and skip when it is not there (the tests of
an installed wheel run from a copy of tests/ alone).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
needs_docs = pytest.mark.skipif(not (DOCS / "conf.py").is_file(), reason="docs/ is not beside the tests")


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.MULTILINE | re.DOTALL)


@needs_docs
def test_tutorial_runs_as_written(capsys):
    blocks = _python_blocks(DOCS / "tutorial.md")
    assert len(blocks) >= 4
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"tutorial.md, block {i + 1}", "exec"), namespace)
    assert "converged" in capsys.readouterr().out  # the printed result of the flow


@needs_docs
def test_science_markers_included_by_the_family_pages_exist():
    science = (DOCS / "science.md").read_text()
    pages = list((DOCS / "families").glob("*.md")) + [DOCS / "numerics.md"]
    markers = [m for page in pages for m in re.findall(r':(?:start-after|end-before): "(.*)"', page.read_text())]
    assert len(markers) == 2 * (len(pages) + 1)  # numerics.md includes section 4 and the references
    for marker in markers:
        assert science.count(marker) == 1, marker


# --------------------------------------------------------------------------- docs/vocabulary.md against the code
FAMILIES = {"D": "diagonal", "S": "steepest", "F": "factorization"}
DATA_ARGS = {"A", "X", "y"}


def _vocabulary_tables() -> tuple[list[list[str]], list[list[str]]]:
    """The rows (cells) of the vocabulary table and of the defaults table."""
    text = (DOCS / "vocabulary.md").read_text()
    main, rest = text.split("\n## Defaults\n", 1)
    defaults = rest.split("\n## ", 1)[0]

    def rows(part: str) -> list[list[str]]:
        return [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
                for line in part.splitlines() if line.startswith("| ") and not line.startswith("|---")][1:]
    return rows(main), rows(defaults)


def _families(where: str) -> set[str]:
    return set(re.findall(r"\b[DSF]\b", where.split("(")[0]))


def _module(letter: str):
    import implicitbias
    return getattr(implicitbias, FAMILIES[letter])


def _keyword_defaults(fn) -> dict:
    import inspect
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if n not in DATA_ARGS}


def _accepted_choices(letter: str, name: str) -> set[str]:
    """The string values ``name`` accepts, from the ValueError a wrong one raises (the public message)."""
    import numpy as np
    rng = np.random.default_rng(0)
    args = {"D": (rng.standard_normal((3, 5)), np.ones(3)),
            "S": (rng.standard_normal((4, 3)), np.array([1.0, -1.0, 1.0, -1.0])),
            "F": (rng.standard_normal((3, 2, 2)), np.ones(3))}[letter]
    extra = {"lr": 0.1} if letter == "F" else {}
    with pytest.raises(ValueError, match=name) as err:
        _module(letter).fit(*args, **{**extra, name: "no-such-choice"})
    listed = str(err.value).split("one of", 1)[1].split("got")[0]
    return set(re.findall(r"'([^']+)'", listed))


@needs_docs
def test_vocabulary_lists_each_argument_for_the_families_that_take_it():
    main, _ = _vocabulary_tables()
    signatures = {k: set(_keyword_defaults(_module(k).fit_many)) for k in FAMILIES}
    checked = 0
    for name_cell, meaning, where in (r for r in main if len(r) == 3):
        if name_cell.startswith("**Results**"):
            break  # the rest are result attributes and measurement kinds
        if meaning.startswith("result attribute") or not where:
            continue
        for name in re.findall(r"`(\w+)`", name_cell):
            fams = _families(where)
            for k, params in signatures.items():
                assert (name in params) == (k in fams), (name, k, where)
            checked += 1
    assert checked >= 30


@needs_docs
def test_vocabulary_lists_the_choices_each_argument_accepts():
    main, _ = _vocabulary_tables()
    rows: dict[str, list[str]] = {}
    for r in main:  # the first row of a name: `loss` (argument) comes before `loss` (result)
        names = re.findall(r"`(\w+)`", r[0]) if len(r) == 3 else []
        if names:
            rows.setdefault(names[0], r)
    for name in ("method", "solver", "weight_norm", "norm", "optimizer", "schedule", "loss"):
        _, meaning, where = rows[name]
        accepted = set().union(*(_accepted_choices(k, name) for k in _families(where)))
        assert set(re.findall(r'`"(\w+)"`', meaning)) == accepted, name


@needs_docs
def test_vocabulary_defaults_are_the_signatures_defaults():
    import ast
    _, defaults = _vocabulary_tables()
    table = {r[0].strip("`"): dict(zip("DSF", r[1:4])) for r in defaults}
    for k in FAMILIES:
        mod = _module(k)
        for fn in (mod.fit_many, mod.fit):  # fit takes the same arguments with the same defaults
            actual = _keyword_defaults(fn)
            documented = {n: c[k] for n, c in table.items() if c[k] != "-"}
            assert set(documented) == set(actual), (fn.__qualname__, set(documented) ^ set(actual))
            for name, cell in documented.items():
                value = ast.literal_eval(cell.strip("`"))
                assert type(value) is type(actual[name]) or {type(value), type(actual[name])} <= {int, float}, \
                    (k, name, cell, actual[name])
                assert value == actual[name], (k, name, cell, actual[name])


@needs_docs
def test_vocabulary_says_which_solver_none_chooses():
    import numpy as np

    import implicitbias as ib
    _, defaults = _vocabulary_tables()
    means = next(r[4] for r in defaults if r[0] == "`solver`")
    plain = re.search(r'`"(\w+)"` for a plain flow', means).group(1)
    normalized = re.search(r'`"(\w+)"` under weight normalization', means).group(1)
    d = ib.data.sparse_regression(10, 20, 2, seed=0)
    for chosen, kw in ((plain, {}), (normalized, {"weight_norm": "joint", "lr_ratio": 10.0, "atol": 1e-14})):
        auto = ib.diagonal.fit(d.A, d.y, rtol=1e-6, **kw)
        named = ib.diagonal.fit(d.A, d.y, rtol=1e-6, solver=chosen, **kw)
        assert np.array_equal(auto.x, named.x) and auto.n_grad_evals == named.n_grad_evals, (chosen, kw)


@needs_docs
def test_no_page_includes_the_readme():
    # the docs own their content; the README links to them
    for page in DOCS.rglob("*.md"):
        assert "../README.md" not in page.read_text(), page
