"""One module per paper's experiment: ``run(...) -> table`` and ``plot(table, out)``.

``REGISTRY`` maps the names used by ``implicitbias reproduce NAME`` to modules.
"""

from . import margins, weightnorm

REGISTRY = {"weightnorm": weightnorm, "margins": margins}

__all__ = ["REGISTRY", "margins", "weightnorm"]
