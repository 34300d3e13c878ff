"""One module per paper's experiment: ``run(...) -> table`` and ``plot(table, out)``.

``REGISTRY`` maps the names used by ``implicitbias reproduce NAME`` to modules.
"""

from . import flatness, margins, weightnorm

REGISTRY = {"flatness": flatness, "margins": margins, "weightnorm": weightnorm}

__all__ = ["REGISTRY", "flatness", "margins", "weightnorm"]
