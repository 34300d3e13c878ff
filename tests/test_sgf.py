"""The stochastic gradient flow of diagonal networks (``method="sgf"``, docs/dynamics.md): the compiled
Milstein steps against a NumPy reimplementation with the same draws, the Levy areas' distribution, the
strong order on one Brownian path refined (Chen's relation), the bookkeeping and the limit it predicts
(Pesme et al. 2021: the flow's limit at a smaller effective initialization), and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from implicitbias.diagonal import fit, fit_many, sgf_draws
from implicitbias.reference import diagonal_flow_limit


@pytest.fixture(scope="module")
def prob():
    rng = np.random.default_rng(11)
    M, N = 4, 8
    A = rng.normal(size=(M, N)) / np.sqrt(M)
    x_star = np.zeros(N)
    x_star[[1, 5]] = [1.0, -0.7]
    return A, A @ x_star


# ---------------------------------------------------------------------------- NumPy reimplementation
def _milstein(A, y, X, Y, dW, area, eta, h, *, levy=True, milstein=True):
    """One step of the scheme of docs/dynamics.md in the log variables, for P paths at once (X, Y: (P, N),
    Y None: nonnegative model; dW: (P, M); area: (P, M, M)), written from the SDE's coefficients: b_l (the
    coefficient of dW~_l) and L^j b_l by the chain rule. Returns (X, Y, D)."""
    M = A.shape[0]
    C = np.eye(M) - 1.0 / M
    u2 = np.exp(2 * X)
    v2 = None if Y is None else np.exp(2 * Y)
    x = u2 if Y is None else u2 - v2
    w = u2 if Y is None else u2 + v2
    r = x @ A.T - y
    g = r @ A
    q = (r * r) @ (A * A) - g * g / M
    dWt = dW @ C
    # b^X_l = 2 sqrt(eta) r_l a_l; L^j r_i = sum_k dr_i/dX_k b^X_jk + dr_i/dY_k b^Y_jk = 4 sqrt(eta) K_ij r_j
    K = np.einsum("in,pn,jn->pij", A, w, A)
    Lr = 4 * np.sqrt(eta) * K * r[:, None, :]  # Lr[p, i, j] = L^j r_i
    # the iterated Ito integrals of W~ = C W: C ((dW dW^T - h I) / 2 + area) C
    It = C @ ((np.einsum("pi,pj->pij", dW, dW) - h * np.eye(M)) / 2 + (area if levy else 0.0)) @ C
    # sum_{j,l} L^j b^X_l I~_jl, L^j b^X_l = 2 sqrt(eta) a_l L^j r_l
    mil = 2 * np.sqrt(eta) * np.einsum("plj,pjl->pl", Lr, It) @ A if milstein else 0.0
    D = -2 * h * g + 2 * np.sqrt(eta) * (r * dWt) @ A + mil
    E = 2 * eta * h * q
    return X + D - E, None if Y is None else Y - D - E, D


def _np_run(A, y, alpha, eta, h, steps, seed, nonnegative=False):
    N = A.shape[1]
    X = np.full((1, N), np.log(alpha))
    Y = None if nonnegative else X.copy()
    s = np.zeros(N)
    for k in range(steps):
        dW, area, _ = sgf_draws(seed, k, A.shape[0], h)
        X, Y, D = _milstein(A, y, X, Y, dW[None], area[None], eta, h)
        s -= D[0] / 2
    return X[0], None if Y is None else Y[0], s


@pytest.mark.parametrize("nonnegative", [False, True])
def test_sgf_against_numpy_with_the_same_draws(prob, nonnegative):
    A, y = prob
    if nonnegative:
        y = np.abs(y)
    eta, h, steps, alpha = 0.4, 0.05, 12, 0.6
    r = fit(A, y, method="sgf", lr=eta, sde_step=h, steps=steps, init_scale=alpha, seed=5, nonnegative=nonnegative)
    X, Y, s = _np_run(A, y, alpha, eta, h, steps, 5, nonnegative)
    assert r.n_steps == steps and r.t_final == pytest.approx(steps * h, rel=1e-14)
    np.testing.assert_allclose(np.log(r.u), X, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.step_sum, s, rtol=0, atol=1e-12)
    if nonnegative:
        np.testing.assert_allclose(np.log(r.alpha_eff() ** 2), 2 * X + 4 * s, atol=1e-12)
        assert np.all(r.log_alpha_ratio() == 0)
    else:
        np.testing.assert_allclose(np.log(r.v), Y, rtol=0, atol=1e-12)
        # the bookkeeping: a^2 = u v, the linear term 0, arcsinh(x / 2a^2) = -4 s
        np.testing.assert_allclose(np.log(r.alpha_eff() ** 2), X + Y, atol=1e-12)
        np.testing.assert_allclose(r.log_alpha_ratio(), 0, atol=1e-12)
        np.testing.assert_allclose(np.arcsinh(r.x / (2 * r.alpha_eff() ** 2)), -4 * r.step_sum, atol=1e-12)


def test_sgf_draws_levy_areas_have_the_exact_moments():
    """Levy areas of M = 3 Brownian motions over h: E[A_jk | dW] = 0,
    E[A_jk^2 | dW] = h^2 / 12 + h (dW_j^2 + dW_k^2) / 12, and the kurtosis 5 of Levy's area
    (E[exp(i lam A)] = 1 / cosh(lam h / 2)); the series is truncated at p = 1 term here, so the tail
    approximation carries a visible share of the variance."""
    h, M, n = 2.0, 3, 12000
    draws = [sgf_draws(1, k, M, h) for k in range(n)]
    assert draws[0][2] == 1
    dW = np.array([d[0] for d in draws])
    area = np.array([d[1] for d in draws])
    assert np.array_equal(area, -np.transpose(area, (0, 2, 1)))
    np.testing.assert_allclose(dW.var(axis=0), h, rtol=0.05)
    for j, k in ((0, 1), (0, 2), (1, 2)):
        a = area[:, j, k]
        cond = a**2 - h * (dW[:, j] ** 2 + dW[:, k] ** 2) / 12
        assert abs(cond.mean() - h**2 / 12) < 4 * cond.std() / np.sqrt(n)
        assert abs(a.mean()) < 4 * a.std() / np.sqrt(n)
        assert abs(np.mean(a * dW[:, j])) < 4 * np.std(a * dW[:, j]) / np.sqrt(n)
        kurt = np.mean(a**4) / np.mean(a**2) ** 2
        assert abs(kurt - 5.0) < 0.5, kurt


def _refined_path(seeds, M, h_fine, n_fine):
    """Increments and Levy areas of P paths (one per seed) on the fine grid (the package's draws) and, by
    Chen's relation, on the grids 2, 4, 8, ... times coarser: A_[0,2h] = A_1 + A_2 + (w1 w2^T - w2 w1^T) / 2.
    Level l: (dW (n_fine / 2^l, P, M), area (n_fine / 2^l, P, M, M))."""
    dW = np.empty((n_fine, len(seeds), M))
    area = np.empty((n_fine, len(seeds), M, M))
    for p, seed in enumerate(seeds):
        for k in range(n_fine):
            dW[k, p], area[k, p], _ = sgf_draws(seed, k, M, h_fine)
    levels = [(dW, area)]
    while dW.shape[0] > 1:
        w1, w2 = dW[0::2], dW[1::2]
        cross = np.einsum("kpj,kpl->kpjl", w1, w2)
        area = area[0::2] + area[1::2] + (cross - np.swapaxes(cross, 2, 3)) / 2
        dW = w1 + w2
        levels.append((dW, area))
    return levels


def test_sgf_strong_order_one_on_a_refined_path():
    """E max_i |Z_h - Z_ref|_i (Z = (log u, log v)) against h on the same 48 Brownian paths (coarse increments
    and areas from the fine ones by Chen's relation), M = 3 rows, non-commutative noise, the reference 4 times
    finer than the finest h: slope 1 for the scheme (measured 1.13), towards 1/2 without the Levy areas (the
    commutative Milstein, 0.72) and for Euler-Maruyama (0.61), with errors 3.7x and 7.7x the scheme's at the
    finest h. The scheme is the compiled one (the replay test)."""
    rng = np.random.default_rng(3)
    M, N = 3, 4
    A = rng.normal(size=(M, N)) / np.sqrt(M)
    y = A @ np.array([1.0, 0.0, -0.5, 0.0]) + 0.3 * rng.normal(size=M)
    alpha, eta, T, n_fine, P = 0.5, 0.2, 0.2, 1024, 48
    lv = _refined_path(range(1000, 1000 + P), M, T / n_fine, n_fine)

    def solve(level, **kw):
        h = T / n_fine * 2**level
        X = np.full((P, N), np.log(alpha))
        Y = X.copy()
        for dW, area in zip(*lv[level]):
            X, Y, _ = _milstein(A, y, X, Y, dW, area, eta, h, **kw)
        return np.concatenate([X, Y], axis=1)

    ref = solve(0)
    levels = [2, 3, 4, 5]
    err = {name: [np.abs(solve(level, **kw) - ref).max(axis=1).mean() for level in levels]
           for name, kw in (("milstein", {}), ("no_levy", {"levy": False}), ("euler", {"milstein": False}))}
    hs = T / n_fine * 2.0 ** np.array(levels)
    slope = {k: np.polyfit(np.log(hs), np.log(v), 1)[0] for k, v in err.items()}
    assert 0.85 < slope["milstein"] < 1.3, slope
    assert slope["no_levy"] < 0.8 and slope["euler"] < 0.8, slope
    assert err["milstein"][0] < 0.4 * err["no_levy"][0], err


def test_sgf_limit_is_the_flows_at_its_effective_init(prob):
    """Pesme et al. 2021: the SGF ends at the flow's limit for a smaller effective initialization. In the
    scheme this is exact: log u - log v stays in range(A^T) and log(u v) = 2 log alpha - 4 eta sum q h, so the
    limit is diagonal_flow_limit at alpha_eff() (no linear term)."""
    A, y = prob
    alpha = 0.1
    flow_lim = diagonal_flow_limit(A, y, alpha)
    runs = fit_many(A, y, method="sgf", lr=[0.2, 0.2, 0.05], sde_step=0.02, steps=200_000, init_scale=alpha,
                    seed=[0, 1, 0], target_loss=1e-26)
    for r in runs:
        assert r.status == "converged"
        a = r.alpha_eff()
        assert np.all(a < alpha)
        pred = diagonal_flow_limit(A, y, a, log_alpha_ratio=r.log_alpha_ratio())
        assert np.linalg.norm(r.x - pred) < 1e-10 * np.linalg.norm(pred)
        assert np.linalg.norm(r.x - flow_lim) > 1e3 * np.linalg.norm(r.x - pred)
    # gamma -> 0: the effective init tends to alpha and the limit to the flow's (first order in lr)
    gain = [np.abs(np.log(alpha / r.alpha_eff())).sum() for r in runs]
    dist = [np.linalg.norm(r.x - flow_lim) for r in runs]
    assert gain[2] < 0.4 * gain[0] and dist[2] < 0.4 * dist[0]


def test_sgf_small_step_gain_is_the_flows_integral(prob):
    """To first order in lr, log(a_inf^2 / alpha^2) = -4 lr int_0^inf q(x(t)) dt along the flow,
    q = (A o A)^T r^2 - g^2 / M (the Ito correction in the log variables)."""
    A, y = prob
    M = A.shape[0]
    alpha, eta = 0.1, 0.01
    times = np.concatenate([[0.0], np.geomspace(1e-3, 400, 400)])
    flow = fit(A, y, init_scale=alpha, record_times=times[1:], record_state=True, t_max=400, rtol=1e-10)
    x = np.vstack([np.zeros(A.shape[1]), flow.history["x"]])
    t = np.concatenate([[0.0], flow.history["t"]])
    r = x @ A.T - y
    g = r @ A
    q = r**2 @ (A * A) - g**2 / M
    pred = -4 * eta * np.trapezoid(q, t, axis=0)
    runs = fit_many(A, y, method="sgf", lr=eta, sde_step=0.02, steps=60_000, init_scale=alpha, seed=[0, 1, 2],
                    target_loss=1e-24)
    got = np.mean([np.log(r.alpha_eff() ** 2 / alpha**2) for r in runs], axis=0)
    assert np.abs(got - pred).max() < 0.1 * np.abs(pred).max()


def test_sgf_is_bitwise_across_threads_blocks_and_fit(prob):
    A, y = prob
    kw = dict(method="sgf", lr=0.3, sde_step=0.05, steps=300, init_scale=0.3, record_every=50, record_state=True)
    base = fit_many(A, y, seed=list(range(5)), num_threads=1, block_size=1, **kw)
    for nt, bs in ((2, 8), (2, 2), (1, 3)):
        other = fit_many(A, y, seed=list(range(5)), num_threads=nt, block_size=bs, **kw)
        for a, b in zip(base, other):
            assert np.array_equal(a.x, b.x) and np.array_equal(a.history["x"], b.history["x"])
            assert np.array_equal(a.step_sum, b.step_sum)
    one = fit(A, y, seed=3, **kw)
    assert np.array_equal(one.x, base[3].x) and np.array_equal(one.alpha_eff(), base[3].alpha_eff())
    assert not np.array_equal(base[0].x, base[1].x)


def test_sgf_arguments_are_checked(prob):
    A, y = prob
    with pytest.raises(ValueError, match="sde_step is required"):
        fit(A, y, method="sgf", lr=0.1, steps=2)
    with pytest.raises(ValueError, match="sde_step applies to method='sgf'"):
        fit(A, y, method="sgd", lr=0.1, steps=2, sde_step=0.1)
    with pytest.raises(ValueError, match="depth must be 2"):
        fit(A, y, method="sgf", lr=0.1, steps=2, sde_step=0.1, depth=3)
    with pytest.raises(ValueError, match="weight_norm"):
        fit(A, y, method="sgf", lr=0.1, steps=2, sde_step=0.1, weight_norm="joint")
    with pytest.raises(ValueError, match="batch_size applies"):
        fit(A, y, method="sgf", lr=0.1, steps=2, sde_step=0.1, batch_size=1)
    with pytest.raises(ValueError, match="lr is required"):
        fit(A, y, method="sgf", steps=2, sde_step=0.1)
    with pytest.raises(ValueError, match="sde_step"):
        sgf_draws(0, 0, 3, 0.0)
