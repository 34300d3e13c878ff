"""S1 (two-layer ReLU on digits, 8 runs of 4 optimizers) and S2 (linear model to 0.99 of the max margin)."""

from __future__ import annotations

import time

import numpy as np
import peers
import pytest
from harness import need, timed

S1_CHECK_STEPS, S1_RTOL = 50, 1e-10   # peers must match implicitbias after 50 steps (observed ~1e-16)
SEEDS = (0, 1)

S1_PEERS = {  # id -> (library, variant, arg)
    "implicitbias-threads=auto": ("implicitbias", "fit_many, num_threads=None", None),
    "implicitbias-threads=1": ("implicitbias", "fit_many, num_threads=1", 1),
    "torch-2threads": ("torch", "eager autograd, float64, 2 threads", 2),
    "jax": ("jax", "jit(vmap over seeds(fori_loop)), float64", None),
}


def ib_s1(ib, X, y, inits, width, steps, threads=None):
    algs = [(opt, norm, lr) for _, opt, norm, lr in peers.S1_ALGS for _ in inits]
    rs = ib.steepest.fit_many(X, y, model="relu2", width=width, init=[th for _ in peers.S1_ALGS for th in inits],
                              optimizer=[a[0] for a in algs], norm=[a[1] for a in algs], lr=[a[2] for a in algs],
                              steps=steps, schedule="power", decay_k0=peers.K0, decay_power=peers.POWER,
                              beta1=peers.BETA1, beta2=peers.BETA2, eps=peers.EPS, n_record=2, num_threads=threads)
    return [r.theta for r in rs]


@pytest.fixture(scope="module")
def s1(ib, size):
    d = ib.data.digits_binary()
    width, steps = (256, 5000) if size == "full" else (64, 200)
    inits = [ib.steepest.init_params("relu2", d.X.shape[1], width=width, seed=s) for s in SEEDS]
    ref = ib_s1(ib, d.X, d.y, inits, width, S1_CHECK_STEPS)
    runs = len(peers.S1_ALGS) * len(inits)
    cfg = dict(width=width, steps=steps, runs=runs, n=d.X.shape[0], d=d.X.shape[1], check_steps=S1_CHECK_STEPS,
               flops=2 * 2 * width * d.X.shape[0] * d.X.shape[1] * runs * steps)  # nominal: two products
    return d.X, d.y, inits, ref, cfg


@pytest.mark.benchmark(group="S1 relu2 digits")
@pytest.mark.parametrize("peer", list(S1_PEERS))
def test_s1_relu_digits(benchmark, s1, peer, ib, size, dgemm_gflops):
    X, y, inits, ref, cfg = s1
    lib, variant, arg = S1_PEERS[peer]
    need(lib)
    width, info = cfg["width"], {}
    if lib == "implicitbias":
        def run(steps):
            return ib_s1(ib, X, y, inits, width, steps, threads=arg)
        check, f = run(S1_CHECK_STEPS), lambda: run(cfg["steps"])
    elif lib == "torch":
        def run(steps):
            with peers.torch_threads(arg):
                return peers.s1_torch(X, y, inits, width, steps)
        check, f = run(S1_CHECK_STEPS), lambda: run(cfg["steps"])
    else:
        check = peers.s1_jax(X, y, width, S1_CHECK_STEPS)(inits)
        jf = peers.s1_jax(X, y, width, cfg["steps"])
        t = time.perf_counter()
        jf(inits)  # compiles
        info["first_call_s"] = time.perf_counter() - t
        f = lambda: jf(inits)  # noqa: E731
    diffs = [peers.rel_diff(a, b) for a, b in zip(check, ref)]
    thetas = timed(benchmark, f, n_rounds=1, peer=lib, variant=variant, config=cfg,
                   dgemm_gflops=dgemm_gflops, max_rel_diff_at_check_steps=max(diffs), **info)
    assert all(np.isfinite(th).all() for th in thetas)
    assert max(diffs) <= S1_RTOL, f"{peer} vs implicitbias after {S1_CHECK_STEPS} steps: {diffs}"


S2_SIZES = [(15, 20), (1000, 100)]
# After thousands of normalized steps the trajectory amplifies rounding: NumPy vs NumPy from a start
# perturbed by 1e-15 differs by ~1e-4 at (1000, 100); the tolerance says so.
S2_RTOL = {(15, 20): 1e-10, (1000, 100): 1e-3}
S2_LR = 0.1


@pytest.fixture(scope="module", params=S2_SIZES, ids=lambda s: f"n={s[0]},d={s[1]}")
def s2(request, ib):
    n, dim = request.param
    prob = ib.data.separable(n_samples=n, dim=dim, seed=0)
    opt = ib.reference.max_margin(prob.X, prob.y, "l2").margin
    probe = ib.steepest.fit(prob.X, prob.y, "linear", norm="l2", lr=S2_LR, steps=200_000, record_every=1)
    reach = np.flatnonzero(probe.history["margin_l2"] >= 0.99 * opt)
    assert reach.size, "normalized GD did not reach 0.99 of the max margin"
    return prob.X, prob.y, int(probe.history["step"][reach[0]]), (n, dim)


@pytest.mark.parametrize("peer", ["implicitbias", "numpy"])
def test_s2_linear_margin(benchmark, s2, peer, ib):
    X, y, K, nd = s2
    need(peer)
    if peer == "implicitbias":
        def f():
            return ib.steepest.fit(X, y, "linear", norm="l2", lr=S2_LR, steps=K, n_record=2).theta
    else:
        def f():
            return peers.normalized_gd_numpy(X, y, S2_LR, K)
    w = timed(benchmark, f, group=f"S2 linear n={nd[0]} d={nd[1]}", peer=peer,
              variant="fit" if peer == "implicitbias" else "vectorized loop",
              config=dict(n=nd[0], d=nd[1], lr=S2_LR, steps=K))
    # the other implementation is the reference (same steps, same arithmetic up to rounding)
    other = (peers.normalized_gd_numpy(X, y, S2_LR, K) if peer == "implicitbias"
             else ib.steepest.fit(X, y, "linear", norm="l2", lr=S2_LR, steps=K, n_record=2).theta)
    diff = peers.rel_diff(w, other)
    benchmark.extra_info["rel_diff_implicitbias_vs_numpy"] = diff
    assert diff <= S2_RTOL[nd], f"implicitbias vs NumPy after {K} steps: {diff:.2e} > {S2_RTOL[nd]}"
