"""matplotlib for the figures (phase diagrams, reproductions): an optional dependency (the ``plot`` extra)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

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


def plot_spectral_density(sd: Any, ax: Any = None, *, band: float = 2.0, log: bool = False,
                          label: str | None = None, color: str | None = None) -> Any:
    """Draw a :class:`~implicitbias.hessian.SpectralDensity`: the density against the eigenvalue axis
    with a band of +-``band`` standard errors (per point, over the probes); ``log`` puts the density on a
    log axis (where the band reaches below zero it is drawn down to 1% of the density). Returns the axes."""
    if ax is None:
        _, ax = pyplot().subplots(figsize=(5.0, 3.2), layout="constrained")
    (line,) = ax.plot(sd.grid, sd.density, label=label, color=color)
    se = sd.stderr
    if se is not None and np.all(np.isfinite(se)):
        lo = sd.density - band * se
        if log:
            lo = np.maximum(lo, 0.01 * sd.density)
        ax.fill_between(sd.grid, lo, sd.density + band * se, alpha=0.25, color=line.get_color(), linewidth=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel(f"density (width {sd.width:.3g})")
    if label is not None:
        ax.legend()
    return ax
