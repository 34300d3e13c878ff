"""Reproduction: saddle-to-saddle dynamics of the depth-2 diagonal flow as the initialization vanishes.

Pesme & Flammarion, "Saddle-to-Saddle Dynamics in Diagonal Linear Networks"
(arXiv 2304.00488); docs/science.md, section 1.10.

Setup: signed depth-2 network ``x = u^2 - v^2`` from ``u = v = alpha``, one
sparse-regression instance (M = 6, N = 12, s = 2, noise 0.2: a generic ``y``,
so every saddle is strictly complementary), gradient flow by the dual BDF for
alpha = 1e-5, 1e-10, 1e-20, 1e-40, 1e-60, each recorded with its state
(``record_state``) on one grid of the rescaled time ``tau = 2 t / log(1/alpha)``
from 0 to 30. The limit (alpha -> 0) is the staircase of
:func:`implicitbias.reference.saddle_sequence`; reported: the coordinates of
``x`` against ``tau`` over the staircase, and per alpha and plateau the distance
``max_i |x_i(tau) - beta_k,i|`` at the recorded point nearest the plateau's
midpoint (the last plateau: midway between its start and tau = 30).

The runs are the spec ``specs/saddles.toml`` (``specs/quick/``: two alphas),
run by :mod:`implicitbias.sweep`; the summary and the figure are computed from
its store and the limit process of the same problem (regenerated from the spec's
generator and seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import data
from .._plotting import pyplot
from ..reference import SaddleSequence, saddle_sequence
from ._reproduce import save

NAME = "saddles"
SPECS = ("saddles",)


def problem_of(df: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (A, y) of the store's runs, regenerated from the spec's generator and the (one) seed."""
    spec = df.attrs["spec"]
    problem = dict(spec["problem"])
    generator = getattr(data, problem.pop("generator"))
    seeds = set(df["seed"])
    if len(seeds) != 1:
        raise ValueError(f"the saddles reproduction takes one problem (one seed), got seeds {sorted(seeds)}")
    d = generator(**problem, seed=int(seeds.pop()))
    return d.A, d.y


def rescaled_time(t: Any, alpha: float) -> np.ndarray:
    """``tau = 2 t / log(1/alpha)``."""
    return 2.0 * np.asarray(t, dtype=np.float64) / np.log(1.0 / alpha)


def test_points(seq: SaddleSequence, tau_end: float) -> np.ndarray:
    """The midpoint in tau of each plateau; for the last (infinite) one, midway between its start and tau_end."""
    P = seq.plateaus()
    return np.append((P[:-1, 0] + P[:-1, 1]) / 2.0, (P[-1, 0] + tau_end) / 2.0)


def summarize(tables: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """The staircase (one row per saddle: plateau, loss, support, the saddle) and the distance of each run
    to each saddle at the recorded point nearest its test point (:func:`test_points`)."""
    import pandas as pd

    df = tables["saddles"]
    A, y = problem_of(df)
    seq = saddle_sequence(A, y)
    P = seq.plateaus()
    stairs = [{"plateau": k, "tau_start": float(P[k, 0]), "tau_end": float(P[k, 1]), "loss": float(seq.losses[k]),
               "support": " ".join(map(str, np.flatnonzero(seq.saddles[k]))),
               "saddle": " ".join(f"{v:.6g}" for v in seq.saddles[k])} for k in range(seq.n_jumps + 1)]
    rows = []
    for _, r in df.sort_values("fit.init_scale", ascending=False).iterrows():
        alpha = float(r["fit.init_scale"])
        tau = rescaled_time(r["history.t"], alpha)
        X = np.array([list(v) for v in r["history.x"]])
        for k, point in enumerate(test_points(seq, float(tau[-1]))):
            i = int(np.argmin(np.abs(tau - point)))
            rows.append({"init_scale": alpha, "plateau": k, "tau_start": float(P[k, 0]), "tau_end": float(P[k, 1]),
                         "tau": float(tau[i]), "distance": float(np.max(np.abs(X[i] - seq.saddles[k]))),
                         "status": r["status"]})
    return {"staircase": pd.DataFrame(stairs), "distance": pd.DataFrame(rows)}


def plot(tables: dict[str, Any], summary: dict[str, Any], out: str) -> list[str]:
    """Draw the figure (PNG) under ``out``; returns its path."""
    plt = pyplot()
    df = tables["saddles"]
    A, y = problem_of(df)
    seq = saddle_sequence(A, y)
    coords = np.flatnonzero(np.any(seq.saddles != 0, axis=0))
    colors = plt.get_cmap("tab10")(np.arange(coords.size) % 10)
    runs = df.sort_values("fit.init_scale", ascending=False)
    alphas = runs["fit.init_scale"].to_numpy(dtype=float)
    shade = np.linspace(0.25, 1.0, alphas.size)

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0), gridspec_kw={"width_ratios": [1.6, 1.0]})
    ax = axes[0]
    tau_end = 0.0
    for (_, r), a, w in zip(runs.iterrows(), alphas, shade):
        tau = rescaled_time(r["history.t"], a)
        tau_end = max(tau_end, float(tau[-1]))
        X = np.array([list(v) for v in r["history.x"]])
        for c, color in zip(coords, colors):
            ax.plot(tau, X[:, c], color=color, alpha=w, lw=1.0)
        ax.plot([], [], color="dimgray", alpha=w, lw=1.0, label=f"alpha = {a:.0e}")  # legend: the shade
    grid = np.linspace(0.0, tau_end, 4000)
    stairs = seq.x_at(grid)
    for j, c in enumerate(coords):
        ax.plot(grid, stairs[:, c], color="black", ls="--", lw=0.9, label="limit (alpha -> 0)" if j == 0 else None)
    for t in seq.times[1:]:
        ax.axvline(t, color="gray", lw=0.5, alpha=0.5)
    ax.set_xlabel("tau = 2 t / log(1/alpha)")
    ax.set_ylabel("x_i(tau) (coordinates that any saddle uses)")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, alpha=0.3)

    ax = axes[1]
    dist = summary["distance"]
    for k in range(seq.n_jumps + 1):
        d = dist[dist["plateau"] == k].sort_values("init_scale", ascending=False)
        ax.semilogy(np.log10(1.0 / d["init_scale"]), np.maximum(d["distance"], 1e-16), "o-", ms=3,
                    label=f"saddle {k}" + (" (basis pursuit)" if k == seq.n_jumps else ""))
    ax.set_xlabel("log10(1 / alpha)")
    ax.set_ylabel("max_i |x_i - beta_k,i|, mid-plateau")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    problem = df.attrs["spec"]["problem"]
    fig.suptitle(f"Saddle to saddle: depth-2 flow, N={problem['dim']}, M={problem['n_measurements']}, "
                 f"seed {int(df['seed'].iloc[0])}", fontsize=10)
    return [save(plt, fig, out, f"{NAME}_staircase.png", 100)]
