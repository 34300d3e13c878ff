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
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import data, reference, steepest
from .._native import core
from .._progress import progress_bar
from ._io import write_outputs
from ._plotting import pyplot

NAME = "margins"
NORMS = ("l2", "linf", "l1")
ALG_LABEL = {"l2": "GD (l2)", "linf": "sign descent (linf)", "l1": "coordinate descent (l1)"}


def settings(quick: bool = False) -> dict[str, Any]:
    """The experiment's parameters (``quick``: a seconds-long smoke version)."""
    # per algorithm: step size and schedule (sign and coordinate descent need
    # decaying steps on the diagonal net: constant steps chatter, docs/science.md, section 2.5)
    table_algs = {
        "linear": {
            "l2": dict(lr=0.1, schedule="constant"),
            "linf": dict(lr=0.01, schedule="constant"),
            "l1": dict(lr=0.1, schedule="constant"),
        },
        "diagonal": {
            "l2": dict(lr=0.1, schedule="constant"),
            "linf": dict(lr=0.01, schedule="power"),
            "l1": dict(lr=0.1, schedule="power"),
        },
    }
    return {
        "n_samples": 15,
        "dim": 20,
        "seeds": list(range(2 if quick else 5)),
        "table_steps": 20_000 if quick else 200_000,
        "table_algs": table_algs,
        "diagonal_init_scale": 0.1,
        "decay_k0": 100.0,
        "decay_power": 0.5,
        "digits_samples": 150 if quick else 400,
        "digits_width": 16 if quick else 32,
        "digits_steps": 1500 if quick else 20_000,
        "digits_seed": 0,
        "beta2": 0.99,
        "trajectory_algs": [
            ("GD", dict(optimizer="steepest", norm="l2", lr=0.1, schedule="constant")),
            ("sign descent", dict(optimizer="steepest", norm="linf", lr=0.003, schedule="power")),
            # one of the 2080 weights moves per step: it needs a large step to get anywhere
            ("coordinate descent", dict(optimizer="steepest", norm="l1", lr=1.0, schedule="power")),
            ("Adam b1=0 eps=0", dict(optimizer="adam", beta1=0.0, eps=0.0, lr=0.003, schedule="power")),
            ("Adam b1=0.9 eps=0", dict(optimizer="adam", beta1=0.9, eps=0.0, lr=0.003, schedule="power")),
            ("Adam b1=0 eps=1e-8", dict(optimizer="adam", beta1=0.0, eps=1e-8, lr=0.003, schedule="power")),
            ("Adam b1=0.9 eps=1e-8", dict(optimizer="adam", beta1=0.9, eps=1e-8, lr=0.003, schedule="power")),
        ],
        "drop_lrs": [1.0, 0.3, 0.1, 0.03] if quick else [2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01, 0.005],
        "drop_norms": ["l2", "linf"],
        "drop_time": 20.0 if quick else 60.0,
    }


_DEFAULTS = {"optimizer": "steepest", "norm": "l2", "lr": 0.1, "schedule": "constant", "beta1": 0.9, "eps": 1e-8}


def _batch(algs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-run lists for fit_many from a list of algorithm dicts."""
    keys = sorted({k for a in algs for k in a} | {"optimizer", "norm", "lr", "schedule"})
    return {k: [a.get(k, _DEFAULTS[k]) for a in algs] for k in keys}


def _table(cfg: dict[str, Any], num_threads: int | None, bar: tqdm) -> list[dict[str, Any]]:
    rows = []
    for seed in cfg["seeds"]:
        prob = data.separable(n_samples=cfg["n_samples"], dim=cfg["dim"], seed=seed)
        X, y = prob.X, prob.y
        lin_opt = {n: reference.max_margin(X, y, n).margin for n in NORMS}
        diag_ref = {"l2": reference.diagonal_max_margin(X, y, "l1").margin,
                    "linf": reference.diagonal_max_margin(X, y, "linf").margin, "l1": float("nan")}
        for model in ("linear", "diagonal"):
            algs = [dict(norm=n, **cfg["table_algs"][model][n]) for n in NORMS]
            runs = steepest.fit_many(
                X, y, model=model, steps=cfg["table_steps"], n_record=10, decay_k0=cfg["decay_k0"],
                decay_power=cfg["decay_power"], init_scale=cfg["diagonal_init_scale"] if model == "diagonal" else None,
                num_threads=num_threads, **_batch(algs),
            )
            for n_alg, r in zip(NORMS, runs):
                for n_margin in NORMS:
                    m = r.margin(n_margin)
                    ref = lin_opt[n_margin] if model == "linear" else diag_ref[n_margin]
                    rows.append({
                        "model": model, "seed": seed, "algorithm": n_alg, "margin_norm": n_margin,
                        "margin": m, "reference": ref, "ratio": m / ref if np.isfinite(ref) else float("nan"),
                        "accuracy": r.accuracy, "log_loss": r.log_loss, "status": r.status,
                    })
            bar.update(len(runs))
    # the parameter-l1 column of the diagonal net: relative to the best algorithm of that seed
    for seed in cfg["seeds"]:
        col = [row for row in rows if row["model"] == "diagonal" and row["seed"] == seed and row["margin_norm"] == "l1"]
        best = max(row["margin"] for row in col)
        for row in col:
            row["ratio_to_best"] = row["margin"] / best
    return rows


def _trajectories(cfg: dict[str, Any], num_threads: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    d = data.digits_binary(n_samples=cfg["digits_samples"], seed=cfg["digits_seed"])
    algs = [a for _, a in cfg["trajectory_algs"]]
    runs = steepest.fit_many(
        d.X, d.y, model="relu2", width=cfg["digits_width"], seed=cfg["digits_seed"], steps=cfg["digits_steps"],
        beta2=cfg["beta2"], decay_k0=cfg["decay_k0"], decay_power=cfg["decay_power"], n_record=120,
        num_threads=num_threads, **_batch(algs),
    )
    curves, final = [], {}
    for (label, _), r in zip(cfg["trajectory_algs"], runs):
        h = r.history
        for k in range(len(h["step"])):
            curves.append({"algorithm": label, **{c: float(h[c][k]) for c in (
                "step", "log_loss", "accuracy", "margin_l2", "margin_linf", "margin_l1", "margin_spectral",
                "smoothed_margin", "alignment")}})
        perfect = np.flatnonzero(h["accuracy"] == 1.0)
        final[label] = {
            "accuracy": r.accuracy, "log_loss": r.log_loss,
            "first_perfect_step": float(h["step"][perfect[0]]) if perfect.size else None,
            **{f"margin_{n}": r.margin(n) for n in ("l2", "linf", "l1", "spectral")},
            "wall_time": r.wall_time,
        }
    return curves, final


def _drops(cfg: dict[str, Any], num_threads: int | None, bar: tqdm) -> list[dict[str, Any]]:
    prob = data.separable(n_samples=cfg["n_samples"], dim=cfg["dim"], seed=cfg["seeds"][0])
    rows = []
    for norm in cfg["drop_norms"]:
        lrs = cfg["drop_lrs"]
        # the same time horizon for every step size: steps = drop_time / lr
        runs = []
        for lr in lrs:
            runs.append(steepest.fit(prob.X, prob.y, "linear", norm=norm, lr=lr, init=np.full(cfg["dim"], 0.01),
                                     steps=round(cfg["drop_time"] / lr), record_every=1,
                                     num_threads=num_threads))
            bar.update(1)
        for lr, r in zip(lrs, runs):
            h = r.history
            after = np.flatnonzero(h["accuracy"] == 1.0)
            sm = h["smoothed_margin"][after[0]:] if after.size else np.array([])
            drop = float(np.max(-np.diff(sm))) if sm.size > 1 else float("nan")
            rows.append({"norm": norm, "lr": lr, "largest_drop": max(drop, 0.0), "raw_largest_drop": drop,
                         "final_smoothed_margin": float(sm[-1]) if sm.size else float("nan"),
                         "steps": r.n_steps})
    return rows


def run(quick: bool = False, progress: bool = True, num_threads: int | None = None) -> dict[str, Any]:
    """Run the three parts; returns the table (rows, curves, summaries, settings)."""
    cfg = settings(quick)
    start = time.perf_counter()
    total = (len(cfg["seeds"]) * 2 * len(NORMS) + len(cfg["trajectory_algs"])
             + len(cfg["drop_norms"]) * len(cfg["drop_lrs"]))
    with progress_bar(total, NAME, enabled=progress) as bar:
        table_rows = _table(cfg, num_threads, bar)
        curves, final = _trajectories(cfg, num_threads)
        bar.update(len(cfg["trajectory_algs"]))
        drops = _drops(cfg, num_threads, bar)
    summary = []
    for model in ("linear", "diagonal"):
        for a in NORMS:
            for n in NORMS:
                sel = [r for r in table_rows if r["model"] == model and r["algorithm"] == a and r["margin_norm"] == n]
                key = "ratio" if not (model == "diagonal" and n == "l1") else "ratio_to_best"
                vals = np.array([r[key] for r in sel])
                summary.append({"model": model, "algorithm": a, "margin_norm": n, "measure": key,
                                "mean": float(np.mean(vals)), "min": float(np.min(vals)), "max": float(np.max(vals))})
    return {"settings": cfg, "table": table_rows, "summary": summary, "curves": curves, "final": final,
            "drops": drops, "seconds": time.perf_counter() - start, "build": {"isa": core.isa}}


def write(table: dict[str, Any], out: str) -> list[str]:
    """Write the data: table, trajectories and drops as CSV, summary as JSON."""
    return write_outputs(NAME, out, {"table": table["table"], "trajectories": table["curves"], "drops": table["drops"]},
                         {k: table[k] for k in ("settings", "summary", "final", "drops", "seconds", "build")})


def format_table(table: dict[str, Any], model: str) -> str:
    """The 3x3 table of one model as text (mean ratio to the reference over seeds)."""
    lines = [f"{model}: margin / reference (mean over {len(table['settings']['seeds'])} seeds)",
             f"{'algorithm':26s}" + "".join(f"{n:>10s}" for n in NORMS)]
    for a in NORMS:
        row = {s["margin_norm"]: s["mean"] for s in table["summary"] if s["model"] == model and s["algorithm"] == a}
        lines.append(f"{ALG_LABEL[a]:26s}" + "".join(f"{row[n]:10.4f}" for n in NORMS))
    return "\n".join(lines)


def plot(table: dict[str, Any], out: str) -> list[str]:
    """Draw the table heatmaps, the trajectories and the drop figure (PNG); returns the paths."""
    plt = pyplot()
    os.makedirs(out, exist_ok=True)
    cfg = table["settings"]

    # 1. the two 3x3 tables
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for ax, model in zip(axes, ("linear", "diagonal")):
        M = np.array([[next(s["mean"] for s in table["summary"] if s["model"] == model and s["algorithm"] == a
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
    fig.suptitle(f"Each algorithm maximizes its own margin (separable data n={cfg['n_samples']}, d={cfg['dim']}, "
                 f"{len(cfg['seeds'])} seeds, {cfg['table_steps']} steps)", fontsize=10)
    fig.tight_layout()
    p1 = os.path.join(out, f"{NAME}_table.png")
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    # 2. trajectories after perfect accuracy
    labels = [label for label, _ in cfg["trajectory_algs"]]
    colors = dict(zip(labels, ["black", "tab:red", "tab:green", "tab:blue", "tab:purple", "tab:cyan", "tab:pink"]))
    styles = dict(zip(labels, ["-", "-", "-", "--", "--", ":", ":"]))
    panels = [("margin_l2", "l2 margin"), ("margin_linf", "l_inf margin"), ("margin_l1", "l1 margin"),
              ("smoothed_margin", "smoothed margin (own norm)")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.9))
    for label in labels:
        pts = [c for c in table["curves"] if c["algorithm"] == label and c["accuracy"] == 1.0 and c["step"] > 0]
        if not pts:
            continue
        s = np.array([c["step"] for c in pts])
        for ax, (key, _) in zip(axes, panels):
            v = np.array([c[key] for c in pts])
            if key in ("margin_linf", "margin_l1"):  # log axes: the (rare) non-positive points are left out
                v = np.where(v > 0, v, np.nan)
            ax.plot(s, v, styles[label], color=colors[label], label=label, lw=1.4)
    for ax, (_, title) in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in axes[1:3]:
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Two-layer ReLU net (width {cfg['digits_width']}, no biases) on digits odd vs even "
                 f"(n={cfg['digits_samples']}), after perfect training accuracy; Adam beta2={cfg['beta2']}",
                 fontsize=10)
    fig.tight_layout()
    p2 = os.path.join(out, f"{NAME}_trajectories.png")
    fig.savefig(p2, dpi=110)
    plt.close(fig)

    # 3. largest one-step drop of the smoothed margin vs step size
    fig, ax = plt.subplots(figsize=(5.2, 3.9))
    floor = 1e-17
    for norm, color in zip(cfg["drop_norms"], ("black", "tab:red")):
        pts = [d for d in table["drops"] if d["norm"] == norm]
        ax.loglog([d["lr"] for d in pts], [max(d["largest_drop"], floor) for d in pts], "o-", color=color,
                  label=f"{ALG_LABEL[norm]}")
    ax.set_xlabel("step size lr (normalized steps)")
    ax.set_ylabel("largest one-step drop of the smoothed margin")
    ax.set_title(f"linear model, after perfect accuracy (drops <= {floor:g} drawn at the floor)", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p3 = os.path.join(out, f"{NAME}_drop_vs_lr.png")
    fig.savefig(p3, dpi=110)
    plt.close(fig)
    return [p1, p2, p3]
