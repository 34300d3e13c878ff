"""The fixed cost of a call: tiny problems, one step, through the package API.

fit on a tiny problem (default threads and num_threads=1) and the per-run cost of
fit_many (RUNS runs of one step; the renderer divides the time by extra_info["runs"]),
quiet and with another process spinning one core.  The rendered table reports the
mean, not the min: a user pays the mean.  Only the results are asserted, never times.
"""

from __future__ import annotations

import numpy as np
import peers
import pytest
from harness import timed

DIAG_STEP = dict(method="descent", lr=0.01, steps=1)
FACT_STEP = dict(method="descent", lr=0.01, steps=1)
STEEP_STEP = dict(lr=0.1, steps=1)
RUNS, RTOL = 64, 1e-12
LRS = np.linspace(0.05, 0.2, RUNS)
ALPHAS = np.logspace(-3, -0.5, RUNS)


def expected_steepest(X, y, lr):  # normalized GD from w = 0: w_1 = lr X^T y / ||X^T y||
    g = X.T @ y
    return lr * g / np.linalg.norm(g)


def expected_factorization(ib, A, y, seed):
    return peers.factorization_step_numpy(
        ib.factorization.initial_layers((4, 4), 2, None, 0.1, "gaussian", seed=seed), A, y, FACT_STEP["lr"])


def case(ib, call, threads):
    """(function to time, check of its result) for one call."""
    if call.startswith("steepest"):
        p = ib.data.separable(n_samples=4, dim=4, seed=0)
        X, y = p.X, p.y
        if call == "steepest.fit":
            return (lambda: [ib.steepest.fit(X, y, num_threads=threads, **STEEP_STEP).theta],
                    lambda out: [expected_steepest(X, y, STEEP_STEP["lr"])])
        kw = dict(STEEP_STEP, lr=list(LRS))
        return (lambda: [r.theta for r in ib.steepest.fit_many(X, y, num_threads=threads, **kw)],
                lambda out: [expected_steepest(X, y, lr) for lr in LRS])
    if call.startswith("diagonal"):
        p = ib.data.sparse_regression(n_measurements=20, dim=40, sparsity=3, seed=0)
        A, y = p.A, p.y
        if call == "diagonal.fit":
            return (lambda: [ib.diagonal.fit(A, y, init_scale=0.1, num_threads=threads, **DIAG_STEP).x],
                    lambda out: list(peers.gd_numpy(A, y, [0.1], lr=DIAG_STEP["lr"], steps=1).T))
        return (lambda: [r.x for r in ib.diagonal.fit_many(A, y, init_scale=list(ALPHAS), num_threads=threads,
                                                           **DIAG_STEP)],
                lambda out: list(peers.gd_numpy(A, y, ALPHAS, lr=DIAG_STEP["lr"], steps=1).T))
    p = ib.data.matrix_sensing((4, 4), 1, 10, seed=0)
    A, y = p.A, p.y
    if call == "factorization.fit":
        return (lambda: [ib.factorization.fit(A, y, depth=2, seed=0, num_threads=threads, **FACT_STEP).layers],
                lambda out: [expected_factorization(ib, A, y, 0)])
    return (lambda: [r.layers for r in ib.factorization.fit_many(A, y, depth=2, seed=list(range(RUNS)),
                                                                 num_threads=threads, **FACT_STEP)],
            lambda out: [expected_factorization(ib, A, y, s) for s in range(RUNS)])


CALLS = ["steepest.fit", "diagonal.fit", "factorization.fit",
         "steepest.fit_many", "diagonal.fit_many", "factorization.fit_many"]


@pytest.mark.parametrize("load", ["quiet", "busy"], indirect=True)
@pytest.mark.parametrize("threads", [None, 1], ids=["threads=auto", "threads=1"])
@pytest.mark.parametrize("call", CALLS)
def test_call_overhead(benchmark, ib, call, threads, load):
    fn, expected = case(ib, call, threads)
    runs = RUNS if call.endswith("fit_many") else 1
    out = timed(benchmark, fn, group=f"overhead {call}", peer="implicitbias", call=call,
                num_threads=threads, condition=load, runs=runs, stat="mean")
    ref = expected(out)
    assert len(out) == len(ref) == runs
    for got, want in zip(out, ref):
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            assert np.allclose(g, w, rtol=RTOL, atol=RTOL * np.abs(w).max()), (call, g, w)
