"""matplotlib for the figures (phase diagrams, reproductions): an optional dependency (the ``plot`` extra)."""

from __future__ import annotations

from types import ModuleType

MISSING = (
    "the figures of implicitbias' experiments need matplotlib, which is not installed: "
    "pip install 'implicitbias[plot]' (or, from a source checkout, pip install '.[plot]')"
)


def available() -> bool:
    """Whether matplotlib can be imported (without importing pyplot)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend; a clear ImportError when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
