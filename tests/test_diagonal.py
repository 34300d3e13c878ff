"""Tests for implicitbias.diagonal (docs/science.md, section 1).

Every numerical check goes through an independent route: a NumPy
reimplementation of the (weight-normalized) gradient-descent step, the
conserved quantities of the flow, the closed-form flow limits of
``implicitbias.reference`` (Newton on a dual problem) and basis pursuit (an
LP), and ``scipy.integrate.solve_ivp`` on the same vector field.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from implicitbias.data import sparse_regression
from implicitbias.diagonal import fit, fit_many
from implicitbias.reference import basis_pursuit, diagonal_flow_limit


# --------------------------------------------------------------------------
# independent NumPy reference of the model
# --------------------------------------------------------------------------
def np_grad_z(A, y, z, depth, nonnegative):
    """grad_z of 0.5 ||A x - y||^2 with x = u^L - v^L (or u^L), z = (u, v)."""
    n = A.shape[1]
    u = z[:n]
    if nonnegative:
        x = u**depth
    else:
        v = z[n:]
        x = u**depth - v**depth
    g = A.T @ (A @ x - y)
    gu = depth * u ** (depth - 1) * g
    if nonnegative:
        return gu
    return np.concatenate([gu, -depth * v ** (depth - 1) * g])


def np_groups(n, nonnegative, weight_norm):
    """Slices of z that share one radius."""
    if nonnegative or weight_norm == "joint":
        return [slice(0, (1 if nonnegative else 2) * n)]
    return [slice(0, n), slice(n, 2 * n)]


def np_gd(A, y, alpha, *, depth, nonnegative=False, weight_norm=None, kappa=1.0, lr, steps):
    """``steps`` (weight-normalized) GD steps; returns dict(u, v, x, rho, w)."""
    n = A.shape[1]
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (n,)).copy()
    parts = 1 if nonnegative else 2
    z0 = np.concatenate([alpha] * parts)
    if weight_norm is None:
        z = z0
        for _ in range(steps):
            z = z - lr * np_grad_z(A, y, z, depth, nonnegative)
        rho, w = None, None
    else:
        groups = np_groups(n, nonnegative, weight_norm)
        rho = [np.linalg.norm(z0[g]) for g in groups]
        w = np.concatenate([z0[g] / r for g, r in zip(groups, rho)])
        for _ in range(steps):
            z = np.concatenate([r * w[g] for g, r in zip(groups, rho)])
            gz = np_grad_z(A, y, z, depth, nonnegative)
            new_rho, new_w = [], []
            for g, r in zip(groups, rho):
                s = w[g] @ gz[g]
                new_rho.append(r - lr * s)
                wg = w[g] - lr * kappa * r * (gz[g] - w[g] * s)
                new_w.append(wg / np.linalg.norm(wg))
            rho, w = new_rho, np.concatenate(new_w)
        z = np.concatenate([r * w[g] for g, r in zip(groups, rho)])
    u = z[:n]
    v = None if nonnegative else z[n:]
    x = u**depth if nonnegative else u**depth - v**depth
    return {"u": u, "v": v, "x": x, "rho": rho, "w": w}


def np_flow_rhs(A, y, depth, nonnegative=False, weight_norm=None, kappa=1.0):
    """Right-hand side of the (weight-normalized) gradient flow for solve_ivp.

    Plain state z = (u, v); WN state (rho_1, .., rho_k, w) with the field
    evaluated at w_hat = w / ||w|| per group (as the C++ model does).
    """
    n = A.shape[1]
    if weight_norm is None:
        return lambda t, z: -np_grad_z(A, y, z, depth, nonnegative)
    groups = np_groups(n, nonnegative, weight_norm)
    k = len(groups)

    def rhs(t, state):
        rho = state[:k]
        w = state[k:]
        what = np.concatenate([w[g] / np.linalg.norm(w[g]) for g in groups])
        z = np.concatenate([r * what[g] for g, r in zip(groups, rho)])
        gz = np_grad_z(A, y, z, depth, nonnegative)
        out = np.empty_like(state)
        for i, (g, r) in enumerate(zip(groups, rho)):
            s = what[g] @ gz[g]
            out[i] = -s
            out[k:][g] = -kappa * r * (gz[g] - what[g] * s)
        return out

    return rhs


def rel_err(a, b, scale=None):
    """||a - b|| / ||b|| (or / scale)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    den = np.linalg.norm(b) if scale is None else scale
    return float(np.linalg.norm(a - b) / max(den, 1e-300))


def tiny_problem(m=5, n=8, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x0 = rng.standard_normal(n)
    return A, A @ x0, x0


def tiny_nonneg_problem(m=5, n=8, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x0 = rng.uniform(0.2, 1.5, n)
    return A, A @ x0, x0


# --------------------------------------------------------------------------
# 1. one (and three) GD steps of every variant
# --------------------------------------------------------------------------
GD_VARIANTS = [
    (nonneg, depth, wn)
    for nonneg in (False, True)
    for depth in (2, 3, 4)
    for wn in ((None, "joint") if nonneg else (None, "joint", "separate"))
]


def _check_gd_against_numpy(A, y, alpha, depth, nonneg, wn, kappa, lr, steps):
    r = fit(A, y, depth=depth, init_scale=alpha, method="descent", nonnegative=nonneg,
            weight_norm=wn, lr_ratio=kappa, lr=lr, steps=steps)
    ref = np_gd(A, y, alpha, depth=depth, nonnegative=nonneg, weight_norm=wn, kappa=kappa,
                lr=lr, steps=steps)
    assert r.status == "max_steps"
    assert r.n_steps == steps
    assert r.t_final == pytest.approx(steps * lr, rel=1e-15)
    n = A.shape[1]
    a0 = np.broadcast_to(np.asarray(alpha, dtype=float), (n,))
    # the state itself and the displacement from the initialization (which
    # exposes a wrong gradient even when the step is small)
    assert rel_err(r.u, ref["u"]) <= 1e-12
    assert rel_err(r.u - a0, ref["u"] - a0) <= 1e-9
    assert np.linalg.norm(ref["u"] - a0) > 1e-3 * np.linalg.norm(a0)  # the step did move u
    if nonneg:
        assert r.v is None
        xscale = np.linalg.norm(np.abs(ref["u"]) ** depth)
    else:
        assert rel_err(r.v, ref["v"]) <= 1e-12
        assert rel_err(r.v - a0, ref["v"] - a0) <= 1e-9
        xscale = np.linalg.norm(np.abs(ref["u"]) ** depth + np.abs(ref["v"]) ** depth)
    assert rel_err(r.x, ref["x"], scale=xscale) <= 1e-12
    if wn is None:
        assert r.radius is None and r.direction is None
    else:
        assert rel_err(r.direction, ref["w"]) <= 1e-12
        if wn == "separate":
            assert isinstance(r.radius, tuple) and len(r.radius) == 2
            assert rel_err(r.radius, ref["rho"]) <= 1e-12
            assert np.linalg.norm(r.direction[:n]) == pytest.approx(1.0, abs=1e-14)
            assert np.linalg.norm(r.direction[n:]) == pytest.approx(1.0, abs=1e-14)
        else:
            assert rel_err([r.radius], ref["rho"]) <= 1e-12
            assert np.linalg.norm(r.direction) == pytest.approx(1.0, abs=1e-14)
    loss_ref = 0.5 * np.sum((A @ ref["x"] - y) ** 2)
    assert r.loss == pytest.approx(loss_ref, rel=1e-10)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("nonneg,depth,wn", GD_VARIANTS)
def test_gd_steps_match_numpy(nonneg, depth, wn, steps):
    A, y, _ = tiny_nonneg_problem() if nonneg else tiny_problem()
    kappa = 1.0 if wn is None else 3.0
    _check_gd_against_numpy(A, y, 0.7, depth, nonneg, wn, kappa, lr=0.05, steps=steps)


@pytest.mark.parametrize("nonneg,depth,wn", GD_VARIANTS)
def test_gd_steps_match_numpy_vector_init(nonneg, depth, wn):
    A, y, _ = tiny_nonneg_problem(seed=3) if nonneg else tiny_problem(seed=3)
    alpha = np.random.default_rng(7).uniform(0.3, 1.0, A.shape[1])
    kappa = 1.0 if wn is None else 2.5
    _check_gd_against_numpy(A, y, alpha, depth, nonneg, wn, kappa, lr=0.04, steps=1)
    _check_gd_against_numpy(A, y, alpha, depth, nonneg, wn, kappa, lr=0.04, steps=3)


@pytest.mark.parametrize("nonneg,wn", [(False, None), (False, "joint"), (False, "separate"),
                                       (True, None), (True, "joint")])
def test_gd_zero_steps_is_the_initial_state(nonneg, wn):
    A, y, _ = tiny_problem()
    n = A.shape[1]
    alpha = np.linspace(0.1, 0.5, n)
    r = fit(A, y, depth=3, init_scale=alpha, method="descent", lr=0.1, steps=0,
            nonnegative=nonneg, weight_norm=wn)
    np.testing.assert_allclose(r.u, alpha, rtol=1e-15)
    if not nonneg:
        np.testing.assert_allclose(r.v, alpha, rtol=1e-15)
    if wn == "joint":
        rho0 = (1.0 if nonneg else np.sqrt(2.0)) * np.linalg.norm(alpha)
        assert r.radius == pytest.approx(rho0, rel=1e-15)
        np.testing.assert_allclose(r.direction, np.concatenate([alpha / rho0] * (1 if nonneg else 2)), rtol=1e-15)
    if wn == "separate":
        rho0 = np.linalg.norm(alpha)
        assert r.radius == pytest.approx((rho0, rho0), rel=1e-15)
        np.testing.assert_allclose(r.direction, np.concatenate([alpha / rho0] * 2), rtol=1e-15)


# --------------------------------------------------------------------------
# 2. conserved quantities of the flow
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_sparse():
    return sparse_regression(10, 30, 2, seed=1)


@pytest.fixture(scope="module")
def small_sparse_nonneg():
    return sparse_regression(10, 30, 2, seed=2, nonnegative=True)


@pytest.mark.parametrize("solver", ["rosw", "dopri5"])
@pytest.mark.parametrize("depth", [2, 3])
def test_plain_flow_invariants(small_sparse, depth, solver):
    p = small_sparse
    r = fit(p.A, p.y, depth=depth, init_scale=0.1, solver=solver, rtol=1e-10)
    assert r.status == "converged"
    q0, q1 = r.invariants()
    # recompute the invariant independently from the final factors
    if depth == 2:
        np.testing.assert_allclose(q0, 0.01, rtol=1e-14)
        np.testing.assert_allclose(q1, r.u * r.v, rtol=1e-15)
    else:
        np.testing.assert_allclose(q0, 2 * 0.1 ** (2 - depth), rtol=1e-14)
        np.testing.assert_allclose(q1, r.u ** (2 - depth) + r.v ** (2 - depth), rtol=1e-15)
    drift = r.invariant_drift()
    assert drift <= 1e-7, f"depth={depth} solver={solver}: drift {drift:.3e}"
    # ... and the run really moved far from the initialization
    assert np.max(np.abs(r.u - 0.1)) > 0.3


@pytest.mark.parametrize("kappa", [1.0, 10.0])
@pytest.mark.parametrize("depth", [2, 3])
def test_wn_joint_flow_invariants(small_sparse, depth, kappa):
    p = small_sparse
    r = fit(p.A, p.y, depth=depth, init_scale=0.1, weight_norm="joint", lr_ratio=kappa, rtol=1e-10,
            t_max=1e6)
    # L = 3, kappa = 10 shrinks alpha_eff to ~2e-3: the off-support factors are
    # ~1e-3 and the loss decays very slowly, so that run ends at t_max
    assert r.status in ("converged", "max_time")
    assert r.loss <= 1e-10
    n = p.A.shape[1]
    rho0 = np.sqrt(2.0 * n) * 0.1
    w0 = 0.1 / rho0
    wu, wv = r.direction[:n], r.direction[n:]
    if depth == 2:
        q0 = w0 * w0 * np.exp(kappa * rho0**2)
        q1 = wu * wv * np.exp(kappa * r.radius**2)
    else:
        c = -(depth - 2) * kappa / 2
        q0 = 2 * w0 ** (2 - depth) * np.exp(c * rho0**2)
        q1 = (wu ** (2 - depth) + wv ** (2 - depth)) * np.exp(c * r.radius**2)
    a0, a1 = r.invariants()
    np.testing.assert_allclose(a0, q0, rtol=1e-12)
    np.testing.assert_allclose(a1, q1, rtol=1e-12)
    drift = r.invariant_drift()
    assert drift <= 1e-7, f"depth={depth} kappa={kappa}: drift {drift:.3e}"
    assert abs(r.radius - rho0) > 0.1  # the radius did move


@pytest.mark.parametrize("depth", [2, 3])
def test_nonnegative_plain_flow_invariant(small_sparse_nonneg, depth):
    p = small_sparse_nonneg
    r = fit(p.A, p.y, depth=depth, init_scale=0.1, nonnegative=True, rtol=1e-10)
    assert r.status == "converged"
    # independent: log u (L=2) or u^(2-L) minus its start lies in range(A^T)
    q = np.log(r.u) - np.log(0.1) if depth == 2 else r.u ** (2 - depth) - 0.1 ** (2 - depth)
    coef, *_ = np.linalg.lstsq(p.A.T, q, rcond=None)
    assert np.linalg.norm(q - p.A.T @ coef) <= 1e-7 * np.linalg.norm(q)
    drift = r.invariant_drift()
    assert drift <= 1e-7, f"depth={depth}: drift {drift:.3e}"


# --------------------------------------------------------------------------
# 3. alpha_eff from the recorded radius
# --------------------------------------------------------------------------
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("kappa", [1.0, 5.0])
def test_alpha_eff_matches_history_radius(small_sparse, small_sparse_nonneg, nonneg, kappa):
    p = small_sparse_nonneg if nonneg else small_sparse
    alpha = np.random.default_rng(4).uniform(0.05, 0.15, p.A.shape[1])
    r = fit(p.A, p.y, depth=2, init_scale=alpha, weight_norm="joint", lr_ratio=kappa,
            nonnegative=nonneg, rtol=1e-9)
    rad = r.history["radius"]
    rho0, rhoT = rad[0], rad[-1]
    assert rho0 == pytest.approx((1.0 if nonneg else np.sqrt(2.0)) * np.linalg.norm(alpha), rel=1e-15)
    assert rhoT == r.radius
    expected = alpha * (rhoT / rho0) * np.exp(-kappa * (rhoT**2 - rho0**2) / 2)
    np.testing.assert_allclose(r.alpha_eff(), expected, rtol=1e-13)
    # plain flow: alpha_eff is init_scale itself; plain descent keeps no bookkeeping (method="sgd" does:
    # tests/test_diagonal_sgd.py)
    r0 = fit(p.A, p.y, depth=2, init_scale=alpha, t_max=1.0, nonnegative=nonneg)
    np.testing.assert_array_equal(r0.alpha_eff(), alpha)
    with pytest.raises(ValueError, match="method='sgd'"):
        fit(p.A, p.y, depth=2, init_scale=alpha, method="descent", lr=0.01, steps=2, nonnegative=nonneg).alpha_eff()


# --------------------------------------------------------------------------
# 4. limits of the plain flow
# --------------------------------------------------------------------------
LIMIT_CASES = [(2, 10, 30, 11), (3, 10, 30, 12), (2, 15, 35, 13), (3, 20, 40, 14)]


@pytest.mark.parametrize("depth,m,n,seed", LIMIT_CASES)
def test_plain_flow_limit_matches_reference(depth, m, n, seed):
    p = sparse_regression(m, n, 3, seed=seed)
    r = fit(p.A, p.y, depth=depth, init_scale=0.1, rtol=1e-10)
    assert r.status == "converged"
    x_ref = diagonal_flow_limit(p.A, p.y, 0.1, depth)
    err = rel_err(r.x, x_ref, scale=max(1.0, np.linalg.norm(x_ref)))
    assert err <= 1e-6, f"L={depth} M={m} N={n}: |x - x_limit| = {err:.3e}"


@pytest.mark.parametrize("depth", [2, 3])
def test_nonnegative_flow_limit_matches_reference(depth):
    p = sparse_regression(12, 30, 3, seed=21, nonnegative=True)
    r = fit(p.A, p.y, depth=depth, init_scale=0.1, nonnegative=True, rtol=1e-10)
    assert r.status == "converged"
    x_ref = diagonal_flow_limit(p.A, p.y, 0.1, depth, nonnegative=True)
    err = rel_err(r.x, x_ref, scale=max(1.0, np.linalg.norm(x_ref)))
    assert err <= 1e-6, f"L={depth}: |x - x_limit| = {err:.3e}"


@pytest.fixture(scope="module")
def bp_instance():
    p = sparse_regression(20, 40, 2, seed=5)
    x_bp = basis_pursuit(p.A, p.y)
    assert np.linalg.norm(x_bp - p.x_star) <= 1e-8  # BP recovers the planted vector
    return p, x_bp


@pytest.mark.parametrize("depth", [2, 3])
def test_small_init_limit_is_basis_pursuit(bp_instance, depth):
    p, x_bp = bp_instance
    r = fit(p.A, p.y, depth=depth, init_scale=1e-4, rtol=1e-10)
    # L = 2 converges (t ~ 2e7); L = 3 has a very slow tail (the off-support
    # factors are tiny) and ends at t_max = 1e8 with loss ~1e-14
    assert r.status in ("converged", "max_time")
    assert r.loss <= 1e-12
    err = np.linalg.norm(r.x - x_bp)
    assert err <= 1e-3, f"L={depth} alpha=1e-4: |x - x_BP| = {err:.3e}"
    # and it is the reference flow limit at this alpha
    x_lim = diagonal_flow_limit(p.A, p.y, 1e-4, depth)
    assert np.linalg.norm(r.x - x_lim) <= 1e-6


@pytest.fixture(scope="module")
def bp_instance_nonneg():
    p = sparse_regression(20, 40, 2, seed=6, nonnegative=True)
    x_bp = basis_pursuit(p.A, p.y, nonnegative=True)
    assert np.linalg.norm(x_bp - p.x_star) <= 1e-8
    return p, x_bp


@pytest.mark.parametrize("depth", [2, 3])
def test_nonnegative_small_init_limit_is_basis_pursuit(bp_instance_nonneg, depth):
    p, x_bp = bp_instance_nonneg
    # stall_steps=0: at L = 3 the flow sits on a plateau (loss constant to 1e-11)
    # until t ~ 2000 and the default stall rule stops it there; see
    # test_stall_rule_does_not_stop_a_plateau_that_ends
    r = fit(p.A, p.y, depth=depth, init_scale=1e-4, nonnegative=True, rtol=1e-10, stall_steps=0)
    # L = 2 has a slow tail (x_i = alpha^2 exp(s_i) off the support) and ends
    # at t_max = 1e8 with loss ~1e-16
    assert r.status in ("converged", "max_time")
    assert r.loss <= 1e-12
    assert np.all(r.x >= 0)
    err = np.linalg.norm(r.x - x_bp)
    assert err <= 1e-3, f"nonnegative L={depth} alpha=1e-4: |x - x_BP| = {err:.3e}"
    x_lim = diagonal_flow_limit(p.A, p.y, 1e-4, depth, nonnegative=True)
    assert np.linalg.norm(r.x - x_lim) <= 1e-6


def test_stall_rule_does_not_stop_a_plateau_that_ends(bp_instance_nonneg):
    """The flow escapes its initial saddle plateau at t ~ 2000 and then
    converges (t ~ 3400). With the default stall_steps = 5000 at rtol = 1e-10
    the run is declared "stalled" at t ~ 1982, just before the escape."""
    p, x_bp = bp_instance_nonneg
    r = fit(p.A, p.y, depth=3, init_scale=1e-4, nonnegative=True, rtol=1e-10)
    assert r.status == "converged", (
        f"status {r.status} at t={r.t_final:.1f}, loss {r.loss:.3e} (the flow converges at t ~ 3400)")
    assert np.linalg.norm(r.x - x_bp) <= 1e-3


# --------------------------------------------------------------------------
# 5. the WN limit is the plain limit at alpha_eff
# --------------------------------------------------------------------------
@pytest.mark.parametrize("depth,kappa", [(2, 1.0), (2, 10.0), (3, 1.0), (3, 10.0)])
def test_wn_flow_limit_is_plain_limit_at_alpha_eff(small_sparse, depth, kappa):
    p = small_sparse
    r = fit(p.A, p.y, depth=depth, init_scale=0.1, weight_norm="joint", lr_ratio=kappa, rtol=1e-10)
    # L = 3, kappa = 10: alpha_eff ~ 2e-3, slow tail (loss ~3e-16 at t = 1e8)
    assert r.status in ("converged", "max_time")
    assert r.loss <= 1e-14
    a_eff = r.alpha_eff()
    x_ref = diagonal_flow_limit(p.A, p.y, a_eff, depth)
    err = rel_err(r.x, x_ref, scale=max(1.0, np.linalg.norm(x_ref)))
    assert err <= 1e-6, f"L={depth} kappa={kappa}: |x - x_limit(alpha_eff)| = {err:.3e}"


# --------------------------------------------------------------------------
# 6. fit_many == separate fit calls; thread-count independence
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batch_setup():
    p1 = sparse_regression(8, 16, 2, seed=1)
    p2 = sparse_regression(6, 16, 2, seed=2)
    vec = np.random.default_rng(0).uniform(0.05, 0.2, 16)
    runs = {
        "depth": [2, 3, 2, 2, 3, 2, 3, 2, 2, 3],
        "weight_norm": [None, None, "joint", "joint", "joint", "separate", None, None, "joint", "separate"],
        "lr_ratio": [1.0, 1.0, 1.0, 10.0, 3.0, 2.0, 1.0, 1.0, 5.0, 1.0],
        "init_scale": [0.1, 0.1, 0.1, 0.2, vec, 0.1, 0.3, vec, 0.15, 0.1],
    }
    return p1, p2, runs


BATCH_MODES = [
    ("descent", {"lr": 0.05, "steps": 200}),
    ("flow", {"rtol": 1e-10}),
    ("flow", {"rtol": 1e-10, "t_max": 20.0, "target_loss": 0.0, "solver": "dopri5"}),
]


def _assert_same_run(a, b, rtol):
    assert a.status == b.status
    assert rel_err(a.x, b.x) <= rtol
    assert rel_err(a.u, b.u) <= rtol
    if b.radius is not None:
        assert rel_err(np.atleast_1d(a.radius), np.atleast_1d(b.radius)) <= rtol
    assert a.loss == pytest.approx(b.loss, rel=1e-6, abs=1e-18)
    # a converged flow stops at the first step with loss <= tol, whose size
    # depends on rounding (measured: 8e-8 relative); fixed ends are exact
    assert a.t_final == pytest.approx(b.t_final, rel=1e-6 if b.status == "converged" else 1e-12)


@pytest.mark.parametrize("method,kw", BATCH_MODES)
def test_fit_many_matches_separate_fits(batch_setup, method, kw):
    p1, _, runs = batch_setup
    many = fit_many(p1.A, p1.y, method=method, **runs, **kw)
    assert len(many) == len(runs["depth"])
    worst = 0.0
    for k, res in enumerate(many):
        one = fit(p1.A, p1.y, method=method, depth=runs["depth"][k], weight_norm=runs["weight_norm"][k],
                  lr_ratio=runs["lr_ratio"][k], init_scale=runs["init_scale"][k], **kw)
        assert res.depth == runs["depth"][k] and res.weight_norm == runs["weight_norm"][k]
        assert res.lr_ratio == runs["lr_ratio"][k]
        np.testing.assert_array_equal(res.init_scale, np.broadcast_to(runs["init_scale"][k], (16,)))
        _assert_same_run(res, one, 1e-10)
        worst = max(worst, rel_err(res.x, one.x))
    assert worst <= 1e-10, f"{method}: worst relative difference {worst:.3e}"


@pytest.mark.parametrize("method,kw", BATCH_MODES[:2])
def test_fit_many_two_problems(batch_setup, method, kw):
    p1, p2, _ = batch_setup
    many = fit_many([p1.A, p2.A], [p1.y, p2.y], method=method, depth=[2, 3], init_scale=[0.1, 0.2],
                    weight_norm=[None, "joint"], lr_ratio=[1.0, 4.0], x_star=[p1.x_star, p2.x_star], **kw)
    for res, p, d, a, wn, k in zip(many, (p1, p2), (2, 3), (0.1, 0.2), (None, "joint"), (1.0, 4.0)):
        one = fit(p.A, p.y, method=method, depth=d, init_scale=a, weight_norm=wn, lr_ratio=k,
                  x_star=p.x_star, **kw)
        _assert_same_run(res, one, 1e-10)
        assert res.A.shape == p.A.shape
        assert res.history["error"][-1] == pytest.approx(np.linalg.norm(res.x - p.x_star), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("method,kw", BATCH_MODES)
@pytest.mark.parametrize("block_size", [2, 3, 8])
def test_fit_many_bitwise_independent_of_threads(batch_setup, method, kw, block_size, openmp):
    p1, _, runs = batch_setup
    one = fit_many(p1.A, p1.y, method=method, num_threads=1, block_size=block_size, **runs, **kw)
    two = fit_many(p1.A, p1.y, method=method, num_threads=2, block_size=block_size, **runs, **kw)
    for a, b in zip(one, two):
        assert a.status == b.status
        assert np.array_equal(a.x, b.x)
        assert np.array_equal(a.u, b.u)
        assert a.n_steps == b.n_steps
        for key in ("t", "loss"):
            assert np.array_equal(a.history[key], b.history[key])
    # a split of the groups into different blocks changes nothing beyond rounding
    ref = fit_many(p1.A, p1.y, method=method, block_size=8, **runs, **kw)
    for a, b in zip(one, ref):
        assert rel_err(a.x, b.x) <= 1e-10


# --------------------------------------------------------------------------
# 7. both solvers against scipy's DOP853 at a fixed time
# --------------------------------------------------------------------------
@pytest.mark.parametrize("depth,wn,kappa", [(2, None, 1.0), (3, None, 1.0), (2, "joint", 4.0),
                                            (3, "joint", 1.0), (2, "separate", 2.0)])
def test_solvers_match_solve_ivp(depth, wn, kappa):
    A, y, _ = tiny_problem(4, 6, seed=9)
    n = 6
    T = 5.0
    alpha = np.linspace(0.2, 0.5, n)
    if wn is None:
        s0 = np.concatenate([alpha, alpha])
    elif wn == "joint":
        r0 = np.sqrt(2.0) * np.linalg.norm(alpha)
        s0 = np.concatenate([[r0], alpha / r0, alpha / r0])
    else:
        r0 = np.linalg.norm(alpha)
        s0 = np.concatenate([[r0, r0], alpha / r0, alpha / r0])
    sol = solve_ivp(np_flow_rhs(A, y, depth, False, wn, kappa), (0.0, T), s0, method="DOP853",
                    rtol=1e-13, atol=1e-15)
    assert sol.success
    zT = sol.y[:, -1]
    k = 0 if wn is None else len(np_groups(n, False, wn))
    if k == 0:
        u, v = zT[:n], zT[n:]
        rho_ref = None
    else:
        w = zT[k:]
        groups = np_groups(n, False, wn)
        z = np.concatenate([zT[i] * w[g] / np.linalg.norm(w[g]) for i, g in enumerate(groups)])
        u, v = z[:n], z[n:]
        rho_ref = zT[:k]
    x_ref = u**depth - v**depth
    xs = {}
    for solver in ("rosw", "dopri5"):
        r = fit(A, y, depth=depth, init_scale=alpha, weight_norm=wn, lr_ratio=kappa, solver=solver,
                rtol=1e-10, t_max=T, target_loss=0.0)
        assert r.status == "max_time"
        assert r.t_final == T
        assert r.history["t"][-1] == T
        err = rel_err(r.x, x_ref)
        assert err <= 1e-8, f"{solver}: |x - x_ivp| / |x_ivp| = {err:.3e}"
        assert rel_err(r.u, u) <= 1e-8
        if rho_ref is not None:
            assert rel_err(np.atleast_1d(r.radius), rho_ref) <= 1e-8
        xs[solver] = r.x
    assert rel_err(xs["rosw"], xs["dopri5"]) <= 1e-8


def test_record_time_state_matches_solve_ivp():
    """History at an interior record time T equals the flow at T."""
    A, y, _ = tiny_problem(4, 6, seed=10)
    alpha = np.full(6, 0.3)
    T = 2.0
    sol = solve_ivp(np_flow_rhs(A, y, 2), (0.0, T), np.concatenate([alpha, alpha]), method="DOP853",
                    rtol=1e-13, atol=1e-15)
    uT, vT = sol.y[:6, -1], sol.y[6:, -1]
    x_T = uT**2 - vT**2
    loss_T = 0.5 * np.sum((A @ x_T - y) ** 2)
    for solver in ("rosw", "dopri5"):
        r = fit(A, y, depth=2, init_scale=alpha, solver=solver, rtol=1e-10, record_times=[0.5, T, 4.0],
                t_max=10.0, target_loss=0.0)
        i = np.flatnonzero(r.history["t"] == T)
        assert i.size == 1
        assert r.history["loss"][i[0]] == pytest.approx(loss_T, rel=1e-8)


# --------------------------------------------------------------------------
# 8. bad input
# --------------------------------------------------------------------------
_GOOD = tiny_problem(4, 6, seed=1)


@pytest.fixture(scope="module")
def good():
    return _GOOD


def _bad_cases(A, y, x0):
    nan_A = A.copy()
    nan_A[1, 2] = np.nan
    inf_y = y.copy()
    inf_y[0] = np.inf
    return {
        "A-1d": (dict(A=A[0], y=y), r"^A\b"),
        "A-3d": (dict(A=A[None], y=y), r"^A\b"),
        "A-nan": (dict(A=nan_A, y=y), r"^A\b.*NaN"),
        "y-length": (dict(A=A, y=y[:-1]), r"^y\b"),
        "y-inf": (dict(A=A, y=inf_y), r"^y\b.*inf"),
        "x_star-length": (dict(A=A, y=y, x_star=x0[:-1]), r"^x_star\b"),
        "init-zero": (dict(A=A, y=y, init_scale=0.0), r"^init_scale\b"),
        "init-negative": (dict(A=A, y=y, init_scale=-0.1), r"^init_scale\b"),
        "init-nan": (dict(A=A, y=y, init_scale=np.nan), r"^init_scale\b"),
        "init-vector-zero": (dict(A=A, y=y, init_scale=np.r_[0.1, 0.1, 0.0, 0.1, 0.1, 0.1]), r"^init_scale\b"),
        "init-vector-negative": (dict(A=A, y=y, init_scale=np.r_[0.1, 0.1, -1.0, 0.1, 0.1, 0.1]),
                                 r"^init_scale\b"),
        "init-vector-length": (dict(A=A, y=y, init_scale=np.full(5, 0.1)), r"^init_scale\b"),
        "depth-1": (dict(A=A, y=y, depth=1), r"^depth\b"),
        "depth-0": (dict(A=A, y=y, depth=0), r"^depth\b"),
        "depth-2.5": (dict(A=A, y=y, depth=2.5), r"^depth\b"),
        "depth-float": (dict(A=A, y=y, depth=2.0), r"^depth\b"),
        "lr-zero": (dict(A=A, y=y, method="descent", lr=0.0), r"^lr\b"),
        "lr-negative": (dict(A=A, y=y, method="descent", lr=-0.1), r"^lr\b"),
        "lr-missing": (dict(A=A, y=y, method="descent"), r"^lr\b"),
        "weight_norm": (dict(A=A, y=y, weight_norm="both"), r"^weight_norm\b"),
        "method": (dict(A=A, y=y, method="adam"), r"^method\b"),
        "solver": (dict(A=A, y=y, solver="rk4"), r"^solver\b"),
        "lr_ratio-zero": (dict(A=A, y=y, weight_norm="joint", lr_ratio=0.0), r"^lr_ratio\b"),
        "lr_ratio-negative": (dict(A=A, y=y, weight_norm="joint", lr_ratio=-2.0), r"^lr_ratio\b"),
    }


_BAD = _bad_cases(*_GOOD)


@pytest.mark.parametrize("case", list(_BAD))
def test_fit_rejects_bad_input(case):
    kwargs, pattern = _BAD[case]
    kwargs = dict(kwargs)
    A, y = kwargs.pop("A"), kwargs.pop("y")
    with pytest.raises(ValueError, match=pattern):
        fit(A, y, **kwargs)


def test_fit_many_rejects_mismatched_lists(good):
    A, y, x0 = good
    with pytest.raises(ValueError, match=r"depth.*lr_ratio|lr_ratio.*depth"):
        fit_many(A, y, depth=[2, 3], lr_ratio=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"init_scale"):
        fit_many(A, y, init_scale=[0.1, 0.2, 0.3], weight_norm=[None, "joint"])
    with pytest.raises(ValueError, match=r"^y\b"):
        fit_many([A, A], [y])
    with pytest.raises(ValueError, match=r"^x_star\b"):
        fit_many([A, A], [y, y], x_star=[x0])
    with pytest.raises(ValueError, match=r"lr"):
        fit_many(A, y, method="descent", lr=[0.1, 0.2], depth=[2, 3, 4])
    with pytest.raises(ValueError, match=r"^init_scale\b"):
        fit_many(A, y, init_scale=[0.1, -0.2])


# --------------------------------------------------------------------------
# 9. divergence and non-interpolable problems end cleanly
# --------------------------------------------------------------------------
DIVERGING = [
    (2, None, False, 1e3),
    (2, None, False, 1e6),
    (3, None, False, 10.0),
    (2, None, True, 1e3),
    (3, "joint", False, 1e3),
    (2, "separate", False, 10.0),
]


@pytest.mark.parametrize("depth,wn,nonneg,lr", DIVERGING)
def test_diverging_gd_is_reported_cleanly(depth, wn, nonneg, lr):
    p = sparse_regression(8, 16, 2, seed=1, nonnegative=nonneg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = fit(p.A, p.y, depth=depth, init_scale=0.5, method="descent", lr=lr, steps=100, weight_norm=wn,
                nonnegative=nonneg)
    assert r.status == "diverged", f"status {r.status}, rho {r.radius}, max|u| {np.max(np.abs(r.u)):.3e}"
    assert r.n_steps < 100
    assert np.all(np.isfinite(r.u))
    if not nonneg:
        assert np.all(np.isfinite(r.v))
    if wn is not None:
        assert np.all(np.isfinite(np.atleast_1d(r.radius)))
        assert np.all(np.isfinite(r.direction))
    assert np.all(np.isfinite(r.x)), "x of the kept 'last finite state' is not finite"
    assert r.t_final == pytest.approx(r.n_steps * lr)


@pytest.mark.parametrize("solver", ["rosw", "dopri5"])
@pytest.mark.parametrize("depth,wn", [(2, None), (3, None), (2, "joint")])
def test_non_interpolable_flow_stops(solver, depth, wn):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((12, 6)) / np.sqrt(12)
    y = rng.standard_normal(12)  # M > N: no interpolator
    x_ls = np.linalg.lstsq(A, y, rcond=None)[0]
    loss_ls = 0.5 * np.sum((A @ x_ls - y) ** 2)
    r = fit(A, y, depth=depth, weight_norm=wn, solver=solver, stall_steps=200, max_steps=20000)
    # the target (a relative residual of 10 rtol) is out of reach, so never "converged"; the
    # L-stable solver strides to t_max at the least-squares point, dopri5 stalls near it (measured
    # distance 5e-15 for rosw, 5e-8 to 1.5e-6 for dopri5)
    assert r.status == ("max_time" if solver == "rosw" else "stalled"), r.status
    assert loss_ls * (1 - 1e-9) <= r.loss <= loss_ls * (1 + 1e-9)
    assert np.linalg.norm(r.x - x_ls) <= (1e-10 if solver == "rosw" else 1e-5)
    assert r.n_steps + r.n_rejected <= 20000


# --------------------------------------------------------------------------
# 10. history
# --------------------------------------------------------------------------
def _check_history_shape(h, keys):
    assert set(h) == set(keys)
    lengths = {k: len(v) for k, v in h.items()}
    assert len(set(lengths.values())) == 1, lengths
    assert h["t"][0] == 0.0
    assert np.all(np.diff(h["t"]) > 0)
    assert np.all(np.diff(h["n_grad_evals"]) >= 0)
    assert np.all(np.diff(h["wall_time"]) >= 0)


@pytest.mark.parametrize("wn", [None, "joint", "separate"])
def test_gd_history(wn):
    A, y, x0 = tiny_problem(5, 8, seed=4)
    lr = 0.03
    r = fit(A, y, depth=2, init_scale=0.4, method="descent", lr=lr, steps=10, record_every=3, weight_norm=wn,
            lr_ratio=2.0, x_star=x0)
    h = r.history
    keys = {"t", "loss", "n_grad_evals", "wall_time", "error"}
    keys |= {None: set(), "joint": {"radius"}, "separate": {"radius_u", "radius_v"}}[wn]
    _check_history_shape(h, keys)
    steps = np.array([0, 3, 6, 9, 10])
    np.testing.assert_allclose(h["t"], steps * lr, rtol=1e-15)
    np.testing.assert_array_equal(h["n_grad_evals"], steps)
    for i, k in enumerate(steps):
        ref = np_gd(A, y, 0.4, depth=2, weight_norm=wn, kappa=2.0, lr=lr, steps=int(k))
        assert h["loss"][i] == pytest.approx(0.5 * np.sum((A @ ref["x"] - y) ** 2), rel=1e-11)
        assert h["error"][i] == pytest.approx(np.linalg.norm(ref["x"] - x0), rel=1e-11)
        if wn == "joint":
            assert h["radius"][i] == pytest.approx(ref["rho"][0], rel=1e-13)
        if wn == "separate":
            assert h["radius_u"][i] == pytest.approx(ref["rho"][0], rel=1e-13)
            assert h["radius_v"][i] == pytest.approx(ref["rho"][1], rel=1e-13)
    assert h["loss"][-1] == r.loss
    assert h["error"][-1] == pytest.approx(np.linalg.norm(r.x - x0), rel=1e-13)
    if wn == "joint":
        assert h["radius"][-1] == r.radius
    if wn == "separate":
        assert (h["radius_u"][-1], h["radius_v"][-1]) == r.radius


def test_gd_default_record_every():
    A, y, _ = tiny_problem()
    r = fit(A, y, method="descent", lr=0.01, steps=1000, n_record=50)
    np.testing.assert_allclose(r.history["t"], np.arange(0, 1001, 20) * 0.01, rtol=1e-14)


@pytest.mark.parametrize("solver", ["rosw", "dopri5"])
@pytest.mark.parametrize("wn", [None, "joint", "separate"])
def test_flow_history_lands_on_record_times(solver, wn):
    A, y, x0 = tiny_problem(5, 8, seed=4)
    rec = [0.25, 0.5, 1.0, 2.0, 3.5]
    r = fit(A, y, depth=2, init_scale=0.3, weight_norm=wn, solver=solver, record_times=rec, t_max=5.0,
            target_loss=0.0, x_star=x0)
    h = r.history
    keys = {"t", "loss", "n_grad_evals", "wall_time", "error"}
    keys |= {None: set(), "joint": {"radius"}, "separate": {"radius_u", "radius_v"}}[wn]
    _check_history_shape(h, keys)
    assert r.status == "max_time"
    np.testing.assert_array_equal(h["t"], [0.0] + rec + [5.0])
    assert h["loss"][-1] == r.loss
    assert h["n_grad_evals"][-1] == r.n_grad_evals
    assert h["error"][-1] == pytest.approx(np.linalg.norm(r.x - x0), rel=1e-13)
    assert h["error"][0] == pytest.approx(np.linalg.norm(x0), rel=1e-13)  # x(0) = 0
    assert h["loss"][0] == pytest.approx(0.5 * np.sum(y**2), rel=1e-14)
    assert np.all(np.diff(h["loss"]) < 0)  # the flow decreases the loss
    if wn == "joint":
        assert h["radius"][-1] == r.radius
    if wn == "separate":
        assert (h["radius_u"][-1], h["radius_v"][-1]) == r.radius
    # a run stopped at an earlier record time reproduces that history point to the integrator's tolerance
    # (the record is the dense output of the step across t = 1, r1 lands a step there; section 4.9)
    r1 = fit(A, y, depth=2, init_scale=0.3, weight_norm=wn, solver=solver, record_times=rec[:3], t_max=1.0,
             target_loss=0.0, x_star=x0)
    assert r1.t_final == 1.0
    assert r1.loss == pytest.approx(h["loss"][3], rel=1e-7)  # measured <= 7e-9 at rtol 1e-8


def test_flow_default_record_times_and_record_every():
    A, y, _ = tiny_problem()
    r = fit(A, y, init_scale=0.3, t_max=10.0, target_loss=0.0, n_record=20)
    rec = np.logspace(-3, 1, 20)
    np.testing.assert_allclose(r.history["t"], np.concatenate([[0.0], rec]), rtol=1e-15)
    r2 = fit(A, y, init_scale=0.3, t_max=10.0, target_loss=0.0, record_times=[10.0], record_every=5)
    h = r2.history
    _check_history_shape(h, {"t", "loss", "n_grad_evals", "wall_time"})
    assert h["t"][-1] == 10.0
    # every 5th accepted step plus t = 0 and the final time
    assert len(h["t"]) in (r2.n_steps // 5 + 1, r2.n_steps // 5 + 2)


def test_converged_flow_history_error_at_final_point():
    p = sparse_regression(10, 30, 2, seed=1)
    r = fit(p.A, p.y, init_scale=0.1, x_star=p.x_star, weight_norm="joint", lr_ratio=3.0)
    assert r.status == "converged"
    h = r.history
    assert h["t"][-1] == r.t_final
    assert h["error"][-1] == pytest.approx(np.linalg.norm(r.x - p.x_star), rel=1e-12)
    assert h["loss"][-1] == r.loss
    assert r.loss <= 50 * (1e-8 * np.linalg.norm(p.y)) ** 2  # the default tol


@pytest.mark.parametrize("depth,nonnegative", [(2, False), (3, False), (2, True), (4, True)])
def test_gd_lanes_kernel_matches_the_generic_loop(depth, nonnegative):
    """Plain GD blocks run as SIMD lanes; the generic per-column loop is the reference."""
    d = sparse_regression(12, 30, 3, seed=4, nonnegative=nonnegative)
    # 11 runs: a block of 6 and one of 5 (odd sizes leave padded lanes); one run diverges
    alphas = list(np.logspace(-3, -0.5, 10)) + [3.0]
    kw = dict(depth=depth, init_scale=alphas, method="descent", lr=[0.05] * 10 + [5.0], steps=3000, x_star=d.x_star,
              nonnegative=nonnegative, record_every=250, block_size=6)
    lanes = fit_many(d.A, d.y, gd_kernel="lanes", **kw)
    generic = fit_many(d.A, d.y, gd_kernel="generic", **kw)
    for a, b in zip(lanes, generic):
        assert a.status == b.status
        assert a.n_steps == b.n_steps and a.n_grad_evals == b.n_grad_evals
        np.testing.assert_allclose(a.x, b.x, rtol=1e-10, atol=1e-14)
        assert set(a.history) == set(b.history)
        for key in ("t", "n_grad_evals"):
            np.testing.assert_array_equal(a.history[key], b.history[key])
        # residual norms: near the interpolator they sit at the rounding level of A x - y
        np.testing.assert_allclose(np.sqrt(a.history["loss"]), np.sqrt(b.history["loss"]), rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(a.history["error"], b.history["error"], rtol=1e-9, atol=1e-14)
    assert lanes[-1].status == "diverged" and np.all(np.isfinite(lanes[-1].x))
    assert all(r.status != "diverged" for r in lanes[:-1])
    # a run alone and the same run inside a block give bitwise the same numbers
    solo = fit(d.A, d.y, depth=depth, init_scale=alphas[3], method="descent", lr=0.05, steps=3000,
                           nonnegative=nonnegative)
    np.testing.assert_array_equal(solo.x, lanes[3].x)


def test_plain_python_lists_are_one_problem():
    d = sparse_regression(10, 20, 2, seed=1)
    a = fit(d.A, d.y, method="descent", lr=0.05, steps=100)
    b = fit(d.A.tolist(), d.y.tolist(), method="descent", lr=0.05, steps=100)
    np.testing.assert_array_equal(a.x, b.x)
