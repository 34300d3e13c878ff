"""Stochastic and accelerated descent on diagonal networks (docs/dynamics.md): every method against a
NumPy reimplementation with the same draws, the effective-initialization bookkeeping, its identity and the
limit it predicts."""

from __future__ import annotations

import numpy as np
import pytest

import implicitbias as ib
from implicitbias.diagonal import batch_draws, fit, fit_many
from implicitbias.reference import diagonal_flow_limit


@pytest.fixture(scope="module")
def prob():
    rng = np.random.default_rng(7)
    M, N = 7, 12
    A = rng.normal(size=(M, N)) / np.sqrt(M)
    x_star = np.zeros(N)
    x_star[[1, 5, 8]] = [1.0, -0.8, 0.6]
    return A, A @ x_star, x_star


# ---------------------------------------------------------------------------- NumPy reimplementation
def _np_run(A, y, alpha, *, steps, lr, method="sgd", depth=2, nonnegative=False, batch_size=None,
            sampling="replacement", momentum=0.0, nesterov=False, schedule="constant", decay_k0=100.0,
            decay_power=0.5, warmup_steps=0, sam_radius=0.0, sam_per_example=False, label_noise_std=0.0, seed=0):
    """The methods as written in docs/dynamics.md, in parameter space (z = (u, v)), and the bookkeeping
    accumulated from the ratios z_{k+1} / z_k of the iterates."""
    M, N = A.shape
    L = depth
    u = np.full(N, alpha, dtype=float)
    v = None if nonnegative else u.copy()
    u_prev, v_prev = u.copy(), None if v is None else v.copy()
    c = np.zeros(N)
    la2, ell, ssum, t = np.zeros(N), np.zeros(N), np.zeros(N), 0.0

    def x_of(u, v):
        return u**L if v is None else u**L - v**L

    def grads(u, v, rows, noise):
        """(grad_u, grad_v, h) of the batch loss 0.5 sum (a_i x - y_i - noise_i)^2 and its A_B^T r."""
        r = A[rows] @ x_of(u, v) - y[rows] - noise
        g = A[rows].T @ r
        gu = L * u ** (L - 1) * g
        gv = None if v is None else -L * v ** (L - 1) * g
        return gu, gv, g

    for k in range(steps):
        eta = lr if schedule == "constant" else lr * (1.0 + k / decay_k0) ** (-decay_power)
        if k < warmup_steps:
            eta *= (k + 1) / warmup_steps
        rows, xi = batch_draws(seed, k, M, batch_size, sampling)
        noise = label_noise_std * xi if method == "label_noise_sgd" else np.zeros(rows.size)
        if nesterov and momentum > 0:
            pu = u + momentum * (u - u_prev)
            pv = None if v is None else v + momentum * (v - v_prev)
        else:
            pu, pv = u, v
        if method == "sam" and sam_radius > 0 and not sam_per_example:
            gu, gv, _ = grads(pu, pv, rows, noise)
            n = np.sqrt(np.sum(gu**2) + (0.0 if gv is None else np.sum(gv**2)))
            qu = pu + sam_radius * gu / n
            qv = None if pv is None else pv + sam_radius * gv / n
            gu, gv, h = grads(qu, qv, rows, noise)
        elif method == "sam" and sam_radius > 0:
            gu, gv, h = np.zeros(N), (None if pv is None else np.zeros(N)), np.zeros(N)
            for i in rows:
                one = np.array([i])
                eu, ev, _ = grads(pu, pv, one, np.zeros(1))
                n = np.sqrt(np.sum(eu**2) + (0.0 if ev is None else np.sum(ev**2)))
                qu = pu + sam_radius * eu / n
                qv = None if pv is None else pv + sam_radius * ev / n
                du, dv, dh = grads(qu, qv, one, np.zeros(1))
                gu, h = gu + du, h + dh
                if gv is not None:
                    gv = gv + dv
        else:
            gu, gv, h = grads(pu, pv, rows, noise)
        if nesterov and momentum > 0:
            nu = pu - eta * gu
            nv = None if pv is None else pv - eta * gv
        else:
            nu = u - eta * gu + momentum * (u - u_prev)
            nv = None if v is None else v - eta * gv + momentum * (v - v_prev)
        c = momentum * c + h
        lu = np.log(np.abs(nu / u))
        if v is None:
            la2 += 2 * lu + 4 * eta * c
        else:
            lv = np.log(np.abs(nv / v))
            la2 += lu + lv
            ell += lu - lv + 4 * eta * c
        ssum += eta * c
        t += eta
        u_prev, v_prev, u, v = u, v, nu, nv
    return dict(u=u, v=v, log_a2=2 * np.log(alpha) + la2, ell=ell, step_sum=ssum, t=t)


CASES = {
    "gd": dict(lr=0.3),
    "sgd_replacement": dict(lr=0.4, batch_size=3),
    "sgd_epochs": dict(lr=0.4, batch_size=3, sampling="epochs"),  # 7 rows: batches 3, 3, 1
    "heavy_ball": dict(lr=0.2, batch_size=2, momentum=0.7),
    "nesterov": dict(lr=0.2, momentum=0.8, nesterov=True),
    "power_warmup": dict(lr=0.5, batch_size=1, schedule="power", decay_k0=5.0, decay_power=0.7, warmup_steps=4),
    "n_sam": dict(method="sam", lr=0.3, batch_size=4, sam_radius=0.05),
    "one_sam": dict(method="sam", lr=0.3, sam_radius=0.05, sam_per_example=True),
    "one_sam_batch_momentum": dict(method="sam", lr=0.2, batch_size=3, sam_radius=0.1, sam_per_example=True,
                                   momentum=0.5),
    "n_sam_nesterov": dict(method="sam", lr=0.2, sam_radius=0.1, momentum=0.5, nesterov=True),
    "label_noise": dict(method="label_noise_sgd", lr=0.3, batch_size=2, label_noise_std=0.3),
    "depth3_momentum": dict(lr=0.5, depth=3, batch_size=2, momentum=0.6, init=0.3),
    "nonnegative": dict(lr=0.3, batch_size=2, nonnegative=True),
    "nonnegative_sam_depth3": dict(method="sam", lr=0.5, depth=3, nonnegative=True, sam_radius=0.05, init=0.3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_method_matches_numpy_with_the_same_draws(prob, name):
    A, y, _ = prob
    kw = dict(CASES[name])
    alpha = kw.pop("init", 0.1)
    nonneg = kw.get("nonnegative", False)
    yy = A @ np.full(A.shape[1], 0.2) if nonneg else y  # a nonnegative solution exists
    steps = 30
    ref = _np_run(A, yy, alpha, steps=steps, seed=11, **kw)
    r = fit(A, yy, init_scale=alpha, steps=steps, seed=11, **{"method": "sgd", **kw})
    assert r.status == "max_steps" and r.n_steps == steps
    scale = np.max(np.abs(ref["u"]))
    np.testing.assert_allclose(r.u, ref["u"], rtol=1e-11, atol=1e-13 * scale)
    if not nonneg:
        np.testing.assert_allclose(r.v, ref["v"], rtol=1e-11, atol=1e-13 * scale)
    assert r.t_final == pytest.approx(ref["t"], rel=1e-14)
    if kw.get("depth", 2) == 2:  # the C++ bookkeeping against the NumPy accumulation of the same multipliers
        np.testing.assert_allclose(np.log(r.alpha_eff()) * 2, ref["log_a2"], rtol=0, atol=1e-11)
        np.testing.assert_allclose(r.step_sum, ref["step_sum"], rtol=0, atol=1e-11)
        if not nonneg:
            np.testing.assert_allclose(r.log_alpha_ratio(), ref["ell"], rtol=0, atol=1e-11)


def test_batch_draws_are_the_documented_ones():
    idx, xi = batch_draws(3, 5, 10, 4)
    assert idx.dtype == np.int64 and idx.shape == (4,) and xi.shape == (4,)
    assert np.all((0 <= idx) & (idx < 10))
    full, _ = batch_draws(3, 5, 10)
    np.testing.assert_array_equal(full, np.arange(10))
    # epochs: every row exactly once per epoch (10 rows, batches of 4: 4, 4, 2), a new permutation next epoch
    ep = [batch_draws(3, k, 10, 4, "epochs")[0] for k in range(6)]
    assert [len(b) for b in ep] == [4, 4, 2, 4, 4, 2]
    np.testing.assert_array_equal(np.sort(np.concatenate(ep[:3])), np.arange(10))
    np.testing.assert_array_equal(np.sort(np.concatenate(ep[3:])), np.arange(10))
    assert not np.array_equal(np.concatenate(ep[:3]), np.concatenate(ep[3:]))
    # with replacement: uniform over the rows (chi-square over 2000 steps), different for another seed
    counts = np.bincount(np.concatenate([batch_draws(1, k, 5, 2)[0] for k in range(2000)]), minlength=5)
    assert np.sum((counts - 800.0) ** 2 / 800.0) < 20.5  # chi2(4) 0.9996 quantile
    assert not np.array_equal(batch_draws(1, 0, 50, 5)[0], batch_draws(2, 0, 50, 5)[0])
    assert abs(np.mean(np.concatenate([batch_draws(0, k, 10, 10)[1] for k in range(300)]))) < 0.08


# ---------------------------------------------------------------------------- the identity and the limit
def _identity_error(r):
    x = r.u**2 - r.v**2
    a2 = r.alpha_eff() ** 2
    lhs = np.arcsinh(x / (2 * a2)) - r.log_alpha_ratio()
    return np.max(np.abs(lhs + 4 * r.step_sum)) / np.max(np.abs(4 * r.step_sum))


@pytest.mark.parametrize("kw", [dict(lr=0.5), dict(lr=0.8, batch_size=2), dict(lr=0.3, momentum=0.5),
                                dict(method="sam", lr=0.4, sam_radius=0.2, batch_size=3)])
def test_identity_holds_along_the_run(prob, kw):
    A, y, _ = prob
    for steps in (1, 10, 100, 1000):
        r = fit(A, y, init_scale=0.1, steps=steps, seed=3, **{"method": "sgd", **kw})
        assert r.status == "max_steps"
        assert _identity_error(r) < 1e-12, steps


@pytest.mark.parametrize("kw", [dict(lr=0.5), dict(lr=0.8, batch_size=1), dict(lr=0.8, batch_size=3, sampling="epochs"),
                                dict(lr=0.2, momentum=0.6), dict(lr=0.2, momentum=0.6, nesterov=True),
                                dict(method="label_noise_sgd", lr=0.3, label_noise_std=0.0, batch_size=2)])
def test_limit_is_the_flow_limit_at_the_effective_init(prob, kw):
    """An interpolating run ends at argmin Phi_a(x) - <log(alpha_+/alpha_-), x> with its own bookkeeping.
    (SAM with a fixed radius does not interpolate: its perturbation keeps length rho; label noise with
    sigma > 0 neither; the identity holds along them all the same.)"""
    A, y, _ = prob
    r = fit(A, y, init_scale=0.1, steps=200_000, target_loss=1e-28, seed=5, **{"method": "sgd", **kw})
    assert r.status == "converged"
    pred = diagonal_flow_limit(A, y, r.alpha_eff(), log_alpha_ratio=r.log_alpha_ratio())
    assert np.max(np.abs(r.x - pred)) < 1e-8 * np.max(np.abs(pred))
    # the bookkeeping matters: the flow's limit from alpha is farther away
    flow = diagonal_flow_limit(A, y, 0.1)
    assert np.max(np.abs(r.x - flow)) > 1e3 * np.max(np.abs(r.x - pred))


def test_nonnegative_limit_is_the_flow_limit_at_alpha_eff(prob):
    A, _, _ = prob
    y = A @ np.full(A.shape[1], 0.2)
    r = fit(A, y, init_scale=0.1, nonnegative=True, method="sgd", lr=0.3, batch_size=2, steps=200_000,
            target_loss=1e-28)
    assert r.status == "converged" and np.all(r.log_alpha_ratio() == 0)
    pred = diagonal_flow_limit(A, y, r.alpha_eff(), nonnegative=True)
    assert np.max(np.abs(r.x - pred)) < 1e-8 * np.max(np.abs(pred))


def test_small_steps_tend_to_the_flow_and_its_integral(prob):
    """log(a_inf^2 / alpha^2) = -4 eta int g(t)^2 dt + O(eta^2) along the flow, and x_inf -> the flow's limit."""
    A, y, _ = prob
    alpha = 0.1
    # the flow's int_0^T g^2 dt from its states at log-spaced times (trapezoid in log t), with T where
    # the flow has converged; and its limit
    ts = np.geomspace(1e-3, 2e3, 161)
    xs = [ib.diagonal.fit(A, y, init_scale=alpha, t_max=float(t), target_loss=0.0, rtol=1e-11).x for t in ts]
    g2 = np.array([(A.T @ (A @ x - y)) ** 2 for x in xs])
    integrand = g2 * ts[:, None]  # dt = t dlog t
    integral = np.trapezoid(integrand, np.log(ts), axis=0) + g2[0] * ts[0]
    x_flow = diagonal_flow_limit(A, y, alpha)
    errs, dists = [], []
    for eta in (0.02, 0.01):
        r = fit(A, y, init_scale=alpha, method="sgd", lr=eta, steps=400_000, target_loss=1e-26)
        assert r.status == "converged"
        pred = -4 * eta * integral
        got = 2 * np.log(r.alpha_eff() / alpha)
        errs.append(np.max(np.abs(got - pred)) / np.max(np.abs(pred)))
        dists.append(np.max(np.abs(r.x - x_flow)))
    assert errs[0] < 0.05 and errs[1] < 0.55 * errs[0]  # first order: the relative error halves with eta
    assert dists[1] < 0.55 * dists[0]


# ---------------------------------------------------------------------------- batches, threads, blocks
def test_fit_is_the_fit_many_entry_and_threads_and_blocks_do_not_matter(prob):
    A, y, x_star = prob
    kw = dict(method="sam", lr=0.3, sam_radius=[0.0, 0.1, 0.05, 0.2, 0.1], batch_size=[None, 2, 3, 1, 4],
              momentum=[0.0, 0.5, 0.3, 0.0, 0.9], seed=[1, 2, 3, 4, 5], steps=300, x_star=x_star)
    runs = fit_many(A, y, num_threads=1, block_size=8, **kw)
    for other in (fit_many(A, y, num_threads=2, block_size=1, **kw), fit_many(A, y, num_threads=2, block_size=2, **kw)):
        for a, b in zip(runs, other):
            assert np.array_equal(a.u, b.u) and np.array_equal(a.v, b.v)
            assert np.array_equal(a.log_alpha_ratio(), b.log_alpha_ratio())
            assert np.array_equal(a.history["loss"], b.history["loss"])
    for k in (1, 3):
        one = fit(A, y, method="sam", lr=0.3, sam_radius=kw["sam_radius"][k], batch_size=kw["batch_size"][k],
                  momentum=kw["momentum"][k], seed=kw["seed"][k], steps=300, x_star=x_star)
        assert np.array_equal(one.u, runs[k].u) and np.array_equal(one.alpha_eff(), runs[k].alpha_eff())
        assert np.array_equal(one.history["error"], runs[k].history["error"])
    # a run's draws are its own: the same seed gives the same run, another seed another
    assert not np.array_equal(runs[1].u, fit(A, y, method="sam", lr=0.3, sam_radius=0.1, batch_size=2,
                                             momentum=0.5, seed=9, steps=300).u)


def test_full_batch_sgd_is_gradient_descent(prob):
    A, y, _ = prob
    gd = fit(A, y, method="descent", lr=0.3, steps=500)
    sgd = fit(A, y, method="sgd", lr=0.3, steps=500)
    np.testing.assert_allclose(sgd.x, gd.x, rtol=1e-12, atol=1e-14)
    assert sgd.t_final == pytest.approx(gd.t_final) and sgd.n_grad_evals == gd.n_grad_evals
    np.testing.assert_allclose(sgd.history["loss"], gd.history["loss"], rtol=1e-10)


def test_divergence_keeps_the_last_finite_state(prob):
    A, y, _ = prob
    r = fit(A, y, method="sgd", lr=50.0, steps=1000)
    assert r.status == "diverged" and np.isfinite(r.loss) and np.all(np.isfinite(r.x))


def test_schedule_clock_and_records(prob):
    A, y, _ = prob
    r = fit(A, y, method="sgd", lr=0.4, schedule="power", decay_k0=10.0, decay_power=1.0, warmup_steps=3,
            batch_size=2, steps=50, record_every=10)
    k = np.arange(50)
    eta = 0.4 / (1 + k / 10.0) * np.minimum(1.0, (k + 1) / 3.0)
    assert r.t_final == pytest.approx(eta.sum(), rel=1e-14)
    np.testing.assert_allclose(r.history["t"], np.concatenate([[0.0], np.cumsum(eta)[[9, 19, 29, 39, 49]]]),
                               rtol=1e-14)


@pytest.mark.parametrize("kw, match", [
    (dict(method="sgd", lr=0.1, batch_size=8), "batch_size"),
    (dict(method="sgd", lr=0.1, batch_size=0), "batch_size"),
    (dict(method="sgd", lr=0.1, momentum=-0.1), "momentum"),
    (dict(method="sgd", lr=0.1, momentum=1.0), "momentum"),
    (dict(method="sgd"), "lr"),
    (dict(method="descent", lr=0.1, momentum=0.5), "momentum"),
    (dict(method="descent", lr=0.1, batch_size=2), "batch_size"),
    (dict(method="flow", schedule="power"), "schedule"),
    (dict(method="sgd", lr=0.1, sam_radius=0.1), "sam_radius"),
    (dict(method="sam", lr=0.1, label_noise_std=0.1), "label_noise_std"),
    (dict(method="sgd", lr=0.1, sam_per_example=True), "sam_per_example"),
    (dict(method="sgd", lr=0.1, schedule="loss"), "schedule"),
    (dict(method="sgd", lr=0.1, sampling="shuffle"), "sampling"),
    (dict(method="sgd", lr=0.1, seed=-1), "seed"),
    (dict(method="sgd", lr=0.1, warmup_steps=-2), "warmup_steps"),
    (dict(method="sgd", lr=0.1, weight_norm="joint"), "weight_norm"),
])
def test_bad_inputs_name_the_argument(prob, kw, match):
    A, y, _ = prob
    with pytest.raises(ValueError, match=match):
        fit(A, y, steps=5, **kw)


def test_alpha_eff_where_it_is_not_defined(prob):
    A, y, _ = prob
    with pytest.raises(ValueError, match="method='sgd'"):
        fit(A, y, method="descent", lr=0.1, steps=3).alpha_eff()
    with pytest.raises(ValueError, match="depth 2"):
        fit(A, y, method="sgd", lr=0.1, steps=3, depth=3).alpha_eff()
    flow = fit(A, y, t_max=1.0)
    assert np.array_equal(flow.alpha_eff(), flow.init_scale) and np.all(flow.log_alpha_ratio() == 0)
    with pytest.raises(ValueError, match="log_alpha_ratio"):
        diagonal_flow_limit(A, y, 0.1, depth=3, log_alpha_ratio=np.zeros(A.shape[1]))
