"""The flow benchmark (``flow_bench.py``) in the pytest-benchmark suite: the plain flow on W2 against
scipy (LSODA on the 2N system, BDF on the dual system with its exact Jacobian) and CVODE (the same
dual system, when scikit-sundae imports), the weight-normalized flow against LSODA on the same polar
system, and one flow per N with the cost of its products with A beside it.

    pytest bench/test_flow_bench.py [--bench-size=quick] --benchmark-json=bench/results_flow_suite.json
    python bench/render.py bench/results_flow_suite.json

The workloads, peers and stop rule are flow_bench.py's (imported from it); every entry is asserted
to end at the flow's limit (``reference.diagonal_flow_limit``), and ``render.py`` reports the ratio
of the fastest peer to implicitbias's fastest variant per group, as for the other workloads.
"""

from __future__ import annotations

import numpy as np
import peers
import pytest
from flow_bench import W2, cvode_dual, scipy_bdf_dual
from harness import need, rounds, timed

W2_TOL = 1e-6  # ||x - x_limit|| of a converged run (flow_bench measured 6e-11 .. 4e-9)
STOP = dict(rtol=W2["rtol"], atol=W2["atol"], target_loss=W2["target_loss"], t_max=W2["t_max"])

PLAIN = {  # id -> (library, variant, arguments); implicitbias: the keyword arguments of diagonal.fit
    "bdf": ("implicitbias", "solver bdf (default), 200 record times (default)", {"solver": "bdf"}),
    "bdf-ends": ("implicitbias", "solver bdf, first/last point only (as the peers)", {"solver": "bdf", "n_record": 2}),
    "rodas5": ("implicitbias", "solver rodas5 (dual coordinates), 200 record times", {"solver": "rodas5"}),
    "rosw": ("implicitbias", "solver rosw (primal), 200 record times", {"solver": "rosw"}),
    "scipy-LSODA": ("scipy", "solve_ivp LSODA, 2N system", None),
    "scipy-BDF-dual": ("scipy", "solve_ivp BDF, dual system, exact Jacobian", None),
    "cvode-dual": ("cvode", "CVODE BDF (scikit-sundae), dual system, exact Jacobian", None),
}
WN_SOLVERS = ("rosw", "bdf")


@pytest.fixture(scope="module")
def w2_problem():
    from implicitbias import data
    return data.sparse_regression(n_measurements=W2["M"], dim=W2["N"], sparsity=W2["sparsity"], seed=0)


@pytest.mark.parametrize("peer", list(PLAIN))
@pytest.mark.parametrize("alpha", [1e-2, 1e-3], ids=lambda a: f"alpha={a:g}")
def test_flow_w2(benchmark, w2_problem, alpha, peer, ib, size):
    lib, variant, kw = PLAIN[peer]
    need(lib)
    A, y = w2_problem.A, w2_problem.y
    x_lim = np.asarray(ib.reference.diagonal_flow_limit(A, y, init_scale=alpha, depth=2))
    common = (W2["rtol"], W2["atol"], W2["target_loss"], W2["t_max"])
    if lib == "implicitbias":
        def f():
            r = ib.diagonal.fit(A, y, init_scale=alpha, **STOP, **kw)
            return r.x, str(r.status), int(r.n_grad_evals)
    elif peer == "scipy-LSODA":
        def f():
            return peers.flow_solve_ivp(A, y, alpha, method="LSODA", rtol=W2["rtol"], atol=W2["atol"],
                                        target=W2["target_loss"], t_max=W2["t_max"])[:3]
    else:
        solve = scipy_bdf_dual if peer == "scipy-BDF-dual" else cvode_dual

        def f():
            return solve(A, y, alpha, *common)[:3]
    n = rounds(size, 7, 3) if lib == "implicitbias" else rounds(size, 2, 1)
    x, status, evals = timed(benchmark, f, n_rounds=n, group=f"flow W2 alpha={alpha:g}", peer=lib, variant=variant,
                             config=dict(W2, init_scale=alpha))
    err = float(np.linalg.norm(x - x_lim))
    benchmark.extra_info.update(status=str(status), n_grad_evals=int(evals), err_to_limit=err)
    assert status == "converged" and err <= W2_TOL, f"{peer}: {status}, ||x - x_limit|| = {err:.2e}"


@pytest.fixture(scope="module", params=[10.0, 100.0], ids=lambda k: f"lr_ratio={k:g}")
def wn_limit(request, w2_problem, ib):
    """The WN flow's limit: the plain limit at alpha_eff of a tight rosw run (docs/science.md, section 1.7)."""
    kappa = request.param
    r = ib.diagonal.fit(w2_problem.A, w2_problem.y, init_scale=0.1, weight_norm="joint", lr_ratio=kappa,
                        solver="rosw", **STOP)
    return kappa, np.asarray(ib.reference.diagonal_flow_limit(w2_problem.A, w2_problem.y, r.alpha_eff(), depth=2))


@pytest.mark.parametrize("peer", [*WN_SOLVERS, "scipy-LSODA"])
def test_flow_weight_normalized(benchmark, w2_problem, wn_limit, peer, ib, size):
    kappa, x_lim = wn_limit
    A, y = w2_problem.A, w2_problem.y
    if peer in WN_SOLVERS:
        lib = "implicitbias"
        variant = f"solver {peer}" + (" (default)" if peer == "rosw" else "")

        def f():
            r = ib.diagonal.fit(A, y, init_scale=0.1, weight_norm="joint", lr_ratio=kappa, solver=peer, **STOP)
            return r.x, str(r.status), int(r.n_grad_evals)
        n = rounds(size, 7, 3)
    else:
        lib, variant = "scipy", "solve_ivp LSODA, the same polar system"
        need(lib)

        def f():
            return peers.wn_flow_solve_ivp(A, y, 0.1, kappa, rtol=W2["rtol"], atol=W2["atol"],
                                           target=W2["target_loss"], t_max=W2["t_max"])[:3]
        n = rounds(size, 2, 1)
    x, status, evals = timed(benchmark, f, n_rounds=n, group=f"flow WN lr_ratio={kappa:g}", peer=lib,
                             variant=variant, config=dict(W2, init_scale=0.1, lr_ratio=kappa))
    err = float(np.linalg.norm(x - x_lim))
    benchmark.extra_info.update(status=str(status), n_grad_evals=int(evals), err_to_limit=err)
    # at lr_ratio = 100 every entry, scipy's included, reaches t_max = 1e6 before the loss target (at the limit)
    assert status in ("converged", "max_time") and err <= W2_TOL, f"{peer}: {status}, {err:.2e}"


SCALING = {"quick": (100, 200, 500), "full": (100, 200, 500, 1000, 2000, 5000)}  # flow_bench.py: up to 10^4
DUAL_MAX = 2000  # Rodas5 costs O(M^2 N) a step: only up to this N


def pytest_generate_tests(metafunc):
    if "scaling_n" in metafunc.fixturenames:
        ns = SCALING[metafunc.config.getoption("--bench-size")]
        metafunc.parametrize("scaling_n", ns, ids=lambda n: f"N={n}")


@pytest.mark.parametrize("solver", ["bdf", "rodas5"])
def test_flow_scaling(benchmark, scaling_n, solver, ib):
    """One flow (init 0.01, M = 0.4 N, s = 0.04 N, rtol 1e-8, one thread) and, in extra_info, what its
    gradient evaluations cost as products with A alone (A^T s and A x in NumPy)."""
    N = scaling_n
    if solver == "rodas5" and N > DUAL_MAX:
        pytest.skip(f"solver rodas5 only up to N = {DUAL_MAX}")
    M, s = int(0.4 * N), max(1, int(0.04 * N))
    prob = ib.data.sparse_regression(n_measurements=M, dim=N, sparsity=s, seed=0)
    sv, xv = np.ones(M), np.ones(N)
    one_eval = min(timed_once(lambda: prob.A @ (prob.A.T @ sv + xv)) for _ in range(7))

    def f():
        return ib.diagonal.fit(prob.A, prob.y, init_scale=0.01, rtol=1e-8, num_threads=1, n_record=20, solver=solver)
    r = timed(benchmark, f, n_rounds=1, group=f"flow scaling N={N}", peer="implicitbias", variant=f"solver {solver}",
              config=dict(N=N, M=M, sparsity=s, init_scale=0.01, rtol=1e-8))
    rel_residual = float(np.linalg.norm(prob.A @ r.x - prob.y) / np.linalg.norm(prob.y))
    benchmark.extra_info.update(status=str(r.status), n_grad_evals=int(r.n_grad_evals), n_steps=int(r.n_steps),
                                one_eval_s=one_eval, products_s=one_eval * r.n_grad_evals, rel_error=rel_residual)
    # the default target is a relative residual of 10 rtol (docs/numerics.md)
    assert r.status == "converged" and rel_residual <= 10 * 1e-8 * (1 + 1e-6), (r.status, rel_residual)


def timed_once(fn):
    import time
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
