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
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .. import data, diagonal, reference
from .._native import core
from .._progress import progress_bar
from ._io import write_outputs
from ._plotting import pyplot

NAME = "weightnorm"
CONFIGS = (("plain", None, 1.0), ("WN k=1", "joint", 1.0), ("WN k=10", "joint", 10.0), ("WN k=100", "joint", 100.0))


def settings(quick: bool = False) -> dict[str, Any]:
    """The experiment's parameters (``quick``: a seconds-long smoke version)."""
    return {
        "n_measurements": 40,
        "dim": 100,
        "sparsity": 4,
        "depths": [2, 3],
        "init_scales": [1e-3, 1e-2, 1e-1, 1.0] if quick else list(np.logspace(-3, 0, 10)),
        "seeds": list(range(2 if quick else 10)),
        "configs": [c[0] for c in CONFIGS],
        "rtol": 1e-6 if quick else 1e-8,
        "t_max": 1e9,
        "trajectory_init_scale": 0.1,
        "trajectory_depth": 2,
    }


def run(quick: bool = False, progress: bool = True, num_threads: int | None = None) -> dict[str, Any]:
    """Run the sweep and the trajectories; returns the table (a dict of rows and meta)."""
    cfg = settings(quick)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    problems = {
        seed: data.sparse_regression(cfg["n_measurements"], cfg["dim"], cfg["sparsity"], seed=seed)
        for seed in cfg["seeds"]
    }
    bp_error = {}
    for seed, prob in problems.items():
        x_bp = reference.basis_pursuit(prob.A, prob.y)
        bp_error[seed] = float(np.linalg.norm(x_bp - prob.x_star))

    alphas = cfg["init_scales"]
    total = len(cfg["depths"]) * len(cfg["seeds"]) * len(CONFIGS) * len(alphas) + len(CONFIGS)
    with progress_bar(total, NAME, enabled=progress) as bar:
        for depth in cfg["depths"]:
            for seed in cfg["seeds"]:
                prob = problems[seed]
                runs = [(c, a) for c in CONFIGS for a in alphas]
                results = diagonal.fit_many(
                    [prob.A] * len(runs), [prob.y] * len(runs), x_star=[prob.x_star] * len(runs),
                    depth=depth, init_scale=[a for _, a in runs], weight_norm=[c[1] for c, _ in runs],
                    lr_ratio=[c[2] for c, _ in runs], method="flow", rtol=cfg["rtol"], t_max=cfg["t_max"],
                    n_record=60, num_threads=num_threads,
                )
                for (c, a), r in zip(runs, results):
                    h = r.history
                    reached = np.flatnonzero(h["loss"] <= 1e-8 * h["loss"][0])
                    rows.append({
                        "depth": depth, "config": c[0], "lr_ratio": c[2] if c[1] else float("nan"),
                        "init_scale": float(a), "seed": seed,
                        "error": float(np.linalg.norm(r.x - prob.x_star)),
                        "bp_error": bp_error[seed], "loss": r.loss, "status": r.status,
                        "t_final": r.t_final,
                        "t_loss_1e-8": float(h["t"][reached[0]]) if reached.size else float("nan"),
                        "n_grad_evals": r.n_grad_evals, "wall_time": r.wall_time,
                        "alpha_eff": float(r.alpha_eff()[0]),
                    })
                bar.update(len(runs))

        # Trajectories at one init scale.
        seed0 = cfg["seeds"][0]
        prob = problems[seed0]
        rec = np.logspace(-2, 6, 400)
        traj = diagonal.fit_many(
            prob.A, prob.y, x_star=prob.x_star, depth=cfg["trajectory_depth"],
            init_scale=cfg["trajectory_init_scale"], weight_norm=[c[1] for c in CONFIGS],
            lr_ratio=[c[2] for c in CONFIGS], method="flow", rtol=cfg["rtol"], t_max=cfg["t_max"],
            record_times=rec, num_threads=num_threads,
        )
        bar.update(len(CONFIGS))
    curves = []
    for (label, _, _), r in zip(CONFIGS, traj):
        for t, loss, err in zip(r.history["t"], r.history["loss"], r.history["error"]):
            curves.append({"config": label, "t": float(t), "loss": float(loss), "error": float(err)})
    return {
        "settings": cfg,
        "rows": rows,
        "curves": curves,
        "summary": summarize(rows),
        "meta": {"seconds": time.perf_counter() - start, "core_isa": core.isa,
                 "threads": num_threads or core.max_threads()},
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and quartiles of the error per (depth, config, init_scale), and how fast the loss fell:
    the median flow time to a loss of 1e-8 of its start over the runs that reached it (NaN if none
    did), how many reached it, and the median number of gradient evaluations."""
    out = []
    keys = sorted({(r["depth"], r["config"], r["init_scale"]) for r in rows})
    for depth, config, a in keys:
        sel = [r for r in rows if (r["depth"], r["config"], r["init_scale"]) == (depth, config, a)]
        errs = np.array([r["error"] for r in sel])
        evals = np.array([r["n_grad_evals"] for r in sel])
        t_tol = np.array([r["t_loss_1e-8"] for r in sel])
        reached = t_tol[np.isfinite(t_tol)]
        q1, med, q3 = np.quantile(errs, [0.25, 0.5, 0.75])
        out.append({"depth": depth, "config": config, "init_scale": a, "error_median": float(med),
                    "error_q1": float(q1), "error_q3": float(q3), "n_runs": int(errs.size),
                    "t_loss_1e-8_median": float(np.median(reached)) if reached.size else float("nan"),
                    "n_reached_loss_1e-8": int(reached.size),
                    "n_grad_evals_median": float(np.median(evals))})
    return out


def write(table: dict[str, Any], out: str) -> list[str]:
    """Write runs.csv, curves.csv and summary.json under ``out``; returns the paths."""
    return write_outputs(NAME, out, {"runs": table["rows"], "curves": table["curves"]},
                         {k: table[k] for k in ("settings", "summary", "meta")})


def plot(table: dict[str, Any], out: str) -> list[str]:
    """Draw the two figures (PNG) under ``out``; returns the paths."""
    plt = pyplot()
    os.makedirs(out, exist_ok=True)
    cfg = table["settings"]
    colors = {"plain": "black", "WN k=1": "tab:blue", "WN k=10": "tab:orange", "WN k=100": "tab:red"}
    summary = table["summary"]
    bp = np.median([r["bp_error"] for r in table["rows"]])
    floor = 1e-12

    fig, axes = plt.subplots(1, len(cfg["depths"]), figsize=(5.2 * len(cfg["depths"]), 4.0), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, depth in zip(axes, cfg["depths"]):
        for config in cfg["configs"]:
            pts = sorted((s for s in summary if s["depth"] == depth and s["config"] == config),
                         key=lambda s: s["init_scale"])
            a = np.array([s["init_scale"] for s in pts])
            med = np.maximum([s["error_median"] for s in pts], floor)
            q1 = np.maximum([s["error_q1"] for s in pts], floor)
            q3 = np.maximum([s["error_q3"] for s in pts], floor)
            ax.plot(a, med, "o-", color=colors[config], label=config, ms=3.5)
            ax.fill_between(a, q1, q3, color=colors[config], alpha=0.18, lw=0)
        bp_label = "basis pursuit (min l1)" + (f": error {bp:.0e}, drawn at the floor" if bp < floor else "")
        ax.axhline(max(bp, floor), color="gray", ls="--", lw=1, label=bp_label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("init scale alpha")
        ax.set_title(f"depth L = {depth}")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("recovery error ||x - x*||  (median, quartiles)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Gradient flow limit, N={cfg['dim']}, M={cfg['n_measurements']}, s={cfg['sparsity']}, "
                 f"{len(cfg['seeds'])} seeds", fontsize=10)
    fig.tight_layout()
    p1 = os.path.join(out, f"{NAME}_error_vs_scale.png")
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.8))
    for config in cfg["configs"]:
        pts = [c for c in table["curves"] if c["config"] == config and c["t"] > 0]
        t = np.array([c["t"] for c in pts])
        axes[0].loglog(t, np.maximum([c["error"] for c in pts], floor), color=colors[config], label=config)
        axes[1].loglog(t, np.maximum([c["loss"] for c in pts], 1e-30), color=colors[config], label=config)
    axes[0].set_ylabel("||x(t) - x*||")
    axes[1].set_ylabel("loss 0.5 ||A x(t) - y||^2")
    for ax in axes:
        ax.set_xlabel("time t")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"alpha = {cfg['trajectory_init_scale']}, depth {cfg['trajectory_depth']}, seed {cfg['seeds'][0]}",
                 fontsize=10)
    fig.tight_layout()
    p2 = os.path.join(out, f"{NAME}_trajectories.png")
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]
