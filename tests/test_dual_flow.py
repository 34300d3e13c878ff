"""The plain flow in dual coordinates (``solver="rodas5"`` and the default ``"bdf"``, docs/science.md,
section 1.9) and the Rodas5 integrator (section 4.8).

Independent routes: the 2N-dimensional flow on (u, v) with both of its
integrators (rosw, dopri5), the flow limit of ``reference.diagonal_flow_limit``
(Newton on the dual problem), the closed forms of the dual map checked against
finite differences and the conserved quantities, and ``scipy.integrate.solve_ivp``
on the weight-normalized polar system. The shared adaptive driver (section 4.9): records from each
method's dense output leave the trajectory alone and match scipy's DOP853 on the 2N-dimensional flow;
the Jacobian and factorization counts of every method.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from implicitbias.data import sparse_regression
from implicitbias.diagonal import fit, fit_many
from implicitbias.reference import diagonal_flow_limit


def _problem(nonneg, seed=1):
    return sparse_regression(8, 16, 2, seed=seed, nonnegative=nonneg)


def _alpha(n, seed=0, lo=0.05, hi=0.2):
    return np.random.default_rng(seed).uniform(lo, hi, n)


def _uv_of_dual(A, s, alpha, depth):
    """NumPy closed form of u, v at z = A^T s (docs/science.md, section 1.9), written independently of the core."""
    z = A.T @ s
    if depth == 2:
        return alpha * np.exp(-2 * z), alpha * np.exp(2 * z)
    c = depth * (depth - 2)
    u = (alpha ** (2.0 - depth) + c * z) ** (1.0 / (2 - depth))
    v = (alpha ** (2.0 - depth) - c * z) ** (1.0 / (2 - depth))
    return u, v


def _x_of_dual(A, s, alpha, depth, nonneg):
    u, v = _uv_of_dual(A, s, alpha, depth)
    return u**depth if nonneg else u**depth - v**depth


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("nonneg", [False, True])
def test_dual_closed_form_solves_the_primal_flow(depth, nonneg):
    """d/dt x(A^T s) with ds/dt = A x - y equals the primal flow's dx/dt (finite differences in s).

    This checks the closed form the dual solvers are built on; the next test checks that the package's
    flows (dual and primal coordinates) satisfy it."""
    p = _problem(nonneg)
    A, y = p.A, p.y
    alpha = _alpha(A.shape[1])
    s = 0.05 * np.random.default_rng(3).standard_normal(A.shape[0])
    x = _x_of_dual(A, s, alpha, depth, nonneg)
    r = A @ x - y
    eps = 1e-6
    dx_dual = (_x_of_dual(A, s + eps * r, alpha, depth, nonneg) - _x_of_dual(A, s - eps * r, alpha, depth, nonneg))
    dx_dual /= 2 * eps
    # primal: u, v from the same s, then du/dt = -L u^(L-1) g, dv/dt = L v^(L-1) g
    u, v = _uv_of_dual(A, s, alpha, depth)
    g = A.T @ r
    du, dv = -depth * u ** (depth - 1) * g, depth * v ** (depth - 1) * g
    dx_primal = depth * u ** (depth - 1) * du - (0 if nonneg else depth * v ** (depth - 1) * dv)
    np.testing.assert_allclose(dx_dual, dx_primal, rtol=1e-6, atol=1e-9 * np.abs(dx_primal).max())


@pytest.mark.parametrize("solver", ["rodas5", "bdf", "rosw", "dopri5"])
@pytest.mark.parametrize("depth", [2, 3])
def test_flows_stay_on_the_dual_manifold(solver, depth):
    """Every solver's end state is ``(u, v) = (u, v)(A^T s)`` for some s, which is what the dual solvers
    integrate: at depth 2 ``log(u/alpha) = -2 z`` and ``log(v/alpha) = 2 z``, at depth L
    ``u^(2-L) = alpha^(2-L) + L(L-2) z``, ``v^(2-L) = alpha^(2-L) - L(L-2) z``, with the same z, and z in
    range(A^T). The primal solvers (rosw, dopri5) do not impose it, so it is an independent check of them,
    and of the dual ones' decoding of u, v from s."""
    p = _problem(False)
    A = p.A
    alpha = _alpha(A.shape[1])
    r = fit(A, p.y, depth=depth, init_scale=alpha, solver=solver, t_max=5.0, rtol=1e-10, target_loss=0.0)
    assert r.status == "max_time"
    if depth == 2:
        z_u, z_v = -np.log(r.u / alpha) / 2, np.log(r.v / alpha) / 2
    else:
        c = depth * (depth - 2)
        z_u = (r.u ** (2.0 - depth) - alpha ** (2.0 - depth)) / c
        z_v = (alpha ** (2.0 - depth) - r.v ** (2.0 - depth)) / c
    scale = np.abs(z_u).max()
    assert scale > 1e-2  # the flow moved
    np.testing.assert_allclose(z_u, z_v, rtol=0, atol=1e-8 * scale)
    # z = A^T s: its component orthogonal to range(A^T) vanishes
    s, *_ = np.linalg.lstsq(A.T, z_u, rcond=None)
    assert np.linalg.norm(A.T @ s - z_u) <= 1e-8 * np.linalg.norm(z_u)


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("nonneg", [False, True])
def test_dual_flow_matches_the_2n_flow_along_the_trajectory(depth, nonneg):
    p = _problem(nonneg)
    alpha = _alpha(p.A.shape[1])
    times = np.array([0.1, 0.5, 2.0, 8.0, 30.0])
    runs = {}
    for solver in ("rodas5", "rosw", "dopri5"):
        runs[solver] = [fit(p.A, p.y, depth=depth, init_scale=alpha, nonnegative=nonneg, solver=solver,
                            t_max=t, rtol=1e-12, target_loss=0.0, x_star=p.x_star, record_times=times[times <= t])
                        for t in times]
    for k, t in enumerate(times):
        xd = runs["rodas5"][k].x
        assert runs["rodas5"][k].status == "max_time" and runs["rodas5"][k].t_final == t
        for solver in ("rosw", "dopri5"):
            xp = runs[solver][k].x
            assert np.linalg.norm(xd - xp) <= 1e-8 * max(1.0, np.linalg.norm(xp)), (solver, t)
    # the recorded history means the same: t, loss and error at the record times
    hd, hp = runs["rodas5"][-1].history, runs["rosw"][-1].history
    np.testing.assert_array_equal(hd["t"], hp["t"])
    np.testing.assert_allclose(hd["loss"], hp["loss"], rtol=1e-7, atol=1e-14)
    np.testing.assert_allclose(hd["error"], hp["error"], rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("solver", ["rodas5", "bdf"])
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("init", [1e-2, 1e-6, 1e-12])
def test_dual_flow_limit_matches_reference(solver, nonneg, init):
    """Both dual-coordinate integrators (Rodas5 and the BDF) end at the flow's limit."""
    p = sparse_regression(10, 24, 2, seed=5, nonnegative=nonneg)
    r = fit(p.A, p.y, init_scale=init, nonnegative=nonneg, solver=solver, rtol=1e-10, t_max=1e12)
    assert r.status == "converged"
    ref = diagonal_flow_limit(p.A, p.y, init_scale=init, nonnegative=nonneg)
    assert np.linalg.norm(r.x - ref) <= 1e-6 * np.linalg.norm(ref)


@pytest.mark.parametrize("solver", ["rodas5", "bdf"])
@pytest.mark.parametrize("depth", [3, 4])
def test_dual_flow_limit_matches_reference_deeper(solver, depth):
    p = sparse_regression(10, 24, 2, seed=5)
    alpha = _alpha(24, lo=0.05, hi=0.1)
    r = fit(p.A, p.y, depth=depth, init_scale=alpha, solver=solver, rtol=1e-10, t_max=1e12)
    assert r.status == "converged"
    ref = diagonal_flow_limit(p.A, p.y, init_scale=alpha, depth=depth)
    assert np.linalg.norm(r.x - ref) <= 1e-6 * np.linalg.norm(ref)


@pytest.mark.parametrize("solver", ["rodas5", "bdf"])
@pytest.mark.parametrize("nonneg", [False, True])
def test_dual_flow_at_init_1e_100(solver, nonneg):
    """No underflow or overflow: u v = alpha^2 holds in the log domain, and the limit is basis pursuit."""
    p = sparse_regression(10, 24, 2, seed=5, nonnegative=nonneg)
    r = fit(p.A, p.y, init_scale=1e-100, nonnegative=nonneg, solver=solver, rtol=1e-10, t_max=1e12)
    assert r.status == "converged" and np.isfinite(r.x).all() and np.all(r.u > 0)
    assert np.linalg.norm(p.A @ r.x - p.y) <= 1e-8 * np.linalg.norm(p.y)
    ref = diagonal_flow_limit(p.A, p.y, init_scale=1e-100, nonnegative=nonneg)
    assert np.linalg.norm(r.x - ref) <= 1e-6 * np.linalg.norm(ref)
    if not nonneg:
        # log(u v) = 2 log(alpha) exactly up to rounding
        np.testing.assert_allclose(np.log(r.u) + np.log(r.v), 2 * np.log(1e-100), rtol=1e-13)


def test_default_flow_solvers():
    """The BDF is the default: on the dual flow (tests/test_bdf.py) for plain flows, in log-polar coordinates
    for weight-normalized ones (tests/test_wn_bdf.py, at atol = 0 too); solver="rodas5" applies to plain runs
    only."""
    p = _problem(False)
    a = fit(p.A, p.y, init_scale=0.1, t_max=50.0)
    b = fit(p.A, p.y, init_scale=0.1, t_max=50.0, solver="bdf")
    np.testing.assert_array_equal(a.x, b.x)
    assert a.n_grad_evals == b.n_grad_evals
    w = fit(p.A, p.y, init_scale=0.1, t_max=50.0, weight_norm="joint")
    w_bdf = fit(p.A, p.y, init_scale=0.1, t_max=50.0, weight_norm="joint", solver="bdf")
    np.testing.assert_array_equal(w.x, w_bdf.x)
    assert w.n_grad_evals == w_bdf.n_grad_evals and w.n_jac > 0
    with pytest.raises(ValueError, match=r"rodas5.*dual coordinates"):
        fit(p.A, p.y, weight_norm="joint", solver="rodas5")
    with pytest.raises(ValueError, match=r"rodas5.*dual coordinates"):
        fit_many(p.A, p.y, weight_norm=[None, "joint"], solver="rodas5")
    with pytest.raises(ValueError, match="solver"):  # the old name of rodas5
        fit(p.A, p.y, solver="dual")


@pytest.mark.parametrize("solver", ["rodas5", "bdf"])
def test_dual_flow_steps_grow_across_plateaus(solver):
    """Saddle to saddle at tiny init: plateaus of length ~ log(1/alpha) do not cost steps in proportion.

    From alpha = 1e-3 to 1e-30 the plateaus grow ten times longer; the dual flow's step count grows
    less than four times (the 2N-dimensional rosw flow's grows ~11 times)."""
    p = sparse_regression(10, 24, 3, seed=7)
    runs = [fit(p.A, p.y, init_scale=a, solver=solver, rtol=1e-8, t_max=1e14, n_record=2) for a in (1e-3, 1e-30)]
    assert all(r.status == "converged" for r in runs)
    assert runs[1].t_final > 20 * runs[0].t_final
    assert runs[1].n_steps < 4 * runs[0].n_steps


def _wn_polar_ivp(A, y, alpha, kappa, t_end):
    """Joint WN flow, depth 2, in polar coordinates (docs/science.md, section 1.6), by scipy Radau."""
    n = A.shape[1]

    def fun(t, z):
        w = z[1:] / np.linalg.norm(z[1:])
        u, v = z[0] * w[:n], z[0] * w[n:]
        g = A.T @ (A @ (u * u - v * v) - y)
        gz = np.concatenate([2 * u * g, -2 * v * g])
        s = w @ gz
        return np.concatenate([[-s], -kappa * z[0] * (gz - w * s)])
    rho = np.sqrt(2.0) * np.linalg.norm(alpha)
    z0 = np.concatenate([[rho], alpha / rho, alpha / rho])
    sol = solve_ivp(fun, (0, t_end), z0, method="Radau", rtol=1e-12, atol=1e-14)
    w = sol.y[1:, -1] / np.linalg.norm(sol.y[1:, -1])
    return sol.y[0, -1] * w[:n], sol.y[0, -1] * w[n:]


@pytest.mark.parametrize("kappa", [1.0, 10.0])
def test_weight_normalized_flow_integrators_match_scipy(kappa):
    """BDF and rosw (the default) on the joint WN polar system against scipy Radau at rtol 1e-12."""
    p = _problem(False)
    alpha = _alpha(16)
    u_ref, v_ref = _wn_polar_ivp(p.A, p.y, alpha, kappa, 20.0)
    x_ref = u_ref**2 - v_ref**2
    out = {s: fit(p.A, p.y, init_scale=alpha, weight_norm="joint", lr_ratio=kappa, solver=s, rtol=1e-10,
                  atol=1e-14, target_loss=0.0, t_max=20.0) for s in ("bdf", "rosw")}
    err = {s: np.linalg.norm(r.x - x_ref) / np.linalg.norm(x_ref) for s, r in out.items()}
    assert all(r.status == "max_time" for r in out.values())
    # rosw is a W-method: the Gauss-Newton W-matrix keeps its order (measured ~1e-10 here)
    assert err["rosw"] <= 1e-8
    # the BDF uses the Gauss-Newton Jacobian only in its Newton iteration, so its accuracy does not depend
    # on it (measured 6e-10 and 7e-11 here, with 25x fewer gradient evaluations than rosw)
    assert err["bdf"] <= 3e-9
    assert out["bdf"].n_grad_evals < out["rosw"].n_grad_evals / 5


@pytest.mark.parametrize("weight_norm,nonneg", [("joint", False), ("joint", True), ("separate", False)])
def test_weight_normalized_bdf_matches_rosw(weight_norm, nonneg):
    """Every weight-normalized model on the BDF follows the rosw trajectory: the end points at t = 2, 5, 20
    (measured 2e-10 to 1.2e-9 relative at t = 20) and the loss at the record times."""
    p = _problem(nonneg)
    alpha = _alpha(16)
    times = np.array([2.0, 5.0, 20.0])
    out = {s: [fit(p.A, p.y, init_scale=alpha, weight_norm=weight_norm, nonnegative=nonneg, lr_ratio=3.0,
                   solver=s, rtol=1e-10, atol=1e-14, target_loss=0.0, t_max=t, record_times=times[times <= t])
               for t in times] for s in ("bdf", "rosw")}
    for b, r in zip(out["bdf"], out["rosw"]):
        assert b.status == r.status == "max_time" and b.t_final == r.t_final
        assert np.linalg.norm(b.x - r.x) <= 1e-8 * np.linalg.norm(r.x)
    hb, hr = out["bdf"][-1].history, out["rosw"][-1].history
    np.testing.assert_array_equal(hb["t"], hr["t"])
    np.testing.assert_allclose(hb["loss"], hr["loss"], rtol=1e-7)
    for key in set(hr) & {"radius", "radius_u", "radius_v"}:
        np.testing.assert_allclose(hb[key], hr[key], rtol=1e-8)


# ---------------------------------------------------------------- records from dense output (issue 18, item 3)
def _diag_2n_flow(A, y, alpha, depth, times, nonneg=False):
    """The primal flow du/dt = -L u^(L-1) g, dv/dt = L v^(L-1) g, g = A^T (A x - y), by scipy's DOP853 at
    rtol 1e-13, as the loss 0.5 ||A x - y||^2 at `times` (written independently of the core)."""
    n = A.shape[1]

    def fun(_t, z):
        u, v = z[:n], z[n:]
        x = u**depth - (0 if nonneg else v**depth)
        g = A.T @ (A @ x - y)
        return np.concatenate([-depth * u ** (depth - 1) * g, depth * v ** (depth - 1) * g])

    sol = solve_ivp(fun, (0, times[-1]), np.concatenate([alpha, alpha]), method="DOP853", rtol=1e-13,
                    atol=1e-16, t_eval=times)
    u, v = sol.y[:n], sol.y[n:]
    x = u**depth - (0 if nonneg else v**depth)
    return 0.5 * np.sum((A @ x - y[:, None]) ** 2, axis=0)


FLOW_SOLVERS = ["bdf", "rodas5", "rosw", "dopri5"]


@pytest.mark.parametrize("solver", FLOW_SOLVERS)
def test_records_do_not_change_the_trajectory(solver):
    """n_record and record_times only read the dense output: the final state and every counter are
    bitwise the same for 2 records, 50 records and 37 given record times."""
    p = sparse_regression(8, 16, 2, seed=1)
    kw = dict(depth=2, init_scale=0.05, solver=solver, rtol=1e-8, t_max=40.0, target_loss=0.0)
    runs = [fit(p.A, p.y, n_record=2, **kw), fit(p.A, p.y, n_record=50, **kw),
            fit(p.A, p.y, record_times=np.linspace(0.3, 39.0, 37), **kw)]
    assert [len(r.history["t"]) for r in runs] == [3, 51, 39]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.x, runs[0].x)
        assert (r.n_steps, r.n_rejected, r.n_grad_evals, r.n_jac, r.n_lu, r.t_final, r.status) == (
            runs[0].n_steps, runs[0].n_rejected, runs[0].n_grad_evals, runs[0].n_jac, runs[0].n_lu,
            runs[0].t_final, runs[0].status)


@pytest.mark.parametrize("solver", FLOW_SOLVERS)
def test_dense_records_match_an_independent_flow(solver):
    """The loss at 40 record times between the steps against scipy's DOP853 at rtol 1e-13 on the 2N flow
    (measured at rtol 1e-8: 1.5e-8 rodas5, 1.8e-8 dopri5, 1.2e-7 rosw, 5e-7 bdf relative)."""
    p = sparse_regression(8, 16, 2, seed=1)
    alpha = np.random.default_rng(0).uniform(0.05, 0.2, 16)
    times = np.linspace(0.05, 30.0, 40)
    r = fit(p.A, p.y, depth=2, init_scale=alpha, solver=solver, rtol=1e-8, t_max=30.0, target_loss=0.0,
            record_times=times)
    ref = _diag_2n_flow(p.A, p.y, alpha, 2, times)
    np.testing.assert_array_equal(r.history["t"][1:], times)
    np.testing.assert_allclose(r.history["loss"][1:], ref, rtol=2e-6)


@pytest.mark.parametrize("solver", FLOW_SOLVERS)
def test_dense_records_match_the_step_that_lands_there(solver):
    """A run with t_max = t_r takes the same steps up to t_r and lands its last one there: its end state
    against the record at t_r of a longer run is the dense output against the method's own step (measured
    <= 2.4e-8)."""
    p = sparse_regression(8, 16, 2, seed=1)
    alpha = np.random.default_rng(0).uniform(0.05, 0.2, 16)
    times = np.array([0.7, 3.1, 9.0, 17.5])
    kw = dict(depth=2, init_scale=alpha, solver=solver, rtol=1e-8, target_loss=0.0)
    r = fit(p.A, p.y, t_max=30.0, record_times=times, **kw)
    ends = [fit(p.A, p.y, t_max=t, n_record=2, **kw) for t in times]
    np.testing.assert_allclose(r.history["loss"][1:-1], [e.loss for e in ends], rtol=1e-6)


@pytest.mark.parametrize("depth", [2, 3])
def test_jacobian_and_factorization_counts(depth):
    """n_jac and n_lu follow each method's structure (docs/science.md, section 4.9)."""
    p = sparse_regression(8, 16, 2, seed=1)
    r = {s: fit(p.A, p.y, depth=depth, init_scale=1e-3, solver=s, rtol=1e-8, t_max=1e9) for s in FLOW_SOLVERS}
    assert r["dopri5"].n_jac == r["dopri5"].n_lu == 0  # explicit
    s = "rodas5"  # Rodas5: one Jacobian and one factorization per attempt
    assert r[s].n_jac == r[s].n_lu == r[s].n_steps + r[s].n_rejected > 0
    # ROS34PW2: one factorization per attempt; a Jacobian every jac_every = 4 attempts and after a rejection
    w = r["rosw"]
    attempts = w.n_steps + w.n_rejected
    assert w.n_lu == attempts
    assert -(-attempts // 4) <= w.n_jac <= -(-attempts // 4) + w.n_rejected
    # the BDF on this stiff flow (init 1e-3): Jacobians and factorizations kept over many steps
    b = r["bdf"]
    assert b.status == "converged"
    assert 1 <= b.n_jac <= b.n_lu < b.n_steps / 3
    many = fit_many(p.A, p.y, depth=depth, init_scale=[1e-3, 1e-2], solver="bdf", rtol=1e-8, t_max=1e9)
    assert (many[0].n_jac, many[0].n_lu) == (b.n_jac, b.n_lu)  # counted per run
    d = fit(p.A, p.y, method="descent", lr=0.01, steps=20)
    assert d.n_jac == d.n_lu == 0


@pytest.mark.parametrize("t_max", [30.0, 7.0, 1e3])
def test_default_record_times_end_at_t_max_once(t_max):
    """The default log-spaced record times end at t_max exactly (10**log10(30) is 29.999999999999996): the
    history does not repeat its last point a rounding error before the end."""
    p = _problem(False)
    for solver in ("bdf", "rosw"):
        r = fit(p.A, p.y, init_scale=0.1, solver=solver, t_max=t_max, target_loss=0.0, n_record=5)
        t = r.history["t"]
        assert r.status == "max_time" and t[-1] == t_max and np.all(np.diff(t) > 1e-9 * t_max), (solver, t)
