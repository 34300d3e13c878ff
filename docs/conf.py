"""Sphinx configuration of the implicitbias documentation site.

Build (warnings are errors; the package must be importable, e.g. installed):

    pip install ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html

Pages are Markdown (MyST). The mathematics lives in one file, ``science.md``; the family pages
include its sections, so nothing is written twice. The pages own their content: the README is a
short summary that links to them (no page includes it). New pages: put ``docs/<name>.md`` beside this file; the last entry of
the toctree in ``index.md`` (a glob) lists every top-level page not listed before it.
"""

from __future__ import annotations

import implicitbias

project = "implicitbias"
author = "implicitbias developers"
copyright = "2026, implicitbias developers"
release = implicitbias.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# not pages: build output, figures, and files that pages include rather than show
exclude_patterns = ["_build", "figures", "_templates", "Thumbs.db", ".DS_Store", "**/.ipynb_checkpoints"]
templates_path = ["_templates"]

# MyST: $...$ and $$...$$ math as written in science.md, heading anchors for links into sections
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# API reference: autosummary pages generated from the docstrings, numpydoc renders their sections
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's __all__ is its public API
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"  # numpydoc's Parameters sections give the types
numpydoc_show_class_members = False  # autosummary lists the members
numpydoc_xref_param_type = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = f"implicitbias {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
