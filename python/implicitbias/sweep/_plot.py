"""Phase diagrams: the mean of a value over the cells of two columns of a sweep table, as a heatmap."""

from __future__ import annotations

from typing import Any

import numpy as np


def phase_table(df: Any, x: str, y: str, value: str, agg: str = "mean") -> Any:
    """The pivot table ``agg(value)`` per cell (rows: ``y`` values, columns: ``x`` values, both sorted).

    A boolean ``value`` (e.g. a success column) gives the probability per cell with ``agg="mean"``.
    """
    for name in (x, y, value):
        if name not in df.columns:
            raise ValueError(f"column {name!r} is not in the table; columns: {', '.join(map(str, df.columns))}")
    v = df[value].astype(float)
    return v.groupby([df[y], df[x]]).agg(agg).unstack(x).sort_index().sort_index(axis=1)


def _labels(values: Any) -> list[str]:
    return [f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v) for v in values]


def plot_phase(df: Any, x: str, y: str, value: str, *, agg: str = "mean", ax: Any = None, title: str | None = None,
               vmin: float | None = 0.0, vmax: float | None = 1.0, cmap: str = "viridis", overlay: Any = None,
               level: float = 0.5, colorbar: bool = True, label: str | None = None) -> Any:
    """Draw ``agg(value)`` over the cells (``x``, ``y``) of a sweep table as a heatmap; returns the Axes.

    Every distinct value of ``x`` / ``y`` is one column / row of cells (evenly
    spaced, labelled with the value), so log-spaced axes look even.
    ``overlay``: a table of the same cells (from :func:`phase_table`) whose
    ``level`` contour is drawn over the heatmap in white (e.g. the basis-pursuit
    transition at probability 1/2). ``vmin``/``vmax`` fix the color scale (None:
    the data's range); ``label``: the color bar's label (default ``"{agg} of {value}"``).
    Needs matplotlib (the ``plot`` extra).
    """
    from .._plotting import pyplot

    plt = pyplot()
    table = phase_table(df, x, y, value, agg)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.9))
    mesh = ax.imshow(table.to_numpy(), origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                     interpolation="nearest")
    step_x = max(1, len(table.columns) // 8)
    step_y = max(1, len(table.index) // 8)
    ax.set_xticks(range(0, len(table.columns), step_x))
    ax.set_xticklabels(_labels(table.columns[::step_x]), rotation=45, fontsize=7)
    ax.set_yticks(range(0, len(table.index), step_y))
    ax.set_yticklabels(_labels(table.index[::step_y]), fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if overlay is not None:
        grid = overlay.reindex(index=table.index, columns=table.columns).to_numpy(dtype=float)
        if np.nanmin(grid) < level < np.nanmax(grid):
            ax.contour(np.arange(grid.shape[1]), np.arange(grid.shape[0]), grid, levels=[level], colors="white",
                       linewidths=1.5)
    if title is not None:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label=label or f"{agg} of {value}")
    return ax
