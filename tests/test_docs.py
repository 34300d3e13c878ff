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
