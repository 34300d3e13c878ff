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
``2 L (d_0 d_L)^{1/L} ||E||_*^{2(L-1)/L}``; and, at a trained (near-zero loss)
and at a random point, the relative error of Hutchinson, Hutch++ and XTrace
against the exact trace versus the number of Hessian-vector products.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .. import data, factorization, hessian, reference
from .._native import core
from .._progress import progress_bar
from ._io import write_outputs
from ._plotting import pyplot

NAME = "flatness"
# (label, method, init_scale, strength keyword, strength)
CONFIGS = (
    ("trace penalty", "trace_penalty", 1.0, "trace_weight", 0.03),
    ("label-noise SGD", "label_noise_sgd", 1.0, "label_noise_std", 10.0),
    ("SAM", "sam", 1.0, "sam_radius", 0.5),
    ("GD small init", "descent", 0.1, None, 0.0),
    ("GD large init", "descent", 1.0, None, 0.0),
)
DEPTH1 = "depth 1"


def settings(quick: bool = False) -> dict[str, Any]:
    """The experiment's parameters (``quick``: a seconds-long smoke version)."""
    return {
        "dim": 20,
        "rank": 2,
        "kind": "gaussian",
        "n_measurements": [60, 160] if quick else [40, 60, 80, 120, 160, 200],
        "depths": [2] if quick else [2, 3, 4],
        "seeds": [0] if quick else [0, 1, 2],
        "steps": 2500 if quick else 10000,
        "lr_times_depth": 0.05,
        "anneal_frac": 0.7,
        "final_ratio": 1e-3,
        "configs": [c[0] for c in CONFIGS] + [DEPTH1],
        "estimator_depth": 2 if quick else 3,
        "estimator_n": 160 if quick else 120,
        "estimator_budgets": [6, 24, 96] if quick else [6, 12, 24, 48, 96, 192, 384, 768],
        "estimator_seeds": 3 if quick else 10,
    }


def run(quick: bool = False, progress: bool = True, num_threads: int | None = None) -> dict[str, Any]:
    """Run the sweep and the estimator study; returns the table (rows and meta)."""
    cfg = settings(quick)
    d, rank = cfg["dim"], cfg["rank"]
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    keep: dict[str, Any] = {}
    per_problem = len(cfg["depths"]) * len(CONFIGS) + 1
    total = len(cfg["n_measurements"]) * len(cfg["seeds"]) * per_problem
    with progress_bar(total, f"{NAME}: sweep", enabled=progress) as bar:
        for n in cfg["n_measurements"]:
            for seed in cfg["seeds"]:
                prob = data.matrix_sensing((d, d), rank, n, kind=cfg["kind"], seed=seed)
                X = reference.min_nuclear_norm(prob.A, prob.y)
                nuc_cvx = float(np.linalg.svd(X, compute_uv=False).sum())
                err_cvx = float(np.linalg.norm(X - prob.M_star) / np.linalg.norm(prob.M_star))
                op = factorization.sensing_operator(prob.A)
                runs = [(L, c) for L in cfg["depths"] for c in CONFIGS]
                kw: dict[str, list[float]] = {"trace_weight": [], "label_noise_std": [], "sam_radius": []}
                for _, c in runs:
                    for key in kw:
                        kw[key].append(c[4] if c[3] == key else 0.0)
                depths = [L for L, _ in runs] + [1]
                results = factorization.fit_many(
                    op, prob.y, depth=depths, width=d,
                    method=[c[1] for _, c in runs] + ["descent"],
                    init_scale=[c[2] for _, c in runs] + [1e-3],
                    lr=[cfg["lr_times_depth"] / L for L in depths],
                    trace_weight=kw["trace_weight"] + [0.0], label_noise_std=kw["label_noise_std"] + [0.0],
                    sam_radius=kw["sam_radius"] + [0.0],
                    seed=seed, steps=cfg["steps"], anneal_frac=cfg["anneal_frac"], final_ratio=cfg["final_ratio"],
                    M_star=prob.M_star, n_record=20, num_threads=num_threads,
                )
                labels = [(L, c[0]) for L, c in runs] + [(1, DEPTH1)]
                for (L, label), r in zip(labels, results):
                    E = r.product
                    rows.append({
                        "n": n, "seed": seed, "depth": L, "config": label, "method": r.method,
                        "init_scale": r.init_scale, "strength": r.strength,
                        "error": float("nan") if r.error is None else r.error,
                        "nuclear_norm": r.nuclear_norm, "nuclear_cvx": nuc_cvx,
                        "nuclear_ratio": r.nuclear_norm / nuc_cvx, "cvx_error": err_cvx,
                        "loss": r.loss, "trace": r.trace, "bound": hessian.proxy_bound(E, L) if L > 0 else float("nan"),
                        "proxy": hessian.proxy(r.layers), "effective_rank": r.effective_rank, "status": r.status,
                        "n_grad_evals": r.n_grad_evals, "wall_time": r.wall_time,
                    })
                    if n == cfg["estimator_n"] and seed == cfg["seeds"][0] and L == cfg["estimator_depth"]:
                        keep[label] = (r, prob, op)
                bar.update(len(results))

    # Estimators at a trained point (trace penalty, near zero loss) and at the random init.
    r_tp, prob, op = keep["trace penalty"]
    L = cfg["estimator_depth"]
    init = factorization.initial_layers((d, d), L, d, 1.0, "gaussian", cfg["seeds"][0])
    est_rows = []
    estimators = (("Hutchinson", hessian.hutchinson), ("Hutch++", hessian.hutchpp), ("XTrace", hessian.xtrace))
    total = 2 * len(estimators) * len(cfg["estimator_budgets"]) * cfg["estimator_seeds"]
    with progress_bar(total, f"{NAME}: estimators", enabled=progress, unit="estimate") as bar:
        for point, layers in (("trained (trace penalty)", r_tp.layers), ("initialization", init)):
            exact = hessian.trace(layers, op)
            loss = factorization.loss(layers, op, prob.y)
            for name, fn in estimators:
                for budget in cfg["estimator_budgets"]:
                    for s in range(cfg["estimator_seeds"]):
                        e = fn(layers, op, prob.y, num_matvecs=budget, seed=s)
                        est_rows.append({"point": point, "loss": loss, "estimator": name, "budget": budget,
                                         "seed": s, "estimate": e.estimate, "stderr": e.stderr, "exact": exact,
                                         "rel_error": abs(e.estimate - exact) / exact})
                        bar.update(1)
    return {
        "settings": cfg,
        "rows": rows,
        "estimators": est_rows,
        "summary": summarize(rows),
        "estimator_summary": summarize_estimators(est_rows),
        "meta": {"seconds": time.perf_counter() - start, "core_isa": core.isa,
                 "threads": num_threads or core.max_threads()},
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over seeds per (depth, config, n) of the error, nuclear ratio, trace / bound."""
    out = []
    keys = sorted({(r["depth"], r["config"], r["n"]) for r in rows})
    for depth, config, n in keys:
        sel = [r for r in rows if (r["depth"], r["config"], r["n"]) == (depth, config, n)]
        out.append({
            "depth": depth, "config": config, "n": n, "n_runs": len(sel),
            "error_median": float(np.median([r["error"] for r in sel])),
            "nuclear_ratio_median": float(np.median([r["nuclear_ratio"] for r in sel])),
            "cvx_error_median": float(np.median([r["cvx_error"] for r in sel])),
            "trace_over_bound_median": float(np.median([r["trace"] / r["bound"] for r in sel])),
            "loss_max": float(np.max([r["loss"] for r in sel])),
        })
    return out


def summarize_estimators(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median relative error per (point, estimator, budget)."""
    out = []
    keys = sorted({(r["point"], r["estimator"], r["budget"]) for r in rows})
    for point, est, budget in keys:
        sel = [r["rel_error"] for r in rows if (r["point"], r["estimator"], r["budget"]) == (point, est, budget)]
        out.append({"point": point, "estimator": est, "budget": budget,
                    "rel_error_median": float(np.median(sel)), "rel_error_max": float(np.max(sel))})
    return out


def write(table: dict[str, Any], out: str) -> list[str]:
    """Write runs.csv, estimators.csv and summary.json under ``out``; returns the paths."""
    return write_outputs(NAME, out, {"runs": table["rows"], "estimators": table["estimators"]},
                         {k: table[k] for k in ("settings", "summary", "estimator_summary", "meta")})


COLORS = {"trace penalty": "tab:red", "label-noise SGD": "tab:orange", "SAM": "tab:purple",
          "GD small init": "tab:blue", "GD large init": "black", DEPTH1: "gray"}

def plot(table: dict[str, Any], out: str) -> list[str]:
    """Draw the two figures (PNG) under ``out``; returns the paths."""
    plt = pyplot()
    os.makedirs(out, exist_ok=True)
    cfg = table["settings"]
    summary = table["summary"]
    depths = cfg["depths"]

    fig, axes = plt.subplots(2, len(depths), figsize=(4.0 * len(depths), 6.4), sharex=True, squeeze=False)
    for col, depth in enumerate(depths):
        for config in cfg["configs"]:
            dd = 1 if config == DEPTH1 else depth
            pts = sorted((s for s in summary if s["depth"] == dd and s["config"] == config), key=lambda s: s["n"])
            if not pts:
                continue
            n = [s["n"] for s in pts]
            style = dict(color=COLORS[config], label=config, ms=3.5, lw=1.2)
            ls = ":" if config == DEPTH1 else "-"
            axes[0, col].plot(n, [s["nuclear_ratio_median"] for s in pts], "o" + ls, **style)
            axes[1, col].plot(n, [max(s["error_median"], 1e-6) for s in pts], "o" + ls, **style)
        pts = sorted((s for s in summary if s["depth"] == depth and s["config"] == "trace penalty"),
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
    fig.suptitle(f"Deep matrix factorization, d = {cfg['dim']}, rank {cfg['rank']}, Gaussian sensing, "
                 f"{len(cfg['seeds'])} seeds, {cfg['steps']} steps", fontsize=10)
    fig.tight_layout()
    p1 = os.path.join(out, f"{NAME}_nuclear.png")
    fig.savefig(p1, dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.9))
    ax = axes[0]
    markers = {2: "o", 3: "s", 4: "^"}
    for config in cfg["configs"]:
        if config == DEPTH1:
            continue
        for depth in depths:
            sel = [r for r in table["rows"] if r["config"] == config and r["depth"] == depth]
            ax.scatter([r["bound"] for r in sel], [r["trace"] for r in sel], s=10, color=COLORS[config],
                       marker=markers.get(depth, "o"), label=config if depth == depths[0] else None, alpha=0.7)
    lo = min(r["bound"] for r in table["rows"] if r["depth"] > 1)
    hi = max(r["trace"] for r in table["rows"] if r["depth"] > 1)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="trace = bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bound 2L (d0 dL)^(1/L) ||E||_*^(2(L-1)/L)")
    ax.set_ylabel("exact trace of the Hessian at the end")
    ax.set_title("trace vs bound (o L=2, s L=3, ^ L=4)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    ax = axes[1]
    est_colors = {"Hutchinson": "tab:blue", "Hutch++": "tab:green", "XTrace": "tab:red"}
    for point, ls in (("trained (trace penalty)", "-"), ("initialization", ":")):
        for est, color in est_colors.items():
            pts = sorted((s for s in table["estimator_summary"] if s["point"] == point and s["estimator"] == est),
                         key=lambda s: s["budget"])
            ax.loglog([s["budget"] for s in pts], [max(s["rel_error_median"], 1e-16) for s in pts], "o" + ls,
                      color=color, ms=3.5, label=f"{est}, {point}")
    ax.set_xlabel("Hessian-vector products")
    ax.set_ylabel("relative error vs exact trace (median)")
    ax.set_title(f"estimators, L = {cfg['estimator_depth']}, n = {cfg['estimator_n']}", fontsize=9)
    ax.legend(fontsize=6.5)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    p2 = os.path.join(out, f"{NAME}_trace.png")
    fig.savefig(p2, dpi=80)
    plt.close(fig)
    return [p1, p2]
