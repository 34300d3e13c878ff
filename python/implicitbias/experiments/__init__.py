"""One module per paper's experiment: ``run(...) -> table`` and ``plot(table, out)``.

``REGISTRY`` maps the names used by ``implicitbias reproduce NAME`` to modules.
"""

from . import flatness, margins, phase, weightnorm

REGISTRY = {"flatness": flatness, "margins": margins, "phase": phase, "weightnorm": weightnorm}

__all__ = ["REGISTRY", "flatness", "margins", "phase", "weightnorm"]
