#!/usr/bin/env python
"""Benchmark steepest descent (implicitbias.steepest) against hand-written peers.

S1: full-batch training of a two-layer ReLU network (width 256, no biases) on
    the 8x8 digits (1797 x 64, odd vs even), exponential loss by log-sum-exp,
    8 runs = 4 algorithms (normalized GD, sign descent, coordinate descent,
    Adam) x 2 seeds, power-decay steps.  implicitbias: one fit_many call.
    Peers: PyTorch eager (autograd, float64, 2 threads), JAX jit of a
    fori_loop vmapped over the seeds (float64, compile time reported apart).
    Rates are run-steps per second (runs x steps / wall time), every
    implementation on the same --steps steps (peers timed once by default:
    --peer-repeat); the final parameters after --check-steps steps are
    compared.
S2: the linear model trained by normalized GD until its l2 margin reaches
    0.99 of the exact optimum (ib.reference.max_margin), implicitbias vs a
    vectorized NumPy loop doing the same steps.

    python bench/bench_steepest.py                 # full (a few minutes)
    python bench/bench_steepest.py --quick         # smoke run
Writes bench/results_steepest.json and .md (also printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

import implicitbias as ib  # noqa: E402

ALGS = [  # (label, implicitbias kwargs, lr0)
    ("GD (l2)", dict(optimizer="steepest", norm="l2"), 0.1),
    ("sign (linf)", dict(optimizer="steepest", norm="linf"), 0.003),
    ("coordinate (l1)", dict(optimizer="steepest", norm="l1"), 1.0),
    ("Adam", dict(optimizer="adam", norm="l2"), 0.003),
]
K0, POWER, BETA1, BETA2, EPS = 100.0, 0.5, 0.9, 0.999, 1e-8


def dgemm_rate() -> float:
    a = np.random.default_rng(0).standard_normal((2000, 2000))
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * 2000 ** 3 / best / 1e9


def split(theta: np.ndarray, width: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    W = theta[:width * dim].reshape((width, dim), order="F")
    return W, theta[width * dim:]


def ib_run(X, y, inits, width, steps, threads=None):
    kw = {"norm": [], "optimizer": [], "lr": []}
    for _, a, lr in ALGS:
        for _ in inits:
            kw["norm"].append(a["norm"])
            kw["optimizer"].append(a["optimizer"])
            kw["lr"].append(lr)
    init = [th for _ in ALGS for th in inits]
    t = time.perf_counter()
    rs = ib.steepest.fit_many(X, y, model="relu2", width=width, init=init, steps=steps, schedule="power",
                              decay_k0=K0, decay_power=POWER, beta1=BETA1, beta2=BETA2, eps=EPS, n_record=2,
                              num_threads=threads, **kw)
    return time.perf_counter() - t, [r.theta for r in rs]


def torch_run(X, y, inits, width, steps):
    import torch

    torch.set_num_threads(2)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    d = X.shape[1]
    out = []
    t0 = time.perf_counter()
    for _, a, lr0 in ALGS:
        for th in inits:
            W0, a0 = split(th, width, d)
            W = torch.tensor(W0).requires_grad_()
            av = torch.tensor(a0).requires_grad_()
            mW, ma, vW, va = (torch.zeros_like(W), torch.zeros_like(av), torch.zeros_like(W), torch.zeros_like(av))
            for k in range(steps):
                f = torch.relu(Xt @ W.T) @ av
                loss = torch.logsumexp(-yt * f, 0)  # log-loss; its gradient is grad Loss / Loss
                gW, ga = torch.autograd.grad(loss, (W, av))
                lr = lr0 * (1 + k / K0) ** -POWER
                with torch.no_grad():
                    if a["optimizer"] == "adam":
                        # Adam is scale-free only with eps = 0; use the true gradient Loss * g~
                        s = torch.exp(loss)
                        gW, ga = gW * s, ga * s
                        mW.mul_(BETA1).add_(gW, alpha=1 - BETA1)
                        ma.mul_(BETA1).add_(ga, alpha=1 - BETA1)
                        vW.mul_(BETA2).addcmul_(gW, gW, value=1 - BETA2)
                        va.mul_(BETA2).addcmul_(ga, ga, value=1 - BETA2)
                        c1, c2 = 1 - BETA1 ** (k + 1), 1 - BETA2 ** (k + 1)
                        W -= lr * (mW / c1) / (torch.sqrt(vW / c2) + EPS)
                        av -= lr * (ma / c1) / (torch.sqrt(va / c2) + EPS)
                    elif a["norm"] == "l2":
                        n = torch.sqrt((gW ** 2).sum() + (ga ** 2).sum())
                        W -= lr * gW / n
                        av -= lr * ga / n
                    elif a["norm"] == "linf":
                        W -= lr * torch.sign(gW)
                        av -= lr * torch.sign(ga)
                    else:  # l1: the first maximal |g_j| in theta's (column-major) order
                        flat = torch.cat([gW.T.reshape(-1), ga])
                        j = int(torch.argmax(flat.abs()))
                        step = lr * torch.sign(flat[j])
                        if j < gW.numel():
                            W[j % width, j // width] -= step
                        else:
                            av[j - gW.numel()] -= step
            out.append(np.concatenate([W.detach().numpy().reshape(-1, order="F"), av.detach().numpy()]))
    return time.perf_counter() - t0, out


def jax_build(X, y, width, steps):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss_fn(params):
        W, a = params
        return jax.scipy.special.logsumexp(-yj * (jax.nn.relu(Xj @ W.T) @ a))

    grad = jax.value_and_grad(loss_fn)
    fns = {}
    for label, a, lr0 in ALGS:
        def body(k, state, a=a, lr0=lr0):
            W, av, mW, ma, vW, va = state
            loss, (gW, ga) = grad((W, av))
            lr = lr0 * (1 + k / K0) ** -POWER
            if a["optimizer"] == "adam":
                s = jnp.exp(loss)
                gW, ga = gW * s, ga * s
                mW = BETA1 * mW + (1 - BETA1) * gW
                ma = BETA1 * ma + (1 - BETA1) * ga
                vW = BETA2 * vW + (1 - BETA2) * gW * gW
                va = BETA2 * va + (1 - BETA2) * ga * ga
                c1, c2 = 1 - BETA1 ** (k + 1.0), 1 - BETA2 ** (k + 1.0)
                W = W - lr * (mW / c1) / (jnp.sqrt(vW / c2) + EPS)
                av = av - lr * (ma / c1) / (jnp.sqrt(va / c2) + EPS)
            elif a["norm"] == "l2":
                n = jnp.sqrt(jnp.sum(gW ** 2) + jnp.sum(ga ** 2))
                W, av = W - lr * gW / n, av - lr * ga / n
            elif a["norm"] == "linf":
                W, av = W - lr * jnp.sign(gW), av - lr * jnp.sign(ga)
            else:
                flat = jnp.concatenate([gW.T.reshape(-1), ga])
                j = jnp.argmax(jnp.abs(flat))
                e = jnp.zeros_like(flat).at[j].set(lr * jnp.sign(flat[j]))
                W = W - e[:gW.size].reshape(gW.shape[1], gW.shape[0]).T
                av = av - e[gW.size:]
            return (W, av, mW, ma, vW, va)

        def run(W, av, body=body):
            z = (W, av, jnp.zeros_like(W), jnp.zeros_like(av), jnp.zeros_like(W), jnp.zeros_like(av))
            return jax.lax.fori_loop(0, steps, body, z)[:2]

        fns[label] = jax.jit(jax.vmap(run))
    return fns


def jax_run(fns, inits, width, dim):
    import jax
    import jax.numpy as jnp

    Ws = jnp.asarray(np.stack([split(th, width, dim)[0] for th in inits]))
    As = jnp.asarray(np.stack([split(th, width, dim)[1] for th in inits]))
    t = time.perf_counter()
    outs = []
    for label, _, _ in ALGS:
        W, a = fns[label](Ws, As)
        jax.block_until_ready(W)
        for s in range(len(inits)):
            outs.append(np.concatenate([np.asarray(W[s]).reshape(-1, order="F"), np.asarray(a[s])]))
    return time.perf_counter() - t, outs


def rel_diffs(xs, refs):
    return [float(np.linalg.norm(x - r) / np.linalg.norm(r)) for x, r in zip(xs, refs)]


def s1(args) -> dict:
    d = ib.data.digits_binary()
    X, y = d.X, d.y
    width = args.width
    inits = [ib.steepest.init_params("relu2", X.shape[1], width=width, seed=s) for s in (0, 1)]
    n_runs = len(ALGS) * len(inits)
    flops_per_step = 2 * 2 * width * X.shape[0] * X.shape[1]  # forward W X^T and backward delta X
    res = {"steps": args.steps, "peer_steps": args.peer_steps, "runs": n_runs, "width": width,
           "n_samples": X.shape[0], "dim": X.shape[1], "rows": []}

    def add(impl, variant, seconds, steps, compile_s=None, diff=None):
        rate = n_runs * steps / seconds
        res["rows"].append({"impl": impl, "variant": variant, "seconds": seconds, "steps": steps,
                            "run_steps_per_s": rate, "gflops": rate * flops_per_step / 1e9,
                            "compile_s": compile_s, "max_rel_diff": diff})

    # agreement after check_steps steps (implicitbias as the reference)
    _, ref = ib_run(X, y, inits, width, args.check_steps)
    best = min(ib_run(X, y, inits, width, args.steps)[0] for _ in range(args.repeat))
    add("implicitbias", "fit_many, 2 threads", best, args.steps, diff=0.0)
    best1 = ib_run(X, y, inits, width, args.steps, threads=1)[0]  # one timing (about a minute)
    add("implicitbias", "fit_many, 1 thread", best1, args.steps)
    try:
        _, tchk = torch_run(X, y, inits, width, args.check_steps)
        diffs = rel_diffs(tchk, ref)
        tt = min(torch_run(X, y, inits, width, args.peer_steps)[0] for _ in range(args.peer_repeat))
        add("torch", "eager autograd, float64, 2 threads", tt, args.peer_steps, diff=diffs)
    except ImportError:
        res["rows"].append({"impl": "torch", "variant": "not installed"})
    try:
        t = time.perf_counter()
        fns = jax_build(X, y, width, args.check_steps)
        first, jchk = jax_run(fns, inits, width, X.shape[1])
        diffs = rel_diffs(jchk, ref)
        fns = jax_build(X, y, width, args.peer_steps)
        first, _ = jax_run(fns, inits, width, X.shape[1])
        tj = min(jax_run(fns, inits, width, X.shape[1])[0] for _ in range(args.peer_repeat))
        add("jax", "jit(vmap over seeds(fori_loop)), float64", tj, args.peer_steps, compile_s=first - tj, diff=diffs)
    except ImportError:
        res["rows"].append({"impl": "jax", "variant": "not installed"})
    return res


def s2(args) -> dict:
    out = {"rows": []}
    for n, dim in args.s2_sizes:
        prob = ib.data.separable(n_samples=n, dim=dim, seed=0)
        X, y = prob.X, prob.y
        opt = ib.reference.max_margin(X, y, "l2").margin
        lr = 0.1
        # steps to 0.99 of the optimum (from implicitbias's own history, every step)
        probe = ib.steepest.fit(X, y, "linear", norm="l2", lr=lr, steps=args.s2_max_steps, record_every=1)
        reach = np.flatnonzero(probe.history["margin_l2"] >= 0.99 * opt)
        if reach.size == 0:
            out["rows"].append({"n": n, "dim": dim, "note": "0.99 not reached"})
            continue
        K = int(probe.history["step"][reach[0]])
        t_ib = min(_time(lambda: ib.steepest.fit(X, y, "linear", norm="l2", lr=lr, steps=K, n_record=2))
                   for _ in range(args.repeat))
        theta_ib = ib.steepest.fit(X, y, "linear", norm="l2", lr=lr, steps=K, n_record=2).theta

        def numpy_loop(w0=None):
            w = np.zeros(dim) if w0 is None else w0.copy()
            for _ in range(K):
                q = y * (X @ w)
                e = np.exp(-(q - q.min()))
                g = X.T @ (-y * e) / e.sum()  # grad Loss / Loss
                w -= lr * g / np.linalg.norm(g)
            return w

        t_np = min(_time(numpy_loop) for _ in range(args.repeat))
        w_np = numpy_loop()
        # the dynamics' own sensitivity: NumPy from a start perturbed by 1e-15
        w_pert = numpy_loop(1e-15 * np.random.default_rng(1).standard_normal(dim))
        out["rows"].append({"n": n, "dim": dim, "steps": K, "margin_ratio": float(probe.history["margin_l2"][reach[0]] / opt),
                            "implicitbias_s": t_ib, "numpy_s": t_np, "ratio": t_np / t_ib,
                            "max_rel_diff": float(np.linalg.norm(theta_ib - w_np) / np.linalg.norm(w_np)),
                            "numpy_self_sensitivity": float(np.linalg.norm(w_pert - w_np) / np.linalg.norm(w_np))})
    return out


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def markdown(res: dict) -> str:
    s1r = res["S1"]
    lines = [
        "# implicitbias steepest-descent benchmarks", "",
        f"Machine: {res['machine']}; implicitbias core: {res['isa']}. Load average at start: {res['load_start']}, "
        f"end: {res['load_end']}.", "",
        f"NumPy DGEMM 2000x2000: **{res['dgemm_gflops']:.1f} GFLOP/s**.", "",
        f"## S1: two-layer ReLU (width {s1r['width']}) on digits ({s1r['n_samples']}x{s1r['dim']}), "
        f"{s1r['runs']} runs (GD, sign, coordinate, Adam x 2 seeds)", "",
        f"implicitbias timed on {s1r['steps']} steps, peers on {s1r['peer_steps']} (rates are per run-step). "
        "GFLOP/s is nominal: it counts the two dense products 2*2*width*n*d per run-step. implicitbias "
        "skips the samples whose softmax weight is below 2^-64 of the largest in the backward product "
        "(their terms are below the rounding of the sum), so late in training it does fewer flops than "
        "it is credited with, and its nominal rate can exceed the DGEMM peak.", "",
        "| implementation | variant | steps | time (s) | compile (s) | run-steps/s | GFLOP/s | implicitbias speedup | max rel diff (GD, sign, coord, Adam; 2 seeds) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    ref = next(r for r in s1r["rows"] if r["impl"] == "implicitbias")["run_steps_per_s"]
    for r in s1r["rows"]:
        if "seconds" not in r:
            lines.append(f"| {r['impl']} | {r['variant']} | | | | | | | |")
            continue
        diff = r["max_rel_diff"]
        diff_s = "reference" if diff == 0.0 else ("–" if diff is None else ", ".join(f"{v:.0e}" for v in diff))
        comp = "–" if r["compile_s"] is None else f"{r['compile_s']:.2f}"
        lines.append(f"| {r['impl']} | {r['variant']} | {r['steps']} | {r['seconds']:.3f} | {comp} | "
                     f"{r['run_steps_per_s']:.0f} | {r['gflops']:.1f} | {ref / r['run_steps_per_s']:.2f} | {diff_s} |")
    lines += ["", "## S2: linear model, normalized GD (lr 0.1) to 0.99 of the l2 max-margin, vs a NumPy loop", "",
              "| n | d | steps | implicitbias (s) | NumPy (s) | speedup | rel diff to NumPy | NumPy vs NumPy from a 1e-15-perturbed start |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["S2"]["rows"]:
        if "steps" not in r:
            lines.append(f"| {r['n']} | {r['dim']} | {r['note']} | | | | | |")
            continue
        lines.append(f"| {r['n']} | {r['dim']} | {r['steps']} | {r['implicitbias_s']:.4f} | {r['numpy_s']:.4f} | "
                     f"{r['ratio']:.1f} | {r['max_rel_diff']:.1e} | {r['numpy_self_sensitivity']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--peer-steps", type=int, default=None, help="steps for the peers (default: --steps)")
    p.add_argument("--peer-repeat", type=int, default=1, help="timings per peer (long runs: default 1)")
    p.add_argument("--check-steps", type=int, default=50)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=str(HERE / "results_steepest.json"))
    args = p.parse_args(argv)
    args.s2_sizes = [(15, 20), (1000, 100)]
    args.s2_max_steps = 200_000
    if args.quick:
        args.steps, args.peer_steps, args.check_steps, args.repeat, args.width = 200, 20, 5, 1, 64
    if args.peer_steps is None:
        args.peer_steps = args.steps
    res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                      f"{platform.python_version()}, NumPy {np.__version__}",
           "isa": ib.build_info()["isa"], "load_start": os.getloadavg(), "dgemm_gflops": dgemm_rate()}
    res["S1"] = s1(args)
    res["S2"] = s2(args)
    res["load_end"] = os.getloadavg()
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1, default=float)
    md = markdown(res)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as fh:
        fh.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
