"""The variable-order BDF (``solver="bdf"``, docs/science.md, section 4.9) on the dual flow.

Independent routes: the 2N-dimensional flow on (u, v) with the Rosenbrock-W integrator (rosw) at a
tight tolerance, along the trajectory (end points at several times and the interpolated records in
between), and the flow limit of ``reference.diagonal_flow_limit`` (Newton on the dual problem).
"""

from __future__ import annotations

import numpy as np
import pytest

from implicitbias._native import core
from implicitbias.data import sparse_regression
from implicitbias.diagonal import fit, fit_many
from implicitbias.reference import diagonal_flow_limit

TIMES = np.array([0.1, 0.5, 2.0, 8.0, 30.0])


def _problem(nonneg):
    return sparse_regression(8, 16, 2, seed=1, nonnegative=nonneg)


def _alpha(n, lo=0.05, hi=0.2):
    return np.random.default_rng(0).uniform(lo, hi, n)


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("nonneg", [False, True])
def test_bdf_matches_the_2n_flow_along_the_trajectory(depth, nonneg):
    p = _problem(nonneg)
    alpha = _alpha(p.A.shape[1])
    kw = dict(depth=depth, init_scale=alpha, nonnegative=nonneg, target_loss=0.0, x_star=p.x_star)
    for t in TIMES:
        b = fit(p.A, p.y, solver="bdf", t_max=t, rtol=1e-10, **kw)
        r = fit(p.A, p.y, solver="rosw", t_max=t, rtol=1e-12, **kw)
        assert b.status == "max_time" and b.t_final == t
        assert np.linalg.norm(b.x - r.x) <= 1e-8 * max(1.0, np.linalg.norm(r.x)), t
    # the records between steps come from the BDF polynomial: same t, loss and error as rosw's
    # (from its cubic Hermite dense output)
    b = fit(p.A, p.y, solver="bdf", t_max=30.0, rtol=1e-10, record_times=np.linspace(0.05, 30.0, 40), **kw)
    r = fit(p.A, p.y, solver="rosw", t_max=30.0, rtol=1e-12, record_times=np.linspace(0.05, 30.0, 40), **kw)
    np.testing.assert_array_equal(b.history["t"], r.history["t"])
    np.testing.assert_allclose(b.history["loss"], r.history["loss"], rtol=1e-7, atol=1e-14)
    np.testing.assert_allclose(b.history["error"], r.history["error"], rtol=1e-7, atol=1e-12)
    # the records are interpolated, not stepped to: without them the run takes the same steps to the same end
    e = fit(p.A, p.y, solver="bdf", t_max=30.0, rtol=1e-10, n_record=2, **kw)
    assert len(b.history["t"]) == 41 and len(e.history["t"]) < 41
    assert (b.n_steps, b.n_rejected, b.n_grad_evals) == (e.n_steps, e.n_rejected, e.n_grad_evals)
    np.testing.assert_array_equal(b.x, e.x)


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("init", [1e-2, 1e-6, 1e-12])
def test_bdf_limit_matches_reference(nonneg, init):
    p = sparse_regression(10, 24, 2, seed=5, nonnegative=nonneg)
    r = fit(p.A, p.y, init_scale=init, nonnegative=nonneg, rtol=1e-10, t_max=1e12, solver="bdf")
    assert r.status == "converged"
    ref = diagonal_flow_limit(p.A, p.y, init_scale=init, nonnegative=nonneg)
    assert np.linalg.norm(r.x - ref) <= 1e-6 * np.linalg.norm(ref)


def test_bdf_limit_matches_reference_depth_3():
    p = sparse_regression(10, 24, 2, seed=5)
    alpha = _alpha(24, lo=0.05, hi=0.1)
    r = fit(p.A, p.y, depth=3, init_scale=alpha, rtol=1e-10, t_max=1e12, solver="bdf")
    assert r.status == "converged"
    ref = diagonal_flow_limit(p.A, p.y, init_scale=alpha, depth=3)
    assert np.linalg.norm(r.x - ref) <= 1e-6 * np.linalg.norm(ref)


def test_bdf_bookkeeping_is_the_shared_one():
    """A block of runs: each run alone gives the same numbers (each its own first step: at depth 3 they
    differ with the init), so block_size changes nothing for the BDF (docs/science.md, 4.9); counters and
    stop rules mean the same."""
    p = _problem(False)
    inits = [0.2, 0.05, 0.01]
    many = fit_many(p.A, p.y, depth=3, init_scale=inits, solver="bdf", rtol=1e-9, t_max=1e9, block_size=3)
    for a, r in zip(inits, many):
        one = fit(p.A, p.y, depth=3, init_scale=a, solver="bdf", rtol=1e-9, t_max=1e9)
        np.testing.assert_array_equal(r.x, one.x)
        assert (r.n_steps, r.n_grad_evals, r.status) == (one.n_steps, one.n_grad_evals, one.status)
        assert r.status == "converged" and r.history["n_grad_evals"][-1] == r.n_grad_evals
        assert r.loss <= 50 * (1e-9 * np.linalg.norm(p.y)) ** 2
    short = fit(p.A, p.y, depth=3, init_scale=0.01, solver="bdf", rtol=1e-9, t_max=1e9, max_steps=20)
    assert short.status == "max_steps" and short.n_steps + short.n_rejected == 20
    wn = fit(p.A, p.y, weight_norm="joint", solver="bdf", rtol=1e-9, atol=1e-14, t_max=1e9)
    assert wn.status == "converged" and wn.history["n_grad_evals"][-1] == wn.n_grad_evals


@pytest.mark.parametrize("nonneg", [False, True])
def test_bdf_at_tiny_init(nonneg):
    """Saddle to saddle at init 1e-30 and the limit at 1e-100: the Jacobian is re-formed at accepted states
    (at an overshooting predictor it would be huge and the Newton corrections would vanish)."""
    p = sparse_regression(10, 24, 3, seed=7, nonnegative=nonneg)
    runs = {s: fit(p.A, p.y, init_scale=1e-30, nonnegative=nonneg, rtol=1e-8, t_max=1e14, solver=s)
            for s in ("rodas5", "bdf")}
    assert runs["bdf"].status == "converged"
    # the time at which the loss reaches its target depends on where steps land (the loss decays slowly
    # at the end): within a few percent
    assert abs(runs["bdf"].t_final - runs["rodas5"].t_final) <= 0.05 * runs["rodas5"].t_final
    np.testing.assert_allclose(runs["bdf"].x, runs["rodas5"].x, atol=1e-6 * np.linalg.norm(runs["rodas5"].x))
    q = sparse_regression(10, 24, 2, seed=5, nonnegative=nonneg)
    r = fit(q.A, q.y, init_scale=1e-100, nonnegative=nonneg, rtol=1e-10, t_max=1e12, solver="bdf")
    assert r.status == "converged" and np.isfinite(r.x).all()
    ref = diagonal_flow_limit(q.A, q.y, init_scale=1e-100, nonnegative=nonneg)
    assert np.linalg.norm(r.x - ref) <= 1e-6 * np.linalg.norm(ref)


@pytest.mark.parametrize("lr_ratio", [100.0, 1000.0])
def test_bdf_weight_normalized_with_fast_directions(lr_ratio):
    """Weight normalization with fast directions (lr_ratio 100 and 1000, init 0.01) on the BDF: it converges
    to the rosw end point with far fewer gradient evaluations (measured 1.7k and 2.9k vs 32k and 95k; end points
    1.2e-7 apart)."""
    p = sparse_regression(40, 100, 4, seed=0)
    out = {s: fit(p.A, p.y, init_scale=0.01, weight_norm="joint", lr_ratio=lr_ratio, solver=s, rtol=1e-8,
                  atol=1e-14) for s in ("bdf", "rosw")}
    assert all(r.status == "converged" for r in out.values())
    assert np.linalg.norm(out["bdf"].x - out["rosw"].x) <= 1e-6 * np.linalg.norm(out["rosw"].x)
    assert out["bdf"].n_grad_evals < out["rosw"].n_grad_evals / 3


# gradient evaluations of the default flow on W2 per core variant (recorded on the development machine)
MEASURED_W2_EVALS = {"baseline": {1e-2: 920, 1e-3: 1924}, "x86-64-v3": {1e-2: 882, 1e-3: 1255}}


@pytest.mark.parametrize("init", [1e-2, 1e-3])
def test_bdf_needs_a_seventh_of_lsodas_gradient_evaluations_on_w2(init):
    """The README's W2 claim in counts (deterministic, unlike times): the default solver with its 200 default
    records needs at most a seventh of the right-hand sides that scipy's LSODA needs on the 2N-dimensional system
    (u, v) at the same rtol/atol and stop rule (measured with records from dense output: 882 vs 7,926 at init 1e-2,
    1,255 vs 14,077 at 1e-3), and
    both end at the same point, the flow's limit."""
    from scipy.integrate import solve_ivp

    p = sparse_regression(40, 100, 4, seed=0)
    A, y, N = p.A, p.y, p.A.shape[1]
    r = fit(A, y, init_scale=init, rtol=1e-8, atol=1e-14, target_loss=1e-20, t_max=1e6)
    assert r.status == "converged"

    def rhs(t, z):
        g = A.T @ (A @ (z[:N] ** 2 - z[N:] ** 2) - y)
        return np.concatenate([-2.0 * z[:N] * g, 2.0 * z[N:] * g])

    def reached(t, z):
        res = A @ (z[:N] ** 2 - z[N:] ** 2) - y
        return 0.5 * res @ res - 1e-20
    reached.terminal, reached.direction = True, -1
    sol = solve_ivp(rhs, (0.0, 1e6), np.full(2 * N, init), method="LSODA", rtol=1e-8, atol=1e-14, events=reached)
    assert sol.status == 1
    x_lsoda = sol.y[:N, -1] ** 2 - sol.y[N:, -1] ** 2
    assert r.n_grad_evals <= sol.nfev / 7
    # and no regression against the counts measured with this core variant (the BDF's discrete decisions
    # change with the last bits: 920 / 1,924 with the baseline core, 882 / 1,255 with the AVX2 one)
    measured = MEASURED_W2_EVALS.get(core.isa)
    if measured is not None:
        assert r.n_grad_evals <= 1.05 * measured[init], (core.isa, r.n_grad_evals, measured[init])
    x_lim = diagonal_flow_limit(A, y, init_scale=init, depth=2)
    assert np.linalg.norm(r.x - x_lim) <= 1e-8 * np.linalg.norm(x_lim)
    assert np.linalg.norm(x_lsoda - x_lim) <= 1e-8 * np.linalg.norm(x_lim)
