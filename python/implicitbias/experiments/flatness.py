"""Reproduction: flat interpolators of deep matrix factorization track the minimum nuclear norm.

Gatmiry, Li, Chuang, Reddi, Ma & Jegelka, "The Inductive Bias of Flatness
Regularization for Deep Matrix Factorization" (arXiv 2306.13239); docs/science.md,
section 3.

Setup: ``M* = U V^T`` of size 20 x 20, rank 2 (``||M*||_F = sqrt(2)``), Gaussian
measurements ``y_i = <A_i, M*>`` (A_i with i.i.d. N(0, 1) entries), n from
``r d = 40`` to ``d^2 / 2 = 200``; deep linear networks of depth L in {2, 3, 4},
hidden width 20, trained for a fixed number of steps with step size
``0.05 / L`` by

* the flat-solution finders: trace penalty (``trace_weight = 0.03``), label-noise SGD
  (full batch, ``label_noise_std = 10``), SAM (``sam_radius = 0.5``), each from the standard
  (large) Gaussian initialization (``init_scale = 1``: ``W_j ~ N(0, 1/d_{j-1})``)
  with the strength annealed geometrically to 1e-3 of its value over the
  first 70% of the steps and 0 afterwards (see implicitbias.factorization);
* gradient descent from small (``init_scale = 0.1``) and large (``1``)
  initialization; and depth 1 (GD on E itself from ``1e-3``: the minimum
  Frobenius-norm interpolator).

Reported per run: the recovery error ``||E - M*||_F / ||M*||_F``, the ratio
``||E||_* / ||X_cvx||_*`` to the convex minimum nuclear-norm interpolator
(cvxpy), the loss, the exact trace of the Hessian at the end and the bound
``2 L (d_0 d_L)^{1/L} ||E||_*^{2(L-1)/L}``, the sharpness (top Hessian eigenvalue) at the end
(the flatness pair: trace and sharpness); and, at a trained (near-zero loss)
and at a random point, the relative error of Hutchinson, Hutch++ and XTrace
against the exact trace versus the number of Hessian-vector products.

The training runs are the spec ``specs/flatness.toml`` (``specs/quick/``: the
seconds-long version), run by :mod:`implicitbias.sweep` with the final
parameters saved; the estimator study starts from the stored parameters of one
run, and the summary and figures come from the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import data, factorization, hessian
from .._plotting import pyplot
from ._reproduce import save

NAME = "flatness"
SPECS = ("flatness",)
DEPTH1 = "depth 1"
ESTIMATORS = (("Hutchinson", hessian.hutchinson), ("Hutch++", hessian.hutchpp), ("XTrace", hessian.xtrace))
# the estimator study: at the trace-penalty run of (depth, n, the first seed), and at a random init
ESTIMATOR_SETTINGS: dict[str, Any] = {"depth": 3, "n": 120, "budgets": [6, 12, 24, 48, 96, 192, 384, 768], "seeds": 10}
QUICK_ESTIMATOR_SETTINGS: dict[str, Any] = {"depth": 2, "n": 160, "budgets": [6, 24, 96], "seeds": 3}


def config(row: Any) -> str:
    """The label of a run: its flat-solution finder, GD from small or large init, or depth 1."""
    if row["fit.depth"] == 1:
        return DEPTH1
    if row["fit.method"] == "descent":
        return "GD small init" if row["fit.init_scale"] < 1 else "GD large init"
    return {"trace_penalty": "trace penalty", "label_noise_sgd": "label-noise SGD", "sam": "SAM"}[row["fit.method"]]


def estimators(df: Any, quick: bool = False) -> list[dict[str, Any]]:
    """Hutchinson, Hutch++ and XTrace against the exact trace, at the stored final layers of one
    trace-penalty run and at a random initialization of the same depth (``quick``: fewer budgets)."""
    spec = df.attrs["spec"]
    est = QUICK_ESTIMATOR_SETTINGS if quick else ESTIMATOR_SETTINGS
    seed0, L = spec["seeds"][0], est["depth"]
    row = df[(df["fit.depth"] == L) & (df["fit.method"] == "trace_penalty") & (df["seed"] == seed0)
             & (df["problem.n_measurements"] == est["n"])].iloc[0]
    problem: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["problem"].items()
                               if k != "generator"}
    prob = data.matrix_sensing(**problem, n_measurements=est["n"], seed=seed0)
    op = factorization.sensing_operator(prob.A)
    d_out, d_in = prob.M_star.shape
    width = spec["fit"]["width"]
    trained = factorization.unpack([d_in] + [width] * (L - 1) + [d_out], np.asarray(row["params"]))
    init = factorization.initial_layers((d_out, d_in), L, width, 1.0, "gaussian", seed0)
    rows = []
    for point, layers in (("trained (trace penalty)", trained), ("initialization", init)):
        exact = hessian.trace(layers, op)
        loss = factorization.loss(layers, op, prob.y)
        for name, fn in ESTIMATORS:
            for budget in est["budgets"]:
                for s in range(est["seeds"]):
                    e = fn(layers, op, prob.y, num_matvecs=budget, seed=s)
                    rows.append({"point": point, "loss": loss, "estimator": name, "budget": budget, "seed": s,
                                 "estimate": e.estimate, "stderr": e.stderr, "exact": exact,
                                 "rel_error": abs(e.estimate - exact) / exact})
    return rows


def sharpness(df: Any) -> list[dict[str, Any]]:
    """The flatness pair at the end of every run: the exact trace of the Hessian (the store's ``trace``) and
    its sharpness, the top eigenvalue, by block Lanczos on the exact HVP at the stored final layers (relative
    residual 1e-10; ``sharpness_residual`` bounds its error), with ``trace / sharpness`` (an effective number
    of sharp directions)."""
    spec = df.attrs["spec"]
    problem: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["problem"].items()
                               if k != "generator"}
    width = spec["fit"]["width"]
    rows, ops = [], {}
    for _, r in df.sort_values("run_id").iterrows():
        key = (int(r["seed"]), int(r["problem.n_measurements"]))
        if key not in ops:
            prob = data.matrix_sensing(**problem, n_measurements=key[1], seed=key[0])
            ops[key] = (factorization.sensing_operator(prob.A), prob.y, prob.M_star.shape)
        op, y, (d_out, d_in) = ops[key]
        L = int(r["fit.depth"])
        layers = factorization.unpack([d_in] + [width] * (L - 1) + [d_out], np.asarray(r["params"]))
        top = hessian.eigenvalues(layers, op, y, k=1, tol=1e-10)
        rows.append({"depth": L, "config": config(r), "n": key[1], "seed": key[0], "loss": float(r["loss"]),
                     "trace": float(r["trace"]), "sharpness": float(top.values[-1]),
                     "sharpness_residual": float(top.residuals[-1]),
                     "trace_over_sharpness": float(r["trace"]) / float(top.values[-1])})
    return rows


def summarize(tables: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Median over seeds per (depth, config, n) of the error, the nuclear-norm ratio, the convex
    interpolator's error and trace / bound, and the largest loss; the estimators' relative errors
    (``estimators``) and their median and maximum per (point, estimator, budget); the trace and the
    sharpness at the end of every run (``sharpness``, :func:`sharpness`)."""
    import pandas as pd

    df = tables["flatness"]
    keys = pd.DataFrame({"depth": df["fit.depth"], "config": [config(r) for _, r in df.iterrows()],
                         "n": df["problem.n_measurements"]})
    out = []
    for (depth, cfg, n), idx in sorted(keys.groupby(["depth", "config", "n"]).indices.items()):
        sel = df.iloc[idx]
        out.append({"depth": int(depth), "config": cfg, "n": int(n), "n_runs": len(sel),
                    "error_median": float(np.median(sel["error"].to_numpy())),
                    "nuclear_ratio_median": float(np.median(sel["nuclear_ratio"].to_numpy())),
                    "cvx_error_median": float(np.median(sel["cvx_error"].to_numpy())),
                    "trace_over_bound_median": float(np.median((sel["trace"] / sel["bound"]).to_numpy())),
                    "loss_max": float(np.max(sel["loss"].to_numpy()))})
    est = pd.DataFrame(estimators(df, quick))
    est_summary = [{"point": p, "estimator": e, "budget": int(b), "rel_error_median": float(np.median(g.to_numpy())),
                    "rel_error_max": float(np.max(g.to_numpy()))}
                   for (p, e, b), g in sorted(est.groupby(["point", "estimator", "budget"])["rel_error"])]
    return {"summary": pd.DataFrame(out), "estimators": est, "estimator_summary": pd.DataFrame(est_summary),
            "sharpness": pd.DataFrame(sharpness(df))}


COLORS = {"trace penalty": "tab:red", "label-noise SGD": "tab:orange", "SAM": "tab:purple",
          "GD small init": "tab:blue", "GD large init": "black", DEPTH1: "gray"}

def plot(tables: dict[str, Any], summary: dict[str, Any], out: str) -> list[str]:
    """Draw the two figures (PNG) under ``out``; returns the paths."""
    plt = pyplot()
    df = tables["flatness"]
    spec = df.attrs["spec"]
    points = summary["summary"].to_dict("records")
    depths = sorted(d for d in set(df["fit.depth"]) if d > 1)

    fig, axes = plt.subplots(2, len(depths), figsize=(4.0 * len(depths), 6.4), sharex=True, squeeze=False)
    for col, depth in enumerate(depths):
        for label, color in COLORS.items():
            dd = 1 if label == DEPTH1 else depth
            pts = sorted((s for s in points if s["depth"] == dd and s["config"] == label), key=lambda s: s["n"])
            if not pts:
                continue
            n = [s["n"] for s in pts]
            style = dict(color=color, label=label, ms=3.5, lw=1.2)
            ls = ":" if label == DEPTH1 else "-"
            axes[0, col].plot(n, [s["nuclear_ratio_median"] for s in pts], "o" + ls, **style)
            axes[1, col].plot(n, [max(s["error_median"], 1e-6) for s in pts], "o" + ls, **style)
        pts = sorted((s for s in points if s["depth"] == depth and s["config"] == "trace penalty"),
                     key=lambda s: s["n"])
        axes[1, col].plot([s["n"] for s in pts], [max(s["cvx_error_median"], 1e-6) for s in pts], "k--", lw=1,
                          label="min nuclear norm (cvx; floor 1e-6)")
        axes[0, col].axhline(1.0, color="k", ls="--", lw=1)
        axes[0, col].set_title(f"depth L = {depth}")
        axes[0, col].set_yscale("log")
        axes[1, col].set_yscale("log")
        axes[1, col].set_xlabel("number of measurements n")
        for ax in axes[:, col]:
            ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].set_ylabel("||E||_* / ||X_cvx||_*  (median)")
    axes[1, 0].set_ylabel("||E - M*||_F / ||M*||_F  (median)")
    axes[1, 0].legend(fontsize=7, loc="lower left")
    shape = spec["problem"]["shape"]
    fig.suptitle(f"Deep matrix factorization, d = {shape[0]}, rank {spec['problem']['rank']}, Gaussian sensing, "
                 f"{len(spec['seeds'])} seeds, {spec['fit']['steps']} steps", fontsize=10)
    p1 = save(plt, fig, out, f"{NAME}_nuclear.png", 80)

    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.9))
    ax = axes[0]
    markers = {2: "o", 3: "s", 4: "^"}
    deep = df[df["fit.depth"] > 1]
    deep = deep.assign(config=[config(r) for _, r in deep.iterrows()])
    for label, color in COLORS.items():
        for depth in depths:
            sel = deep[(deep["config"] == label) & (deep["fit.depth"] == depth)]
            if len(sel):
                ax.scatter(sel["bound"], sel["trace"], s=10, color=color, marker=markers.get(depth, "o"),
                           label=label if depth == depths[0] else None, alpha=0.7)
    lo, hi = deep["bound"].min(), deep["trace"].max()
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="trace = bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bound 2L (d0 dL)^(1/L) ||E||_*^(2(L-1)/L)")
    ax.set_ylabel("exact trace of the Hessian at the end")
    ax.set_title("trace vs bound (o L=2, s L=3, ^ L=4)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    ax = axes[1]
    est = summary["estimator_summary"]
    for point, ls in (("trained (trace penalty)", "-"), ("initialization", ":")):
        for name, color in (("Hutchinson", "tab:blue"), ("Hutch++", "tab:green"), ("XTrace", "tab:red")):
            pts = est[(est["point"] == point) & (est["estimator"] == name)].sort_values("budget")
            ax.loglog(pts["budget"], np.maximum(pts["rel_error_median"], 1e-16), "o" + ls, color=color, ms=3.5,
                      label=f"{name}, {point}")
    ax.set_xlabel("Hessian-vector products")
    ax.set_ylabel("relative error vs exact trace (median)")
    ax.set_title("estimators at one trained point and at a random one", fontsize=9)
    ax.legend(fontsize=6.5)
    ax.grid(True, which="major", alpha=0.3)
    p2 = save(plt, fig, out, f"{NAME}_trace.png", 80)
    return [p1, p2]
