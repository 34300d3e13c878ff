"""Reproduction: weight normalization keeps the sparse bias of diagonal networks.

Chou, Rauhut & Ward, "Robust Implicit Regularization via Weight Normalization"
(arXiv 2305.05448); docs/science.md, section 1.

Setup: signed diagonal network ``x = u^L - v^L``, depth L in {2, 3}, Gaussian
sensing ``A`` (M = 40, N = 100, N(0, 1/M) entries), planted ``s = 4``-sparse
``x_star``, noiseless ``y = A x_star``. For each init scale alpha (1e-3 .. 1)
and seed, gradient flow is run to its limit (loss at the integrator's
accuracy) plainly and with joint weight normalization at lr_ratio kappa in
{1, 10, 100}. Reported: the recovery error ``||x - x_star||_2`` (median and
quartiles over seeds) against alpha, with the error of the minimum-l1
interpolator (basis pursuit) as the reference; and, at alpha = 0.1, the error
and the loss against time.

The runs are the specs ``specs/weightnorm.toml`` and
``specs/weightnorm_trajectories.toml`` (``specs/quick/``: the seconds-long
version), run by :mod:`implicitbias.sweep`; the summary and the figures are
computed from their stores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._plotting import pyplot
from ._reproduce import save

NAME = "weightnorm"
SPECS = ("weightnorm", "weightnorm_trajectories")
CONFIGS = {("none", 1.0): "plain", ("joint", 1.0): "WN k=1", ("joint", 10.0): "WN k=10", ("joint", 100.0): "WN k=100"}
COLORS = {"plain": "black", "WN k=1": "tab:blue", "WN k=10": "tab:orange", "WN k=100": "tab:red"}


def config(df: Any) -> list[str]:
    """The flow's label of each row (``plain``, ``WN k=KAPPA``)."""
    return [CONFIGS[(w, k)] for w, k in zip(df["fit.weight_norm"], df["fit.lr_ratio"])]


def time_to_loss(t: Any, loss: Any, factor: float = 1e-8) -> float:
    """The first recorded time at which the loss is at most ``factor`` times its start (NaN if never)."""
    loss = np.asarray(loss)
    reached = np.flatnonzero(loss <= factor * loss[0])
    return float(np.asarray(t)[reached[0]]) if reached.size else float("nan")


def summarize(tables: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Median and quartiles of the error per (depth, config, init_scale), and how fast the loss fell:
    the median flow time to a loss of 1e-8 of its start over the runs that reached it (NaN if none
    did), how many reached it, and the median number of gradient evaluations."""
    import pandas as pd

    df = tables["weightnorm"]
    keys = pd.DataFrame({"depth": df["fit.depth"], "config": config(df), "init_scale": df["fit.init_scale"]})
    t_tol = np.array([time_to_loss(t, loss) for t, loss in zip(df["history.t"], df["history.loss"])])
    out = []
    for (depth, cfg, a), idx in sorted(keys.groupby(["depth", "config", "init_scale"]).indices.items()):
        errs = df["error"].to_numpy()[idx]
        reached = t_tol[idx][np.isfinite(t_tol[idx])]
        q1, med, q3 = np.quantile(errs, [0.25, 0.5, 0.75])
        out.append({"depth": int(depth), "config": cfg, "init_scale": float(a), "error_median": float(med),
                    "error_q1": float(q1), "error_q3": float(q3), "n_runs": int(errs.size),
                    "t_loss_1e-8_median": float(np.median(reached)) if reached.size else float("nan"),
                    "n_reached_loss_1e-8": int(reached.size),
                    "n_grad_evals_median": float(np.median(df["n_grad_evals"].to_numpy()[idx]))})
    return {"summary": pd.DataFrame(out)}


def plot(tables: dict[str, Any], summary: dict[str, Any], out: str) -> list[str]:
    """Draw the two figures (PNG) under ``out``; returns the paths."""
    plt = pyplot()
    df, traj = tables["weightnorm"], tables["weightnorm_trajectories"]
    problem, seeds = df.attrs["spec"]["problem"], df.attrs["spec"]["seeds"]
    depths = sorted(set(df["fit.depth"]))
    points = summary["summary"].to_dict("records")
    bp = np.median(df["bp_error"])
    floor = 1e-12

    fig, axes = plt.subplots(1, len(depths), figsize=(5.2 * len(depths), 4.0), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, depth in zip(axes, depths):
        for label, color in COLORS.items():
            pts = sorted((s for s in points if s["depth"] == depth and s["config"] == label),
                         key=lambda s: s["init_scale"])
            a = np.array([s["init_scale"] for s in pts])
            med = np.maximum([s["error_median"] for s in pts], floor)
            q1 = np.maximum([s["error_q1"] for s in pts], floor)
            q3 = np.maximum([s["error_q3"] for s in pts], floor)
            ax.plot(a, med, "o-", color=color, label=label, ms=3.5)
            ax.fill_between(a, q1, q3, color=color, alpha=0.18, lw=0)
        bp_label = "basis pursuit (min l1)" + (f": error {bp:.0e}, drawn at the floor" if bp < floor else "")
        ax.axhline(max(bp, floor), color="gray", ls="--", lw=1, label=bp_label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("init scale alpha")
        ax.set_title(f"depth L = {depth}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("recovery error ||x - x*||  (median, quartiles)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Gradient flow limit, N={problem['dim']}, M={problem['n_measurements']}, "
                 f"s={problem['sparsity']}, {len(seeds)} seeds", fontsize=10)
    p1 = save(plt, fig, out, f"{NAME}_error_vs_scale.png", 110)

    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.8))
    for label, (_, r) in zip(config(traj), traj.iterrows()):
        t = np.asarray(r["history.t"])
        keep = t > 0
        axes[0].loglog(t[keep], np.maximum(np.asarray(r["history.error"])[keep], floor), color=COLORS[label],
                       label=label)
        axes[1].loglog(t[keep], np.maximum(np.asarray(r["history.loss"])[keep], 1e-30), color=COLORS[label],
                       label=label)
    axes[0].set_ylabel("||x(t) - x*||")
    axes[1].set_ylabel("loss 0.5 ||A x(t) - y||^2")
    for ax in axes:
        ax.set_xlabel("time t")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fit = traj.attrs["spec"]["fit"]
    fig.suptitle(f"alpha = {fit['init_scale']}, depth {fit['depth']}, seed {traj['seed'].iloc[0]}", fontsize=10)
    p2 = save(plt, fig, out, f"{NAME}_trajectories.png", 110)
    return [p1, p2]
