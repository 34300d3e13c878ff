"""Reproduction: the edge of stability of full-batch GD on a deep linear network, SAM, and the flow.

Cohen, Kaur, Li, Kolter & Talwalkar, "Gradient Descent on Neural Networks
Typically Occurs at the Edge of Stability" (arXiv 2103.00065); for SAM, Long &
Bartlett, "Sharpness-Aware Minimization and the Edge of Stability" (arXiv
2309.12488); docs/reproductions.md ("Edge of stability") and docs/science.md,
section 3.9.

Setup: their minimal deep linear network, sized for 2 cores: whitened
regression ``data.whitened_regression(n=20, d_in=20)`` (``X^T X / n = I``,
``Y = X A^T``), 10 bias-free 20 x 20 layers from ``init_scale = 1`` (fan-in
Gaussian), loss ``(1/n) ||E X^T - Y^T||_F^2``: a step ``lr`` of GD is stable
along a Hessian eigenvector only while its eigenvalue is below ``2 / lr``.
Full-batch GD and SAM (constant radius ``rho``) at several step sizes and
gradient flow from the same initialization, each recording its sharpness
(the top Hessian eigenvalue, ``record_sharpness``) and loss.

Reported per run (:func:`summarize`, table ``sharpness``): the median sharpness
over the second half of training relative to ``2 / lr`` (``median_ratio``, with
its 10% and 90% quantiles), whether the run reached the threshold
(``reaches``: its largest recorded sharpness is at least 0.95 * 2 / lr), the
time at which GD leaves the flow (``t_depart``: the first record where the
two sharpnesses differ by more than :data:`DEPART_TOL` relatively) against the
time at which the flow's sharpness, past its minimum, crosses ``2 / lr``
(``t_flow_cross``: progressive sharpening); for SAM, the threshold of its
linearized update at the final gradient ``g``,
``lambda_SAM = (||g|| / (2 rho)) (sqrt(1 + 8 rho / (lr ||g||)) - 1)`` (below
``2 / lr``; Long & Bartlett), and the final sharpness against it. Table
``flow``: the flow's sharpness (start, minimum, end).

The runs are the spec ``specs/edge.toml`` (``specs/quick/``: one seed, three
step sizes, SAM at one), run by :mod:`implicitbias.sweep`; the summary and the
figure are computed from its store (the problem is regenerated from the spec's
generator and seed for the SAM threshold).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import data, factorization
from .._plotting import pyplot
from ._reproduce import save

NAME = "edge"
SPECS = ("edge",)
DEPART_TOL = 0.1  # GD leaves the flow where their sharpnesses differ by more than 10%
REACH = 0.95  # a run reaches the edge when its largest sharpness is at least 0.95 * 2 / lr


def _series(row: Any, key: str) -> np.ndarray:
    return np.asarray(row[f"history.{key}"], dtype=np.float64)


def _positive(row: Any, key: str) -> tuple[np.ndarray, np.ndarray]:
    """A history channel at the record times t > 0 (the figure's time axis is logarithmic)."""
    t = _series(row, "t")
    return t[t > 0], _series(row, key)[t > 0]


def problem_of(df: Any, seed: int) -> Any:
    """The :class:`implicitbias.data.Regression` of one seed, regenerated from the spec's generator."""
    problem = dict(df.attrs["spec"]["problem"])
    return getattr(data, problem.pop("generator"))(**problem, seed=int(seed))


def sam_threshold(grad_norm: float, lr: float, rho: float) -> float:
    """The largest stable eigenvalue of SAM's update linearized at a point of gradient norm ``grad_norm``.

    Along an eigenvector of eigenvalue ``lam`` SAM multiplies the component by
    ``1 - lr lam (1 + rho lam / ||g||)``; it is stable while
    ``lr lam (1 + rho lam / ||g||) <= 2``, i.e. ``lam <= (||g|| / (2 rho)) (sqrt(1 + 8 rho / (lr ||g||)) - 1)``
    (``2 / lr`` when ``rho -> 0``).
    """
    if rho == 0.0:
        return 2.0 / lr
    return grad_norm / (2.0 * rho) * (np.sqrt(1.0 + 8.0 * rho / (lr * grad_norm)) - 1.0)


def flow_crossing(t: np.ndarray, s: np.ndarray, level: float) -> float:
    """The first time after the flow's sharpness minimum at which it reaches ``level`` (NaN if it never
    does, or if even the minimum is above it: the level is not crossed by sharpening)."""
    i0 = int(np.nanargmin(s))
    if s[i0] >= level:
        return float("nan")
    above = np.flatnonzero(s[i0:] >= level)
    return float(t[i0 + above[0]]) if above.size else float("nan")


def departure(t: np.ndarray, s: np.ndarray, t_flow: np.ndarray, s_flow: np.ndarray) -> float:
    """The first record time of a run at which its sharpness differs from the flow's (interpolated in time)
    by more than :data:`DEPART_TOL` relatively; NaN if it never does within the flow's time range."""
    inside = t <= t_flow[-1]
    ref = np.interp(t[inside], t_flow, s_flow)
    off = np.flatnonzero(np.abs(s[inside] - ref) > DEPART_TOL * ref)
    return float(t[inside][off[0]]) if off.size else float("nan")


def summarize(tables: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """``sharpness`` (one row per GD/SAM run, the module docstring's columns) and ``flow`` (per seed)."""
    import pandas as pd

    df = tables["edge"]
    flows = {int(r["seed"]): r for _, r in df[df["method"] == "flow"].iterrows()}
    rows, frows = [], []
    for seed, f in sorted(flows.items()):
        s = _series(f, "sharpness")
        frows.append({"seed": seed, "status": f["status"], "t_final": float(f["t_final"]), "loss": float(f["loss"]),
                      "sharpness_start": float(s[0]), "sharpness_min": float(np.nanmin(s)),
                      "t_min": float(_series(f, "t")[int(np.nanargmin(s))]), "sharpness_end": float(s[-1])})
    for _, r in df[df["method"] != "flow"].sort_values(["seed", "method", "lr"]).iterrows():
        seed, lr, rho = int(r["seed"]), float(r["lr"]), float(r["fit.sam_radius"])
        t, s, res = _series(r, "t"), _series(r, "sharpness"), _series(r, "sharpness_residual")
        edge = 2.0 / lr
        second = s[len(s) // 2:]
        row = {"seed": seed, "method": r["method"], "lr": lr, "sam_radius": rho, "two_over_lr": edge,
               "status": r["status"], "loss": float(r["loss"]), "sharpness_start": float(s[0]),
               "sharpness_max": float(np.nanmax(s)), "sharpness_end": float(s[-1]),
               "median_ratio": float(np.nanmedian(second)) / edge,
               "q10_ratio": float(np.nanquantile(second, 0.1)) / edge,
               "q90_ratio": float(np.nanquantile(second, 0.9)) / edge,
               "reaches": bool(np.nanmax(s) >= REACH * edge),
               "max_rel_residual": float(np.nanmax(res / np.abs(s))),
               "t_depart": float("nan"), "t_flow_cross": float("nan"), "flow_at_depart_ratio": float("nan"),
               "grad_norm_end": float("nan"), "sam_threshold_end": float("nan"), "end_over_sam_threshold": float("nan")}
        if seed in flows:
            tf, sf = _series(flows[seed], "t"), _series(flows[seed], "sharpness")
            row["t_depart"] = departure(t, s, tf, sf)
            row["t_flow_cross"] = flow_crossing(tf, sf, edge)
            if np.isfinite(row["t_depart"]):
                row["flow_at_depart_ratio"] = float(np.interp(row["t_depart"], tf, sf)) / edge
        if r["method"] == "sam":
            p = problem_of(df, seed)
            dims = [p.X.shape[1]] + [int(r["width"])] * (int(r["depth"]) - 1) + [p.Y.shape[1]]
            layers = factorization.unpack(dims, np.asarray(r["params"], dtype=np.float64))
            g = float(np.sqrt(sum(float(np.sum(G**2)) for G in factorization.gradient(layers, p.X, p.Y))))
            row["grad_norm_end"] = g
            row["sam_threshold_end"] = float(sam_threshold(g, lr, rho))
            row["end_over_sam_threshold"] = float(s[-1]) / row["sam_threshold_end"]
        rows.append(row)
    return {"sharpness": pd.DataFrame(rows), "flow": pd.DataFrame(frows)}


def plot(tables: dict[str, Any], summary: dict[str, Any], out: str) -> list[str]:
    """Draw the figure (PNG) under ``out`` for the first seed; returns its path."""
    plt = pyplot()
    df = tables["edge"]
    seed = int(min(df["seed"]))
    df = df[df["seed"] == seed]
    flow = df[df["method"] == "flow"]
    lrs = sorted(set(df.loc[df["method"] != "flow", "lr"]))
    colors = dict(zip(lrs, plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(lrs)))))
    fig, axes = plt.subplots(2, 2, figsize=(11.0, 7.0), sharex=True)
    for row, method, title in ((0, "descent", "GD"), (1, "sam", "SAM")):
        runs = df[df["method"] == method].sort_values("lr")
        rho = float(runs["fit.sam_radius"].iloc[0]) if len(runs) else 0.0
        ax_s, ax_l = axes[row]
        for _, r in runs.iterrows():
            lr, c = float(r["lr"]), colors[float(r["lr"])]
            ax_s.plot(*_positive(r, "sharpness"), color=c, lw=1.0, label=f"lr = {lr:g}")
            ax_s.axhline(2.0 / lr, color=c, ls="--", lw=0.8)
            ax_l.plot(*_positive(r, "loss"), color=c, lw=0.9, label=f"lr = {lr:g}")
        for _, f in flow.iterrows():
            ax_s.plot(*_positive(f, "sharpness"), color="black", lw=1.4, label="gradient flow")
            ax_l.plot(*_positive(f, "loss"), color="black", lw=1.4, label="gradient flow")
        name = title if method == "descent" else f"{title} (rho = {rho:g})"
        ax_s.set_title(f"{name}: sharpness (dashed: 2 / lr)", fontsize=9)
        ax_l.set_title(f"{name}: training loss", fontsize=9)
        ax_s.set_ylabel("top Hessian eigenvalue")
        ax_l.set_ylabel("(1/n) ||E X^T - Y^T||^2")
        ax_l.set_yscale("log")
        for ax in (ax_s, ax_l):
            ax.set_xscale("log")
            ax.grid(True, which="major", alpha=0.3)
        ax_s.legend(fontsize=7, loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("t = steps * lr (flow: time)")
    problem = df.attrs["spec"]["problem"]
    fit = df.attrs["spec"]["fit"]
    fig.suptitle(f"Edge of stability: deep linear network, depth {fit['depth']}, width {fit['width']}, whitened "
                 f"regression n = {problem['n']}, d = {problem['d_in']}, seed {seed}", fontsize=10)
    return [save(plt, fig, out, f"{NAME}_sharpness.png", 80)]
