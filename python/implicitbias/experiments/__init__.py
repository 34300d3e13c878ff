"""One module per paper's experiment: ``run(...) -> table`` and ``plot(table, out)``.

``REGISTRY`` maps the names used by ``implicitbias reproduce NAME`` to modules.
"""

from . import flatness, weightnorm

REGISTRY = {"flatness": flatness, "weightnorm": weightnorm}

__all__ = ["REGISTRY", "flatness", "weightnorm"]
