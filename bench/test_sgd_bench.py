"""SG1 (SGD with batch 1) and SG2 (heavy-ball GD) on diagonal networks, 16 runs, against NumPy loops,
PyTorch (eager, float64, one thread) and JAX (float64, ``jit(vmap(fori_loop))`` over the 16 runs, compiled
before timing).

The setting of Even et al. 2023 (n = 20 measurements, d = 30, s = 3, alpha = 0.1). Every peer takes the
same steps: the batches of the SGD runs are the package's own draws (``diagonal.batch_draws``, drawn before
timing), so the results agree to rounding. A peer whose library is not installed is skipped.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from harness import need, rounds, timed

RUNS, ALPHA, BETA = 16, 0.1, 0.9
SG = {"SG1": dict(steps=5_000, batch_size=1), "SG2": dict(steps=5_000, batch_size=None)}
RTOL = 1e-8


@pytest.fixture(scope="module", params=list(SG))
def sg(request, size, ib):
    cfg = dict(SG[request.param], name=request.param)
    if size == "quick":
        cfg["steps"] //= 10
    prob = ib.data.sparse_regression(n_measurements=20, dim=30, sparsity=3, seed=0)
    A, y = prob.A, prob.y
    if cfg["batch_size"] == 1:  # SGD: step f / max_i ||a_i||^2 (f = 0.5), one seed per run
        cfg.update(lr=0.5 / float(np.max(np.sum(A * A, axis=1))), momentum=0.0)
        draws = np.array([[ib.diagonal.batch_draws(s, k, A.shape[0], 1)[0][0] for k in range(cfg["steps"])]
                          for s in range(RUNS)])
    else:  # heavy ball, full batch: lr (1 - beta) below 1 / (4 alpha ||A||^2)-scale
        cfg.update(lr=0.1 * (1 - BETA) / float(np.linalg.norm(A, 2) ** 2), momentum=BETA)
        draws = None
    cfg["steps_per_s_unit"] = RUNS * cfg["steps"]
    ref = _numpy_loop(A, y, cfg, draws)
    return cfg, A, y, draws, ref


def _numpy_loop(A, y, cfg, draws):
    """One run after another, a Python loop over the steps (the public code's style)."""
    out = []
    for k in range(RUNS):
        u = np.full(A.shape[1], ALPHA)
        v = u.copy()
        du = np.zeros_like(u)
        dv = np.zeros_like(u)
        for step in range(cfg["steps"]):
            if draws is None:
                g = A.T @ (A @ (u * u - v * v) - y)
            else:
                i = draws[k, step]
                g = A[i] * (A[i] @ (u * u - v * v) - y[i])
            du = -cfg["lr"] * 2 * u * g + cfg["momentum"] * du
            dv = cfg["lr"] * 2 * v * g + cfg["momentum"] * dv
            u, v = u + du, v + dv
        out.append(u * u - v * v)
    return np.column_stack(out)


def _numpy_matrix(A, y, cfg, draws):
    """The 16 runs as the columns of (N, K) matrices, a Python loop over the steps."""
    U = np.full((A.shape[1], RUNS), ALPHA)
    V = U.copy()
    dU = np.zeros_like(U)
    dV = np.zeros_like(U)
    for step in range(cfg["steps"]):
        if draws is None:
            G = A.T @ (A @ (U * U - V * V) - y[:, None])
        else:
            rows = draws[:, step]
            a = A[rows]  # (K, N)
            r = np.einsum("kn,nk->k", a, U * U - V * V) - y[rows]
            G = (a * r[:, None]).T
        dU = -cfg["lr"] * 2 * U * G + cfg["momentum"] * dU
        dV = cfg["lr"] * 2 * V * G + cfg["momentum"] * dV
        U, V = U + dU, V + dV
    return U * U - V * V


def _torch_matrix(A, y, cfg, draws):
    """PyTorch eager, float64, one thread: the 16 runs as (N, K) matrices, a Python loop over the steps."""
    import torch
    with torch.no_grad():
        At, yt = torch.from_numpy(A), torch.from_numpy(y)
        U = torch.full((A.shape[1], RUNS), ALPHA, dtype=torch.float64)
        V = U.clone()
        dU, dV = torch.zeros_like(U), torch.zeros_like(U)
        rows_all = None if draws is None else torch.from_numpy(draws)
        lr, beta = cfg["lr"], cfg["momentum"]
        for step in range(cfg["steps"]):
            if rows_all is None:
                G = At.T @ (At @ (U * U - V * V) - yt[:, None])
            else:
                rows = rows_all[:, step]
                a = At[rows]  # (K, N)
                r = (a * (U * U - V * V).T).sum(dim=1) - yt[rows]
                G = (a * r[:, None]).T
            dU = -lr * 2 * U * G + beta * dU
            dV = lr * 2 * V * G + beta * dV
            U, V = U + dU, V + dV
        return (U * U - V * V).numpy()


def _jax_vmap(cfg):
    """JAX, float64: one run as a lax.fori_loop on (N,) vectors, jit(vmap(...)) over the 16 runs (each with
    its own row sequence for SGD). f(A, y, draws) -> X (N, K)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    lr, beta, steps = cfg["lr"], cfg["momentum"], cfg["steps"]

    def one(A, y, rows):
        def body(k, s):
            u, v, du, dv = s
            if rows is None:
                g = A.T @ (A @ (u * u - v * v) - y)
            else:
                a = A[rows[k]]
                g = a * (a @ (u * u - v * v) - y[rows[k]])
            du = -lr * 2 * u * g + beta * du
            dv = lr * 2 * v * g + beta * dv
            return u + du, v + dv, du, dv
        u0 = jnp.full((A.shape[1],), ALPHA)
        z0 = jnp.zeros_like(u0)
        u, v, _, _ = jax.lax.fori_loop(0, steps, body, (u0, u0, z0, z0))
        return u * u - v * v

    if cfg["batch_size"] == 1:
        return jax.jit(jax.vmap(one, in_axes=(None, None, 0), out_axes=1))
    full = jax.jit(jax.vmap(lambda A, y, k: one(A, y, None), in_axes=(None, None, 0), out_axes=1))
    return lambda A, y, draws: full(A, y, jnp.arange(RUNS))


PEERS = {
    "implicitbias-threads=auto": ("implicitbias", "fit_many, num_threads=None", None),
    "implicitbias-threads=1": ("implicitbias", "fit_many, num_threads=1", 1),
    "numpy-loop": ("numpy", "one run at a time, Python loop per step", "loop"),
    "numpy-matrix": ("numpy", "(N,K) matrices, Python loop per step", "matrix"),
    "torch-matrix-1thread": ("torch", "eager, (N,K) matrices, Python loop per step, 1 thread", "torch"),
    "jax-vmap": ("jax", "jit(vmap(fori_loop)) over the runs, compiled before timing", "jax"),
}


@pytest.mark.parametrize("peer", list(PEERS))
def test_sgd(benchmark, sg, peer, ib, size):
    cfg, A, y, draws, ref = sg
    lib, variant, arg = PEERS[peer]
    need(lib)
    if lib == "implicitbias":
        def f():
            rs = ib.diagonal.fit_many(A, y, init_scale=ALPHA, method="sgd", lr=cfg["lr"], steps=cfg["steps"],
                                      batch_size=cfg["batch_size"], momentum=cfg["momentum"],
                                      seed=list(range(RUNS)), num_threads=arg, n_record=2)
            return np.column_stack([r.x for r in rs])
    elif arg == "torch":
        import torch

        def f():
            old = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return _torch_matrix(A, y, cfg, draws)
            finally:
                torch.set_num_threads(old)
    elif arg == "jax":
        jf = _jax_vmap(cfg)
        d = None if draws is None else np.ascontiguousarray(draws)

        def f():
            return np.asarray(jf(A, y, d).block_until_ready())
        t0 = time.perf_counter()
        f()  # compiles (not timed)
        benchmark.extra_info["first_call_s"] = time.perf_counter() - t0
    elif arg == "loop":
        def f():
            return _numpy_loop(A, y, cfg, draws)
    else:
        def f():
            return _numpy_matrix(A, y, cfg, draws)
    X = timed(benchmark, f, n_rounds=rounds(size, 3, 2), group=cfg["name"], peer=lib, variant=variant,
              config={k: v for k, v in cfg.items() if k != "name"})
    benchmark.extra_info["steps_per_s_per_core"] = cfg["steps_per_s_unit"] / benchmark.stats.stats.min / (
        1 if arg in (1, "loop", "matrix", "torch", "jax") else 2)
    diff = float(np.max(np.abs(X - ref)) / np.max(np.abs(ref)))
    benchmark.extra_info["max_rel_diff_vs_numpy"] = diff
    assert diff <= RTOL, f"{peer} disagrees with the NumPy loop: {diff:.2e} > {RTOL}"
