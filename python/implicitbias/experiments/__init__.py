"""The paper reproductions: sweep specs run by :mod:`implicitbias.sweep`, summarized and plotted from the store.

Each reproduction is one or more spec files in ``specs/`` (``specs/quick/``: the
seconds-long versions; ``implicitbias sweep SPEC --out DIR`` reruns any of
them) and a module with ``SPECS``, ``summarize(tables)`` and
``plot(tables, summary, out)``. ``REGISTRY`` maps the names used by
``implicitbias reproduce NAME`` to the modules; :func:`reproduce` runs one
(docs/reproductions.md).
"""

from . import edge, flatness, margins, phase, saddles, stepsize, weightnorm
from ._reproduce import reproduce, run, spec_path, specs, store_path

REGISTRY = {"flatness": flatness, "margins": margins, "phase": phase, "weightnorm": weightnorm, "saddles": saddles,
            "stepsize": stepsize, "edge": edge}

__all__ = ["REGISTRY", "edge", "flatness", "margins", "phase", "reproduce", "run", "saddles", "spec_path", "specs",
           "stepsize", "store_path", "weightnorm"]
