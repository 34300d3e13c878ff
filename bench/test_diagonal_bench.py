"""W1 (batched GD on diagonal networks) and W2 (gradient flow to its limit)."""

from __future__ import annotations

import numpy as np
import peers
import pytest
from harness import need, rounds, timed

GD = dict(method="descent")
FLOW = dict(method="flow", target_loss=1e-20)

# ------------------------------------------------------------------ W1

W1 = {  # s/M = 0.1 in both
    "W1-small": dict(M=40, N=100, sparsity=4, steps=20_000),
    "W1-large": dict(M=200, N=1000, sparsity=20, steps=2_000),
}
ALPHAS = np.logspace(-3, -0.5, 16)
LR, DEPTH, W1_RTOL = 0.05, 2, 1e-8


def _torch(autograd, threads):
    def run(A, y, steps):
        with peers.torch_threads(threads):
            return peers.gd_torch(A, y, ALPHAS, depth=DEPTH, lr=LR, steps=steps, autograd=autograd)
    return run


W1_PEERS = {  # id -> (library, variant, factory(ib, steps) -> f(A, y) -> X (N, 16))
    "implicitbias-threads=auto": ("implicitbias", "fit_many, num_threads=None", None),
    "implicitbias-threads=1": ("implicitbias", "fit_many, num_threads=1", 1),
    "numpy": ("numpy", "(N,K) matrices, 2 GEMMs/step", None),
    "torch-explicit-2threads": ("torch", "eager, explicit grad, 2 threads", (False, 2)),
    "torch-autograd-2threads": ("torch", "eager, autograd, 2 threads", (True, 2)),
    "torch-explicit-1thread": ("torch", "eager, explicit grad, 1 thread", (False, 1)),
    "torch-autograd-1thread": ("torch", "eager, autograd, 1 thread", (True, 1)),
    "jax-vmap": ("jax", "jit(vmap(fori_loop))", "vmap"),
    "jax-matrix": ("jax", "jit(fori_loop), (N,K) matrices", "matrix"),
}


@pytest.fixture(scope="module", params=list(W1))
def w1(request, size):
    cfg = dict(W1[request.param], name=request.param, depth=DEPTH, lr=LR, runs=len(ALPHAS))
    if size == "quick":
        cfg["steps"] //= 10
    from implicitbias import data
    prob = data.sparse_regression(n_measurements=cfg["M"], dim=cfg["N"], sparsity=cfg["sparsity"], seed=0)
    cfg["flops"] = 4.0 * cfg["M"] * cfg["N"] * len(ALPHAS) * cfg["steps"]  # two products per step
    ref = peers.gd_numpy(prob.A, prob.y, ALPHAS, depth=DEPTH, lr=LR, steps=cfg["steps"])
    R = prob.A @ ref - prob.y[:, None]
    assert np.isfinite(ref).all() and (0.5 * (R * R).sum(axis=0) < 0.5 * prob.y @ prob.y).all()
    return cfg, prob.A, prob.y, ref


@pytest.mark.parametrize("peer", list(W1_PEERS))
def test_w1_gd(benchmark, w1, peer, ib, size, dgemm_gflops):
    cfg, A, y, ref = w1
    lib, variant, arg = W1_PEERS[peer]
    need(lib)
    steps, info = cfg["steps"], {}
    if lib == "implicitbias":
        def f():
            rs = ib.diagonal.fit_many(A, y, depth=DEPTH, init_scale=list(ALPHAS), lr=LR, steps=steps,
                                      num_threads=arg, **GD)
            return np.column_stack([r.x for r in rs])
    elif lib == "numpy":
        def f():
            return peers.gd_numpy(A, y, ALPHAS, depth=DEPTH, lr=LR, steps=steps)
    elif lib == "torch":
        run = _torch(*arg)

        def f():
            return run(A, y, steps)
    else:
        jf = peers.make_gd_jax(depth=DEPTH, lr=LR, steps=steps, form=arg)

        def f():
            return np.asarray(jf(A, y, ALPHAS).block_until_ready())
        import time
        t = time.perf_counter()
        f()  # compiles
        info["first_call_s"] = time.perf_counter() - t
    X = timed(benchmark, f, n_rounds=rounds(size, 5, 2), group=cfg["name"], peer=lib, variant=variant,
              dgemm_gflops=dgemm_gflops, config={k: v for k, v in cfg.items() if k != "name"}, **info)
    diff = peers.rel_diff(X, ref)
    benchmark.extra_info["max_rel_diff_vs_numpy"] = diff
    assert diff <= W1_RTOL, f"{peer} disagrees with the NumPy GD: {diff:.2e} > {W1_RTOL}"


# ------------------------------------------------------------------ W2

W2 = dict(M=40, N=100, sparsity=4, rtol=1e-8, atol=1e-14, target_loss=1e-20, t_max=1e6)
W2_TOL = 1e-6          # ||x - x_limit|| for a run that converged (observed: 1e-10 .. 1e-7)
W2_TOL_BUDGET = 1e-2   # a solve_ivp run stopped by its wall-time budget (RK45) is only near the limit

W2_PEERS = {
    "implicitbias": ("implicitbias", "fit(method='flow'), default solver (bdf)", {}),
    "implicitbias-rosw": ("implicitbias", "fit(method='flow', solver='rosw')", {"solver": "rosw"}),
    "implicitbias-dopri5": ("implicitbias", "fit(method='flow', solver='dopri5')", {"solver": "dopri5"}),
    "scipy-LSODA": ("scipy", "solve_ivp LSODA", "LSODA"),
    "scipy-RK45": ("scipy", "solve_ivp RK45 (wall-time budget)", "RK45"),
}


@pytest.fixture(scope="module", params=[1e-2, 1e-3], ids=lambda a: f"alpha={a:g}")
def w2(request):
    from implicitbias import data, reference
    alpha = request.param
    prob = data.sparse_regression(n_measurements=W2["M"], dim=W2["N"], sparsity=W2["sparsity"], seed=0)
    x_lim = np.asarray(reference.diagonal_flow_limit(prob.A, prob.y, init_scale=alpha, depth=2))
    # the package's closed form against the bench's own Newton solve of the dual
    assert np.linalg.norm(x_lim - peers.flow_limit_newton(prob.A, prob.y, alpha)) < 1e-10
    return alpha, prob.A, prob.y, x_lim


@pytest.mark.parametrize("peer", list(W2_PEERS))
def test_w2_flow(benchmark, w2, peer, ib, size):
    alpha, A, y, x_lim = w2
    lib, variant, arg = W2_PEERS[peer]
    need(lib)
    budget = 60.0 if size == "full" else 5.0  # RK45 never reaches the target: it runs to this budget
    if lib == "implicitbias":
        def f():
            r = ib.diagonal.fit(A, y, depth=2, init_scale=alpha, t_max=W2["t_max"], rtol=W2["rtol"],
                                atol=W2["atol"], **FLOW, **arg)
            return r.x, str(r.status), int(r.n_grad_evals)
        n = rounds(size, 5, 3)
    else:
        def f():
            x, status, nfev, _ = peers.flow_solve_ivp(A, y, alpha, method=arg, rtol=W2["rtol"], atol=W2["atol"],
                                                      target=W2["target_loss"], t_max=W2["t_max"],
                                                      max_wall=budget if arg == "RK45" else None)
            return x, status, nfev
        n = 1 if arg == "RK45" else rounds(size, 3, 2)
    x, status, evals = timed(benchmark, f, n_rounds=n, group=f"W2 alpha={alpha:g}", peer=lib, variant=variant,
                             config=dict(W2, init_scale=alpha, ivp_budget_s=budget))
    err = float(np.linalg.norm(x - x_lim))
    benchmark.extra_info.update(status=status, n_grad_evals=evals, err_to_limit=err)
    tol = W2_TOL_BUDGET if status == "budget" else W2_TOL
    assert err <= tol, f"{peer} ({status}): ||x - x_limit|| = {err:.2e} > {tol}"
