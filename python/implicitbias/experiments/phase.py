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

The diagrams are the specs ``specs/phase_plain.toml``, ``phase_wn.toml`` and
``phase_dt.toml`` (``specs/quick/``: the seconds-long versions), run by
:mod:`implicitbias.sweep`; the recovery columns, the summary and the figures
are computed from their stores.
"""

from __future__ import annotations

from typing import Any

from .. import sweep
from .._plotting import pyplot
from ._reproduce import save

NAME = "phase"
SPECS = ("phase_plain", "phase_wn", "phase_dt")
RECOVERY_TOL = 1e-2
DT_CONFIGS = (("plain flow, alpha = 1e-4", 1e-4, "none"), ("plain flow, alpha = 0.1", 0.1, "none"),
              ("WN flow, alpha = 0.1, kappa = 30", 0.1, "joint"))


def recovery(tables: dict[str, Any]) -> dict[str, Any]:
    """The tables by diagram (``plain``, ``wn``, ``dt``) with ``recovered`` (relative error <= 1%)
    and, on the Donoho-Tanner plane, ``delta = M / N``, ``rho = s / M`` and ``bp_recovered``."""
    out = {name[len("phase_"):]: df.assign(recovered=df["relative_error"] <= RECOVERY_TOL)
           for name, df in tables.items()}
    dt = out["dt"]
    dt["delta"] = (dt["problem.n_measurements"] / dt.attrs["spec"]["problem"]["dim"]).round(2)
    dt["rho"] = (dt["problem.sparsity"] / dt["problem.n_measurements"]).round(2)
    dt["bp_recovered"] = dt["bp_relative_error"] <= RECOVERY_TOL
    return out


def summarize(tables: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Recovery probability per cell of each diagram (one table per diagram)."""
    import pandas as pd

    diagrams = recovery(tables)
    out: dict[str, Any] = {}
    for name, keys in (("plain", ["fit.depth", "fit.init_scale"]),
                       ("wn", ["fit.depth", "fit.init_scale", "fit.lr_ratio"])):
        g = diagrams[name].groupby(keys)["recovered"].mean()
        out[name] = pd.DataFrame([{**dict(zip(keys, k)), "p_recovered": float(v)} for k, v in g.items()])
    g = diagrams["dt"].groupby(["fit.init_scale", "fit.weight_norm", "delta", "rho"])[["recovered", "bp_recovered"]]
    out["dt"] = pd.DataFrame([{"init_scale": k[0], "weight_norm": k[1], "delta": k[2], "rho": k[3],
                               "p_recovered": float(v["recovered"]), "p_bp_recovered": float(v["bp_recovered"])}
                              for k, v in g.mean().iterrows()])
    return out


def plot(tables: dict[str, Any], summary: dict[str, Any], out: str) -> list[str]:
    """Draw the two phase diagrams (PNG) under ``out``; returns the paths."""
    diagrams = recovery(tables)
    return [_plot_recovery(diagrams, out), _plot_dt(diagrams, out)]


def _plot_recovery(diagrams: dict[str, Any], out: str) -> str:
    plt = pyplot()
    plain, wn = diagrams["plain"].assign(lr_ratio="none"), diagrams["wn"]
    spec = plain.attrs["spec"]
    depths = sorted(set(plain["fit.depth"]))
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
    problem = spec["problem"]
    fig.suptitle(f"P(recovery: ||x - x*|| <= 1% ||x*||), N={problem['dim']}, M={problem['n_measurements']}, "
                 f"s={problem['sparsity']}, {len(spec['seeds'])} seeds a cell", fontsize=10)
    return save(plt, fig, out, f"{NAME}_recovery.png", 90)


def _plot_dt(diagrams: dict[str, Any], out: str) -> str:
    plt = pyplot()
    dt = diagrams["dt"]
    spec = dt.attrs["spec"]
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
    fig.suptitle(f"Donoho-Tanner plane: P(recovery) over {len(spec['seeds'])} seeds a cell, "
                 f"N={spec['problem']['dim']}, depth 2; white: basis pursuit's transition (P = 1/2)", fontsize=10)
    return save(plt, fig, out, f"{NAME}_donoho_tanner.png", 90)
