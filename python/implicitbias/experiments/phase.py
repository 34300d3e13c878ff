"""Phase diagrams of sparse recovery by diagonal networks, built on :mod:`implicitbias.sweep`.

Chou, Rauhut & Ward (arXiv 2305.05448) claim that weight normalization keeps
the sparse bias "at practically large initialization"; the compressed-sensing
claims hold "for enough measurements". Two phase diagrams test both
(docs/science.md, section 1; docs/sweeps.md, "Phase diagrams"):

* **recovery**: the probability of recovery over (init scale alpha, lr ratio
  kappa) for the plain flow (which has no kappa) and the joint-WN flow, at
  depths 2 and 3, on N = 100, M = 40, s = 4 Gaussian problems, 20 seeds a cell;
* **Donoho-Tanner**: the probability of recovery over (delta = M/N, rho = s/M)
  for basis pursuit, the plain flow at small init (alpha = 1e-4), the plain
  flow at alpha = 0.1 and the WN flow at alpha = 0.1 (kappa = 30), depth 2,
  N = 100, 10 seeds a cell, with the basis-pursuit transition (probability 1/2)
  drawn over every panel.

A run *recovers* when ``||x - x_star||_2 <= 1e-2 ||x_star||_2`` (relative error
at most 1%; the same rule for basis pursuit's solution). The flows run to their
limit (loss at the integrator's accuracy) with ``rtol = 1e-6``, far below the 1%
that decides success.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from .. import sweep
from .._native import core
from ._plotting import pyplot

NAME = "phase"
RECOVERY_TOL = 1e-2
DT_CONFIGS = (("plain flow, alpha = 1e-4", 1e-4, "none"), ("plain flow, alpha = 0.1", 0.1, "none"),
              ("WN flow, alpha = 0.1, kappa = 30", 0.1, "joint"))
DT_KAPPA = 30.0


def settings(quick: bool = False) -> dict[str, Any]:
    """The experiment's parameters (``quick``: a seconds-long smoke version)."""
    if quick:
        return {"dim": 30, "n_measurements": 12, "sparsity": 2, "depths": [2], "seeds": 2, "rtol": 1e-6,
                "init_scale": [-2, -1, 2], "lr_ratio": [0, 1, 2], "dt_seeds": 2, "delta": [1 / 3, 2 / 3],
                "rho": [0.2, 0.5]}
    return {"dim": 100, "n_measurements": 40, "sparsity": 4, "depths": [2, 3], "seeds": 20, "rtol": 1e-6,
            "init_scale": [-3, 0, 7], "lr_ratio": [0, 2, 5], "dt_seeds": 10,
            "delta": [round(d, 2) for d in np.linspace(0.1, 0.8, 8)],
            "rho": [round(r, 2) for r in np.linspace(0.1, 0.8, 8)]}  # s = rho M is an integer on this grid


def specs(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three sweep specs: plain and WN flow over the recovery grid, and the Donoho-Tanner plane."""
    problem = {"generator": "sparse_regression", "n_measurements": cfg["n_measurements"], "dim": cfg["dim"],
               "sparsity": cfg["sparsity"]}
    fit = {"method": "flow", "rtol": cfg["rtol"], "n_record": 2}
    scales = {"logspace": cfg["init_scale"]}
    pairs = [(m, max(1, round(r * m))) for m in (round(d * cfg["dim"]) for d in cfg["delta"])
             for r in cfg["rho"]]
    return {
        "plain": {"family": "diagonal", "seeds": cfg["seeds"], "problem": problem, "fit": fit,
                  "grid": {"fit.depth": cfg["depths"], "fit.init_scale": scales}},
        "wn": {"family": "diagonal", "seeds": cfg["seeds"], "problem": problem, "fit": {**fit, "weight_norm": "joint"},
               "grid": {"fit.depth": cfg["depths"], "fit.init_scale": scales,
                        "fit.lr_ratio": {"logspace": cfg["lr_ratio"]}}},
        "dt": {"family": "diagonal", "seeds": cfg["dt_seeds"],
               "problem": {"generator": "sparse_regression", "dim": cfg["dim"]},
               "fit": {**fit, "depth": 2, "lr_ratio": DT_KAPPA},
               "zip": [{"problem.n_measurements": [m for m, _ in pairs], "problem.sparsity": [s for _, s in pairs]},
                       {"fit.init_scale": [c[1] for c in DT_CONFIGS], "fit.weight_norm": [c[2] for c in DT_CONFIGS]}]},
    }


def run(quick: bool = False, progress: bool = True, num_threads: int | None = None,
        store: str | None = None) -> dict[str, Any]:
    """Run the three sweeps (into ``store``, resumable; default: a temporary directory) and return the tables."""
    cfg = settings(quick)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="implicitbias-phase-") as tmp:
        tables = {name: sweep.run(spec, os.path.join(store or tmp, name), progress=progress, num_threads=num_threads)
                  for name, spec in specs(cfg).items()}
    for df in tables.values():
        df["recovered"] = df["relative_error"] <= RECOVERY_TOL
    dt = tables["dt"]
    dt["delta"] = (dt["problem.n_measurements"] / cfg["dim"]).round(2)
    dt["rho"] = (dt["problem.sparsity"] / dt["problem.n_measurements"]).round(2)
    dt["bp_recovered"] = dt["bp_relative_error"] <= RECOVERY_TOL
    return {"settings": cfg, "tables": tables, "summary": summarize(tables),
            "meta": {"seconds": time.perf_counter() - start, "core_isa": core.isa,
                     "threads": num_threads or core.max_threads(), "runs": sum(len(t) for t in tables.values())}}


def summarize(tables: dict[str, Any]) -> dict[str, Any]:
    """Recovery probability per cell of each diagram (nested lists, JSON-ready)."""
    out: dict[str, Any] = {}
    for name, keys in (("plain", ["fit.depth", "fit.init_scale"]),
                       ("wn", ["fit.depth", "fit.init_scale", "fit.lr_ratio"])):
        g = tables[name].groupby(keys)["recovered"].mean()
        out[name] = [{**dict(zip(keys, k)), "p_recovered": float(v)} for k, v in g.items()]
    dt = tables["dt"]
    g = dt.groupby(["fit.init_scale", "fit.weight_norm", "delta", "rho"])[["recovered", "bp_recovered"]].mean()
    out["dt"] = [{"init_scale": k[0], "weight_norm": k[1], "delta": k[2], "rho": k[3],
                  "p_recovered": float(v["recovered"]), "p_bp_recovered": float(v["bp_recovered"])}
                 for k, v in g.iterrows()]
    return out


def write(table: dict[str, Any], out: str) -> list[str]:
    """Write the three run tables (CSV) and the summary (JSON) under ``out``; returns the paths."""
    import json

    os.makedirs(out, exist_ok=True)
    paths = []
    for name, df in table["tables"].items():
        paths.append(os.path.join(out, f"{NAME}_{name}_runs.csv"))
        df.to_csv(paths[-1], index=False)
    paths.append(os.path.join(out, f"{NAME}_summary.json"))
    with open(paths[-1], "w") as fh:
        json.dump({k: table[k] for k in ("settings", "summary", "meta")}, fh, indent=1, default=float)
    return paths


def plot(table: dict[str, Any], out: str) -> list[str]:
    """Draw the two phase diagrams (PNG) under ``out``; returns the paths."""
    return [_plot_recovery(table, out), _plot_dt(table, out)]


def _plot_recovery(table: dict[str, Any], out: str) -> str:
    plt = pyplot()
    cfg, plain, wn = table["settings"], table["tables"]["plain"].copy(), table["tables"]["wn"]
    plain["lr_ratio"] = "none"
    depths = cfg["depths"]
    fig, axes = plt.subplots(len(depths), 2, figsize=(8.6, 3.3 * len(depths)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 3.2]})
    for row, depth in zip(axes, depths):
        sweep.plot_phase(plain[plain["fit.depth"] == depth], x="lr_ratio", y="fit.init_scale", value="recovered",
                         ax=row[0], title=f"plain flow, L = {depth}", colorbar=False)
        sweep.plot_phase(wn[wn["fit.depth"] == depth], x="fit.lr_ratio", y="fit.init_scale", value="recovered",
                         ax=row[1], title=f"weight-normalized flow (joint), L = {depth}", label="P(recovery)")
        row[0].set_xlabel("(no lr ratio)")
        row[1].set_xlabel("lr ratio kappa")
        row[0].set_ylabel("init scale alpha")
        row[1].set_ylabel("init scale alpha")
    fig.suptitle(f"P(recovery: ||x - x*|| <= 1% ||x*||), N={cfg['dim']}, M={cfg['n_measurements']}, "
                 f"s={cfg['sparsity']}, {cfg['seeds']} seeds a cell", fontsize=10)
    return _save(plt, fig, out, f"{NAME}_recovery.png")


def _save(plt: Any, fig: Any, out: str, name: str) -> str:
    fig.tight_layout()
    path = os.path.join(out, name)
    os.makedirs(out, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_dt(table: dict[str, Any], out: str) -> str:
    plt = pyplot()
    cfg, dt = table["settings"], table["tables"]["dt"]
    bp = sweep.phase_table(dt, x="delta", y="rho", value="bp_recovered")
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.7))
    sweep.plot_phase(dt, x="delta", y="rho", value="bp_recovered", ax=axes[0], overlay=bp,
                     title="basis pursuit (min l1)", colorbar=False)
    for ax, (label, scale, wn) in zip(axes[1:], DT_CONFIGS):
        sel = dt[(dt["fit.init_scale"] == scale) & (dt["fit.weight_norm"] == wn)]
        sweep.plot_phase(sel, x="delta", y="rho", value="recovered", ax=ax, overlay=bp, title=label,
                         colorbar=ax is axes[-1], label="P(recovery)")
    for ax in axes:
        ax.set_xlabel("delta = M / N")
        ax.set_ylabel("rho = s / M")
    fig.suptitle(f"Donoho-Tanner plane: P(recovery) over {cfg['dt_seeds']} seeds a cell, N={cfg['dim']}, depth 2; "
                 "white: basis pursuit's transition (P = 1/2)", fontsize=10)
    return _save(plt, fig, out, f"{NAME}_donoho_tanner.png")
