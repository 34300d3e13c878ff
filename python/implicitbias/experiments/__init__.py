"""One module per paper's experiment: ``run(...) -> table`` and ``plot(table, out)``.

``REGISTRY`` maps the names used by ``implicitbias reproduce NAME`` to modules.
"""

from . import weightnorm

REGISTRY = {"weightnorm": weightnorm}

__all__ = ["REGISTRY", "weightnorm"]
