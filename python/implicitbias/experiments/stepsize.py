"""Reproduction: large step sizes, SGD against GD, and heavy-ball momentum on a depth-2 diagonal network.

Even, Pesme, Gunasekar, Flammarion, "(S)GD over Diagonal Linear Networks: Implicit
Regularisation, Large Stepsizes and Edge of Stability" (arXiv 2302.08982), and
Papazov, Pesme, Flammarion (arXiv 2403.05293) for momentum; docs/dynamics.md
(the effective initialization) and docs/experiments.md ("Step size").

Setting (their units -> this package's): d = 30, n = 20, s = 3, their sensing
``X`` with N(0, 1) entries and ``beta = u v`` from ``u0 = sqrt(2) alpha, v0 = 0``
is ``x = u^2 - v^2`` from ``u0 = v0 = alpha`` with ``A = X / 2`` (the generator's
``entry_std = 0.5``), ``x = 2 beta``, the same ``alpha = 0.1`` and ``y``; their
loss is the mean ``(1/2n) ||X beta - y||^2`` (batch: the mean over ``b``), ours the
sum, so their step is ``gamma = n eta`` for full batch and ``gamma = b eta`` for a
batch of ``b``. Every run is ``method="sgd"`` (full batch: ``batch_size`` None),
so every run keeps the exact effective-initialization bookkeeping.

Reported against ``gamma`` up to divergence, per problem seed: the distance of the
final ``x`` to basis pursuit (``bp_distance``), the gain ``||log(alpha / a_inf)||_1``
(``alpha_gain``) and the limit predicted by the run's own bookkeeping
(``effective_limit_distance``, ``effective_limit_bp_distance``: the sweep's
columns); and heavy-ball GD at equal ``lambda = gamma / (1 - beta)^2`` with
different ``(gamma, beta)``: the spread of their limits against the change
between values of ``lambda``.

The runs are the specs ``specs/stepsize_gd.toml``, ``stepsize_sgd.toml`` and
``stepsize_momentum.toml`` (``specs/quick/``: one seed, a few steps), run by
:mod:`implicitbias.sweep`; the summaries and the figure are computed from their stores.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from .._plotting import pyplot
from ._reproduce import save

NAME = "stepsize"
SPECS = ("stepsize_gd", "stepsize_sgd", "stepsize_momentum")
PREDICTION_TOL = 1e-8  # a converged run's distance to the limit its bookkeeping predicts


def n_measurements(df: Any) -> int:
    return int(df.attrs["spec"]["problem"]["n_measurements"])


def curves(tables: dict[str, Any]) -> Any:
    """GD and SGD runs in one table: ``config`` ("GD" or "SGD b=<b>"), ``batch``, ``gamma`` (their step:
    ``batch * lr``, batch = n for GD), ``gamma_div`` (per seed and config, the smallest gamma of the grid
    whose run diverged; NaN if none did), ``gamma_rel = gamma / gamma_div`` and the store's columns."""
    import pandas as pd

    gd, sgd = tables["stepsize_gd"], tables["stepsize_sgd"]
    n = n_measurements(gd)
    gd = gd.assign(batch=n, config="GD")
    sgd = sgd.assign(batch=sgd["fit.batch_size"].astype(int))
    sgd["config"] = [f"SGD b={b}" for b in sgd["batch"]]
    df = pd.concat([gd, sgd], ignore_index=True)
    df["gamma"] = df["batch"] * df["fit.lr"]
    div = df[df["status"] == "diverged"].groupby(["config", "seed"])["gamma"].min().rename("gamma_div")
    df = df.join(div, on=["config", "seed"])
    df["gamma_rel"] = df["gamma"] / df["gamma_div"]
    return df.sort_values(["config", "seed", "gamma"], ignore_index=True)


def _per_seed(g: Any) -> dict[str, Any]:
    """One (config, seed) curve: the distance at the smallest step, the best distance below divergence
    and where, the distance at the largest step that did not diverge (``distance_last_stable``; its run may
    not have converged: ``loss_max`` is the largest final loss of the runs that did not diverge) and at the
    largest step whose run converged, and where the window starts: the
    smallest ``gamma_rel`` whose distance is at most half (a tenth of) the smallest step's."""
    ok = g[g["status"] != "diverged"]
    first = float(ok["bp_distance"].iloc[0])
    best = ok.loc[ok["bp_distance"].idxmin()]
    half = ok[ok["bp_distance"] <= 0.5 * first]
    tenth = ok[ok["bp_distance"] <= 0.1 * first]
    conv = ok[ok["status"] == "converged"]
    return {"gamma_div": float(g["gamma_div"].iloc[0]), "gamma_min": float(ok["gamma"].iloc[0]),
            "distance_small_step": first, "distance_best": float(best["bp_distance"]),
            "gamma_best": float(best["gamma"]), "gamma_rel_best": float(best["gamma_rel"]),
            "distance_last_stable": float(ok["bp_distance"].iloc[-1]),
            "gamma_rel_last_converged": float(conv["gamma_rel"].max()) if len(conv) else float("nan"),
            "distance_last_converged": float(conv["bp_distance"].iloc[-1]) if len(conv) else float("nan"),
            "loss_max": float(ok["loss"].max()),
            "gain_small_step": float(ok["alpha_gain"].iloc[0]), "gain_best": float(best["alpha_gain"]),
            "gamma_rel_half": float(half["gamma_rel"].min()) if len(half) else float("nan"),
            "gamma_rel_tenth": float(tenth["gamma_rel"].min()) if len(tenth) else float("nan"),
            "n_converged": len(conv), "max_prediction_distance": float(conv["effective_limit_distance"].max())}


def momentum(tables: dict[str, Any]) -> Any:
    """Heavy-ball runs with ``lambda = gamma / (1 - beta)^2`` (gamma = n lr) and ``x`` from the saved
    factors (``u^2 - v^2``)."""
    df = tables["stepsize_momentum"].copy()
    n = n_measurements(df)
    df["gamma"] = n * df["fit.lr"]
    df["lambda"] = (df["gamma"] / (1.0 - df["fit.momentum"]) ** 2).round(10)
    half = len(df["params"].iloc[0]) // 2
    df["x"] = [np.asarray(p[:half]) ** 2 - np.asarray(p[half:]) ** 2 for p in df["params"]]
    return df


def summarize(tables: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """``curves`` (every GD/SGD run), ``window`` (per config and seed, :func:`_per_seed`) and ``momentum``
    (per seed and lambda: the distance to basis pursuit per beta, the largest distance between two limits
    at this lambda (``spread``, converged runs), and the distance of the beta = 0 limit to the next
    lambda's (``step_to_next_lambda``))."""
    import pandas as pd

    df = curves(tables)
    window = pd.DataFrame([{"config": c, "seed": s, **_per_seed(g)} for (c, s), g in df.groupby(["config", "seed"])])
    mom = momentum(tables)
    rows = []
    for seed, g in mom.groupby("seed"):
        lams = sorted(set(g["lambda"]))
        for i, lam in enumerate(lams):
            h = g[(g["lambda"] == lam) & (g["status"] == "converged")]
            xs = list(h["x"])
            row = {"seed": seed, "lambda": lam, "n_converged": len(h),
                   "spread": max((float(np.linalg.norm(a - b)) for a, b in combinations(xs, 2)), default=float("nan")),
                   "max_prediction_distance": float(h["effective_limit_distance"].max())}
            for _, r in g[g["lambda"] == lam].iterrows():
                row[f"bp_distance_beta{r['fit.momentum']:g}"] = float(r["bp_distance"])
            if i + 1 < len(lams):
                a = g[(g["lambda"] == lam) & (g["fit.momentum"] == 0.0)]["x"]
                b = g[(g["lambda"] == lams[i + 1]) & (g["fit.momentum"] == 0.0)]["x"]
                row["step_to_next_lambda"] = (float(np.linalg.norm(a.iloc[0] - b.iloc[0]))
                                              if len(a) and len(b) else float("nan"))
            rows.append(row)
    curve_cols = ["config", "batch", "seed", "gamma", "gamma_div", "gamma_rel", "status", "n_steps", "loss",
                  "bp_distance", "alpha_gain", "effective_limit_distance", "effective_limit_bp_distance"]
    return {"curves": df[curve_cols], "window": window, "momentum": pd.DataFrame(rows)}


def plot(tables: dict[str, Any], summary: dict[str, Any], out: str) -> list[str]:
    """Draw the figure (PNG) under ``out``; returns its path."""
    plt = pyplot()
    df = summary["curves"]
    configs = sorted(set(df["config"]), key=lambda c: (c != "GD", c))
    colors = dict(zip(configs, plt.get_cmap("tab10")(np.arange(len(configs)))))
    fig, axes = plt.subplots(1, 4, figsize=(17.0, 3.9))
    for c in configs:
        for k, (_, g) in enumerate(df[(df["config"] == c) & (df["status"] != "diverged")].groupby("seed")):
            label = c if k == 0 else None
            axes[0].plot(g["gamma_rel"], g["bp_distance"], "o", ms=2.5, color=colors[c], label=label)
            axes[0].plot(g["gamma_rel"], g["effective_limit_bp_distance"], "-", lw=0.8, color=colors[c], alpha=0.7)
            axes[1].plot(g["gamma_rel"], g["alpha_gain"], "-", lw=0.9, color=colors[c], label=label)
            axes[2].plot(g["alpha_gain"], g["bp_distance"], "o", ms=2.5, color=colors[c], label=label)
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_ylim(1e-5, 5.0)
    axes[0].set_xlabel("gamma / gamma_div (per seed)")
    axes[0].set_ylabel("||x - x_bp||  (dots: runs; lines: predicted limit)")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("gamma / gamma_div (per seed)")
    axes[1].set_ylabel("gain ||log(alpha / a_inf)||_1")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("gain ||log(alpha / a_inf)||_1")
    axes[2].set_ylabel("||x - x_bp||")
    for ax in axes[:3]:
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    mom = momentum(tables)
    betas = sorted(set(mom["fit.momentum"]))
    bcolors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(betas)))
    for beta, color in zip(betas, bcolors):
        for k, (_, g) in enumerate(mom[(mom["fit.momentum"] == beta) & (mom["status"] == "converged")].groupby("seed")):
            axes[3].plot(g["lambda"], g["bp_distance"], "o-", ms=3.5, lw=0.7, color=color,
                         label=f"beta = {beta:g}" if k == 0 else None)
    axes[3].set_xscale("log")
    axes[3].set_yscale("log")
    axes[3].set_xlabel("lambda = gamma / (1 - beta)^2")
    axes[3].set_ylabel("||x - x_bp||  (heavy-ball GD)")
    axes[3].grid(True, which="major", alpha=0.3)
    axes[3].legend(fontsize=7)
    problem = tables["stepsize_gd"].attrs["spec"]["problem"]
    fig.suptitle(f"Step size up to divergence, depth-2 diagonal net (Even et al. 2023 setting: d={problem['dim']}, "
                 f"n={problem['n_measurements']}, s={problem['sparsity']}, alpha=0.1, N(0,1) sensing), "
                 f"{len(set(df['seed']))} seeds", fontsize=10)
    return [save(plt, fig, out, f"{NAME}_distance.png", 80)]
