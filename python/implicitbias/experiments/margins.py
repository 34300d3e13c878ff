"""Reproduction: each steepest descent maximizes the margin of its own norm.

Tsilivis, Vardi & Kempe, "Flavors of Margin: Implicit Bias of Steepest Descent
in Homogeneous Neural Networks" (arXiv 2410.22069); docs/science.md, section 2.

Three parts:

1. The 3x3 table "algorithm x margin norm": gradient descent (l2), sign
   descent (l_inf) and coordinate descent (l1), all normalized, on separable
   synthetic data (n = 15, d = 20, several seeds), for the linear model
   against the exact max-margin optima (QP / LPs) and for the diagonal network
   ``<u^2 - v^2, x>`` against the predictor-level LPs (the parameter-l2 margin
   is bounded by the predictor's l1 max-margin, the parameter-l_inf margin by
   its l_inf max-margin; the parameter-l1 margin has no convex reference and
   is shown relative to the best algorithm).
2. Margin trajectories of a two-layer ReLU network (no biases) on the 8x8
   digits (odd vs even, a subsample of n = 400 points, standardized: on all
   1797 digits coordinate descent, which moves one weight per step, is still
   at 98.7% training accuracy after 20,000 steps) for GD, sign
   descent, coordinate descent and Adam (beta1 in {0, 0.9}, eps in {0, 1e-8}),
   after perfect training accuracy, with the smoothed margin.
3. The largest one-step drop of the smoothed margin after perfect accuracy
   against the step size (normalized GD and sign descent, linear model): it
   shrinks with the step, as the theorem's discretization requires.

The three parts are the specs ``specs/margins.toml``, ``margins_trajectories.toml``
and ``margins_drops.toml`` (``specs/quick/``: the seconds-long versions), run
by :mod:`implicitbias.sweep`; the summaries and figures come from their stores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._plotting import pyplot
from ._reproduce import save

NAME = "margins"
SPECS = ("margins", "margins_trajectories", "margins_drops")
NORMS = ("l2", "linf", "l1")
ALG_LABEL = {"l2": "GD (l2)", "linf": "sign descent (linf)", "l1": "coordinate descent (l1)"}
# the trajectory runs' labels by (optimizer, norm, beta1, eps)
TRAJECTORY_LABEL = {("steepest", "l2"): "GD", ("steepest", "linf"): "sign descent",
                    ("steepest", "l1"): "coordinate descent", ("adam", 0.0, 0.0): "Adam b1=0 eps=0",
                    ("adam", 0.9, 0.0): "Adam b1=0.9 eps=0", ("adam", 0.0, 1e-8): "Adam b1=0 eps=1e-8",
                    ("adam", 0.9, 1e-8): "Adam b1=0.9 eps=1e-8"}
CURVES = ("step", "log_loss", "accuracy", "margin_l2", "margin_linf", "margin_l1", "margin_spectral",
          "smoothed_margin", "alignment")


def trajectory_label(row: Any) -> str:
    """The label of a trajectory run (``GD``, ``sign descent``, ..., ``Adam b1=0.9 eps=1e-8``)."""
    if row["fit.optimizer"] == "adam":
        return TRAJECTORY_LABEL[("adam", row["fit.beta1"], row["fit.eps"])]
    return TRAJECTORY_LABEL[(row["fit.optimizer"], row["fit.norm"])]


def summarize(tables: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """The 3x3 tables (mean, min, max over seeds of the margin over its reference, per model, algorithm
    and margin norm; the diagonal net's l1 column over the best algorithm of the seed instead), the
    trajectory runs' final values and the largest one-step drop of the smoothed margin per step size."""
    import pandas as pd

    df = tables["margins"]
    summary = []
    for model in ("linear", "diagonal"):
        m = df[df["fit.model"] == model]
        for a in NORMS:
            sel = m[m["fit.norm"] == a]
            for n in NORMS:
                if model == "diagonal" and n == "l1":
                    key = "ratio_to_best"
                    best = m.groupby("seed")["margin_l1"].max()
                    vals = sel["margin_l1"].to_numpy() / best.loc[sel["seed"]].to_numpy()
                else:
                    key, vals = "ratio", sel[f"margin_ratio_{n}"].to_numpy()
                summary.append({"model": model, "algorithm": a, "margin_norm": n, "measure": key,
                                "mean": float(np.mean(vals)), "min": float(np.min(vals)), "max": float(np.max(vals))})
    final = []
    for _, r in tables["margins_trajectories"].iterrows():
        perfect = np.flatnonzero(np.asarray(r["history.accuracy"]) == 1.0)
        final.append({"algorithm": trajectory_label(r), "accuracy": r["accuracy"], "log_loss": r["log_loss"],
                      "first_perfect_step": float(r["history.step"][perfect[0]]) if perfect.size else float("nan"),
                      **{f"margin_{n}": r[f"margin_{n}"] for n in ("l2", "linf", "l1", "spectral")},
                      "wall_time": r["wall_time"]})
    drops = []
    for _, r in tables["margins_drops"].iterrows():
        after = np.flatnonzero(np.asarray(r["history.accuracy"]) == 1.0)
        sm = np.asarray(r["history.smoothed_margin"])[after[0]:] if after.size else np.array([])
        drop = float(np.max(-np.diff(sm))) if sm.size > 1 else float("nan")
        drops.append({"norm": r["fit.norm"], "lr": r["fit.lr"], "largest_drop": max(drop, 0.0),
                      "raw_largest_drop": drop, "final_smoothed_margin": float(sm[-1]) if sm.size else float("nan"),
                      "steps": int(r["n_steps"])})
    return {"summary": pd.DataFrame(summary), "final": pd.DataFrame(final), "drops": pd.DataFrame(drops)}


def plot(tables: dict[str, Any], summary: dict[str, Any], out: str) -> list[str]:
    """Draw the table heatmaps, the trajectories and the drop figure (PNG); returns the paths."""
    plt = pyplot()
    spec = tables["margins"].attrs["spec"]
    points = summary["summary"].to_dict("records")

    # 1. the two 3x3 tables
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for ax, model in zip(axes, ("linear", "diagonal")):
        M = np.array([[next(s["mean"] for s in points if s["model"] == model and s["algorithm"] == a
                            and s["margin_norm"] == n) for n in NORMS] for a in NORMS])
        ax.imshow(M, cmap="viridis", vmin=min(0.0, np.nanmin(M)), vmax=1.0)
        for i in range(3):
            for j in range(3):
                ax.text(j, i, f"{M[i, j]:.3f}", ha="center", va="center", color="white" if M[i, j] < 0.7 else "black",
                        fontsize=11, fontweight="bold" if i == j else "normal")
        ax.set_xticks(range(3), [f"{n} margin" for n in NORMS])
        ax.set_yticks(range(3), [ALG_LABEL[a] for a in NORMS])
        ref = ("exact max-margin (QP/LP)" if model == "linear"
               else "predictor LPs; l1 column: / best")
        ax.set_title(f"{model} model: margin / {ref}", fontsize=8.5)
    fig.suptitle(f"Each algorithm maximizes its own margin (separable data n={spec['problem']['n_samples']}, "
                 f"d={spec['problem']['dim']}, {len(spec['seeds'])} seeds, {spec['fit']['steps']} steps)", fontsize=10)
    p1 = save(plt, fig, out, f"{NAME}_table.png", 110)

    # 2. trajectories after perfect accuracy
    traj = tables["margins_trajectories"]
    labels = [trajectory_label(r) for _, r in traj.iterrows()]
    colors = dict(zip(labels, ["black", "tab:red", "tab:green", "tab:blue", "tab:purple", "tab:cyan", "tab:pink"]))
    styles = dict(zip(labels, ["-", "-", "-", "--", "--", ":", ":"]))
    panels = [("margin_l2", "l2 margin"), ("margin_linf", "l_inf margin"), ("margin_l1", "l1 margin"),
              ("smoothed_margin", "smoothed margin (own norm)")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.9))
    for label, (_, r) in zip(labels, traj.iterrows()):
        h = {c: np.asarray(r[f"history.{c}"], dtype=float) for c in CURVES}
        keep = (h["accuracy"] == 1.0) & (h["step"] > 0)
        if not keep.any():
            continue
        for ax, (key, _) in zip(axes, panels):
            v = h[key][keep]
            if key in ("margin_linf", "margin_l1"):  # log axes: the (rare) non-positive points are left out
                v = np.where(v > 0, v, np.nan)
            ax.plot(h["step"][keep], v, styles[label], color=colors[label], label=label, lw=1.4)
    for ax, (_, title) in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in axes[1:3]:
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fit = traj.attrs["spec"]["fit"]
    fig.suptitle(f"Two-layer ReLU net (width {fit['width']}, no biases) on digits odd vs even "
                 f"(n={traj.attrs['spec']['problem']['n_samples']}), after perfect training accuracy; "
                 f"Adam beta2={fit['beta2']}", fontsize=10)
    p2 = save(plt, fig, out, f"{NAME}_trajectories.png", 110)

    # 3. largest one-step drop of the smoothed margin vs step size
    fig, ax = plt.subplots(figsize=(5.2, 3.9))
    floor = 1e-17
    drops = summary["drops"]
    for norm, color in zip(("l2", "linf"), ("black", "tab:red")):
        pts = drops[drops["norm"] == norm]
        ax.loglog(pts["lr"], np.maximum(pts["largest_drop"], floor), "o-", color=color, label=f"{ALG_LABEL[norm]}")
    ax.set_xlabel("step size lr (normalized steps)")
    ax.set_ylabel("largest one-step drop of the smoothed margin")
    ax.set_title(f"linear model, after perfect accuracy (drops <= {floor:g} drawn at the floor)", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    p3 = save(plt, fig, out, f"{NAME}_drop_vs_lr.png", 110)
    return [p1, p2, p3]
