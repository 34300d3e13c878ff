"""Tests for implicitbias.reference against independent references.

Every check uses an independent route to the answer: LP duality (a separately
solved dual LP), KKT conditions recomputed from x alone (inverse maps, scalar
root finding), scipy's SLSQP on the primal problem, the minimum-norm
interpolator, and a direct numerical integration of the gradient flow.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
from scipy.integrate import solve_ivp

from implicitbias.data import sparse_regression
from implicitbias.reference import basis_pursuit, diagonal_flow_limit, hyperbolic_entropy


# --------------------------------------------------------------------------
# independent helpers
# --------------------------------------------------------------------------
def dual_lp(A, y, w, nonnegative=False):
    """max <lam, y> s.t. |A^T lam| <= w (or A^T lam <= w): the LP dual of BP."""
    m = A.shape[0]
    if nonnegative:
        a_ub, b_ub = A.T, w
    else:
        a_ub, b_ub = np.vstack([A.T, -A.T]), np.concatenate([w, w])
    res = scipy.optimize.linprog(
        -y, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * m, method="highs"
    )
    assert res.status == 0, res.message
    return -res.fun, res.x


def range_defect(A, s):
    """Norm of the component of s orthogonal to range(A^T), relative to |s|."""
    Z = scipy.linalg.null_space(A)
    return np.linalg.norm(Z.T @ s) / max(1.0, np.linalg.norm(s))


def random_problem(m, n, seed, nonnegative=False):
    """A generic (non-sparse) instance: y = A x0 with x0 > 0 dense."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x0 = rng.uniform(0.2, 1.5, n) if nonnegative else rng.standard_normal(n)
    return A, A @ x0


# --------------------------------------------------------------------------
# basis pursuit
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bp_feasible_and_lp_optimal(seed):
    # 8-sparse from 20 measurements: recovery may fail, optimality must not
    prob = sparse_regression(20, 50, 8, seed=seed)
    A, y = prob.A, prob.y
    x = basis_pursuit(A, y)
    assert np.linalg.norm(A @ x - y) <= 1e-9
    value, lam = dual_lp(A, y, np.ones(50))
    assert np.max(np.abs(A.T @ lam)) <= 1 + 1e-9
    assert abs(np.sum(np.abs(x)) - value) <= 1e-8 * max(1.0, value)
    # complementary slackness with the independent dual solution
    supp = np.abs(x) > 1e-8
    np.testing.assert_allclose((A.T @ lam)[supp], np.sign(x[supp]), atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bp_recovers_planted_sparse(seed):
    prob = sparse_regression(40, 100, 3, seed=seed)
    x = basis_pursuit(prob.A, prob.y)
    assert np.max(np.abs(x - prob.x_star)) <= 1e-8
    # the least-squares polish makes A x = y hold to ~1e-12
    assert np.linalg.norm(prob.A @ x - prob.y) <= 1e-12 * max(1.0, np.linalg.norm(prob.y))


def test_bp_nonnegative():
    prob = sparse_regression(20, 50, 6, seed=3, nonnegative=True)
    A, y = prob.A, prob.y
    x = basis_pursuit(A, y, nonnegative=True)
    assert np.all(x >= 0)
    assert np.linalg.norm(A @ x - y) <= 1e-9
    value, lam = dual_lp(A, y, np.ones(50), nonnegative=True)
    assert np.max(A.T @ lam) <= 1 + 1e-9
    assert abs(np.sum(x) - value) <= 1e-8 * max(1.0, value)
    # nonnegativity is a strong prior: recovery of the planted vector
    assert np.max(np.abs(x - prob.x_star)) <= 1e-8


def test_bp_nonnegative_differs_from_signed():
    # y = A x0 with x0 >= 0 but dense: the signed l1 solution goes negative
    A, y = random_problem(6, 15, seed=4, nonnegative=True)
    x_signed = basis_pursuit(A, y)
    x_nonneg = basis_pursuit(A, y, nonnegative=True)
    assert np.min(x_signed) < -1e-6
    assert np.min(x_nonneg) >= 0
    assert np.sum(np.abs(x_signed)) < np.sum(x_nonneg)


def test_bp_weighted():
    prob = sparse_regression(40, 100, 3, seed=5)
    A, y = prob.A, prob.y
    j = int(prob.support[0])
    w = np.ones(100)
    w[j] = 100.0  # make coordinate j expensive
    x = basis_pursuit(A, y, weights=w)
    assert abs(x[j]) <= 1e-9  # it leaves the support
    assert np.linalg.norm(A @ x - y) <= 1e-9
    value, lam = dual_lp(A, y, w)
    assert np.all(np.abs(A.T @ lam) <= w + 1e-9)
    assert abs(np.sum(w * np.abs(x)) - value) <= 1e-8 * value
    assert np.sum(w * np.abs(x)) < np.sum(w * np.abs(prob.x_star))
    # unit weights reproduce the plain problem
    np.testing.assert_allclose(basis_pursuit(A, y, weights=np.ones(100)), prob.x_star, atol=1e-8)


def test_bp_infeasible_raises_value_error():
    with pytest.raises(ValueError, match="infeasible"):
        basis_pursuit(np.ones((1, 3)), np.array([-1.0]), nonnegative=True)
    with pytest.raises(ValueError, match="infeasible"):
        basis_pursuit(np.ones((2, 3)), np.array([1.0, 2.0]))


# --------------------------------------------------------------------------
# diagonal_flow_limit: KKT conditions, computed from x alone
# --------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.05, 0.5, 3.0])
def test_flow_limit_depth2_signed_kkt(alpha):
    A, y = random_problem(8, 20, seed=6)
    x = diagonal_flow_limit(A, y, alpha)
    assert np.linalg.norm(A @ x - y) <= 1e-11 * max(1, np.linalg.norm(y))
    s = np.arcsinh(x / (2 * alpha**2))
    assert range_defect(A, s) <= 1e-9


def test_flow_limit_depth2_vector_init_scale():
    A, y = random_problem(8, 20, seed=7)
    alpha = np.random.default_rng(0).uniform(0.05, 1.0, 20)
    x = diagonal_flow_limit(A, y, alpha)
    assert np.linalg.norm(A @ x - y) <= 1e-11 * max(1, np.linalg.norm(y))
    assert range_defect(A, np.arcsinh(x / (2 * alpha**2))) <= 1e-9
    # a constant vector is the same as the scalar
    np.testing.assert_allclose(
        diagonal_flow_limit(A, y, np.full(20, 0.3)), diagonal_flow_limit(A, y, 0.3), atol=1e-12
    )


def test_flow_limit_depth2_minimizes_hyperbolic_entropy():
    A, y = random_problem(3, 6, seed=8)
    alpha = 0.3
    x = diagonal_flow_limit(A, y, alpha)
    c = 2 * alpha**2
    res = scipy.optimize.minimize(
        lambda z: hyperbolic_entropy(z, alpha),
        np.linalg.pinv(A) @ y,
        jac=lambda z: np.arcsinh(z / c),
        constraints=[{"type": "eq", "fun": lambda z: A @ z - y, "jac": lambda z: A}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert res.success, res.message
    assert hyperbolic_entropy(x, alpha) <= hyperbolic_entropy(res.x, alpha) + 1e-10
    np.testing.assert_allclose(x, res.x, atol=1e-5)


def _invert_signed_power(xi, a, p):
    """s in (-a, a) with (a - s)^-p - (a + s)^-p = xi, by brentq."""
    f = lambda s: (a - s) ** (-p) - (a + s) ** (-p) - xi  # noqa: E731
    delta = 0.5
    while f(a * (1 - delta)) < 0 or f(-a * (1 - delta)) > 0:
        delta /= 10
        assert delta > 1e-15
    return scipy.optimize.brentq(
        f, -a * (1 - delta), a * (1 - delta), xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500
    )


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("alpha", [0.2, 1.0])
def test_flow_limit_deep_signed_kkt(depth, alpha):
    A, y = random_problem(6, 15, seed=9)
    x = diagonal_flow_limit(A, y, alpha, depth)
    assert np.linalg.norm(A @ x - y) <= 1e-11 * max(1, np.linalg.norm(y))
    a, p = alpha ** (2.0 - depth), depth / (depth - 2.0)
    s = np.array([_invert_signed_power(xi, a, p) for xi in x])
    assert np.all(np.abs(s) < a)
    assert range_defect(A, s) <= 1e-8


@pytest.mark.parametrize("alpha", [0.05, 0.5])
def test_flow_limit_nonnegative_depth2_kkt(alpha):
    A, y = random_problem(6, 15, seed=10, nonnegative=True)
    x = diagonal_flow_limit(A, y, alpha, nonnegative=True)
    assert np.all(x > 0)
    assert np.linalg.norm(A @ x - y) <= 1e-11 * max(1, np.linalg.norm(y))
    assert range_defect(A, np.log(x / alpha**2)) <= 1e-9


@pytest.mark.parametrize("depth", [3, 4])
def test_flow_limit_nonnegative_deep_kkt(depth):
    A, y = random_problem(6, 15, seed=11, nonnegative=True)
    alpha = 0.4
    x = diagonal_flow_limit(A, y, alpha, depth, nonnegative=True)
    assert np.all(x > 0)
    assert np.linalg.norm(A @ x - y) <= 1e-11 * max(1, np.linalg.norm(y))
    a, p = alpha ** (2.0 - depth), depth / (depth - 2.0)
    s = a - x ** (-1.0 / p)
    assert range_defect(A, s) <= 1e-9


def test_flow_limit_zero_measurements():
    A, _ = random_problem(4, 9, seed=12)
    for depth in (2, 3):
        np.testing.assert_array_equal(diagonal_flow_limit(A, np.zeros(4), 0.5, depth), 0.0)


# --------------------------------------------------------------------------
# diagonal_flow_limit: limits in alpha
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_small_alpha_tends_to_basis_pursuit(seed):
    prob = sparse_regression(40, 100, 3, seed=seed)
    A, y = prob.A, prob.y
    x_bp = basis_pursuit(A, y)
    errs = [np.max(np.abs(diagonal_flow_limit(A, y, al) - x_bp)) for al in (1e-1, 1e-3, 1e-5)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] <= 1e-3
    x3 = diagonal_flow_limit(A, y, 1e-5, depth=3)
    assert np.max(np.abs(x3 - x_bp)) <= 1e-6
    # tiny alpha still converges (s ~ log(1/alpha^2) ~ 46 for L=2; a = 1e8 for L=4)
    assert np.max(np.abs(diagonal_flow_limit(A, y, 1e-10) - x_bp)) <= 1e-6
    assert np.max(np.abs(diagonal_flow_limit(A, y, 1e-4, depth=4) - x_bp)) <= 1e-8


def test_small_alpha_nonnegative_tends_to_nonnegative_bp():
    prob = sparse_regression(20, 50, 3, seed=1, nonnegative=True)
    A, y = prob.A, prob.y
    x_bp = basis_pursuit(A, y, nonnegative=True)
    for depth, tol in ((2, 1e-4), (3, 1e-8)):
        errs = [
            np.max(np.abs(diagonal_flow_limit(A, y, al, depth, nonnegative=True) - x_bp))
            for al in (1e-2, 1e-5)
        ]
        assert errs[0] > errs[1]
        assert errs[1] <= tol


@pytest.mark.parametrize("depth", [2, 3])
def test_large_alpha_tends_to_min_norm(depth):
    A, y = random_problem(8, 20, seed=14)
    x_l2 = np.linalg.pinv(A) @ y
    errs = []
    for alpha in (10.0, 20.0):
        x = diagonal_flow_limit(A, y, alpha, depth)
        errs.append(np.linalg.norm(x - x_l2) / np.linalg.norm(x_l2))
    assert errs[0] <= 1e-2
    # the deviation is the cubic term of psi'(s) = c s + O(s^3 / a^2) (with
    # a = 1 for L = 2): the relative error is ~(s/a)^2, and s/a ~ |x| a^p with
    # a^p = alpha^(-L) (alpha^(-2) = alpha^(-L) for L = 2 as well), so it
    # scales like alpha^(-2L): doubling alpha divides it by 2^(2L)
    ratio = errs[0] / errs[1]
    expected = 2.0 ** (2 * depth)
    assert 0.7 * expected <= ratio <= 1.3 * expected


# --------------------------------------------------------------------------
# diagonal_flow_limit: cross-check against a direct ODE simulation
# --------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [2, 3])
def test_flow_limit_matches_simulated_gradient_flow(depth):
    rng = np.random.default_rng(15)
    m, n, alpha = 3, 6, 0.5
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x_star = np.zeros(n)
    x_star[[1, 4]] = [1.0, -0.7]
    y = A @ x_star

    def rhs(_t, z):
        u, v = z[:n], z[n:]
        g = A.T @ (A @ (u**depth - v**depth) - y)
        return np.concatenate([-depth * u ** (depth - 1) * g, depth * v ** (depth - 1) * g])

    sol = solve_ivp(
        rhs, (0.0, 200.0), np.full(2 * n, alpha), method="DOP853", rtol=1e-11, atol=1e-13
    )
    assert sol.success
    u, v = sol.y[:n, -1], sol.y[n:, -1]
    x_sim = u**depth - v**depth
    assert np.linalg.norm(A @ x_sim - y) <= 1e-9
    x_lim = diagonal_flow_limit(A, y, alpha, depth)
    np.testing.assert_allclose(x_lim, x_sim, atol=1e-8)
    # the invariant of docs/science.md, section 1.2, fixes the sign convention of s
    if depth == 2:
        np.testing.assert_allclose(u * v, alpha**2, rtol=1e-8)
    else:
        np.testing.assert_allclose(
            u ** (2 - depth) + v ** (2 - depth), 2 * alpha ** (2 - depth), rtol=1e-8
        )


# --------------------------------------------------------------------------
# hyperbolic entropy
# --------------------------------------------------------------------------
def test_hyperbolic_entropy_value_and_gradient():
    x = np.array([-2.0, -0.3, 0.0, 0.7, 5.0])
    alpha = np.array([0.2, 1.0, 0.5, 0.05, 2.0])
    c = 2 * alpha**2
    direct = np.sum(x * np.arcsinh(x / c) - np.sqrt(x**2 + c**2))
    assert hyperbolic_entropy(x, alpha) == pytest.approx(direct, rel=1e-14)
    # gradient asinh(x / (2 alpha^2)) by central differences
    h = 1e-6
    for i in range(5):
        e = np.zeros(5)
        e[i] = h
        fd = (hyperbolic_entropy(x + e, alpha) - hyperbolic_entropy(x - e, alpha)) / (2 * h)
        assert fd == pytest.approx(np.arcsinh(x[i] / c[i]), rel=1e-6, abs=1e-8)
    # tiny alpha (log-domain branch) agrees with the direct formula where it is valid
    x1, a1 = np.array([3.0]), 1e-6
    assert hyperbolic_entropy(x1, a1) == pytest.approx(
        3.0 * np.arcsinh(3.0 / (2 * a1**2)) - np.hypot(3.0, 2 * a1**2), rel=1e-14
    )
    assert np.isfinite(hyperbolic_entropy(x1, 1e-200))
    # small alpha: ~ log(1/alpha^2) ||x||_1
    x2 = np.array([1.0, -2.0, 0.0])
    ratio = hyperbolic_entropy(x2, 1e-8) / (np.log(1 / 1e-16) * 3.0)
    assert 0.9 < ratio < 1.1


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
def test_flow_limit_runtime_error_without_positive_interpolator():
    # x2 + x3 = -1 has no solution with x >= 0: the dual is unbounded below
    A = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    y = np.array([1.0, -1.0])
    with pytest.raises(RuntimeError, match="residual"):
        diagonal_flow_limit(A, y, 0.5, nonnegative=True, max_iter=30)


_A = np.random.default_rng(0).standard_normal((3, 6))
_Y = np.ones(3)


def _nan_in(arr, idx):
    out = np.array(arr, dtype=float)
    out[idx] = np.nan
    return out


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"A": np.ones(6)}, "A"),
        ({"A": _nan_in(_A, (0, 1))}, "A"),
        ({"y": np.ones(4)}, "y"),
        ({"y": np.ones((3, 1))}, "y"),
        ({"y": _nan_in(_Y, 2)}, "y"),
        ({"weights": np.zeros(6)}, "weights"),
        ({"weights": -np.ones(6)}, "weights"),
        ({"weights": np.ones(5)}, "weights"),
        ({"weights": _nan_in(np.ones(6), 0)}, "weights"),
        ({"nonnegative": "yes"}, "nonnegative"),
    ],
)
def test_bp_bad_input(kwargs, name):
    args = {"A": _A, "y": _Y} | kwargs
    with pytest.raises(ValueError, match=name):
        basis_pursuit(**args)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"A": np.ones(6)}, "A"),
        ({"A": _nan_in(_A, (2, 2))}, "A"),
        ({"y": np.ones(2)}, "y"),
        ({"y": _nan_in(_Y, 0)}, "y"),
        ({"init_scale": 0.0}, "init_scale"),
        ({"init_scale": -1.0}, "init_scale"),
        ({"init_scale": np.nan}, "init_scale"),
        ({"init_scale": np.inf}, "init_scale"),
        ({"init_scale": np.array([0.5, 0.5, 0.0, 0.5, 0.5, 0.5])}, "init_scale"),
        ({"init_scale": np.ones(5)}, "init_scale"),
        ({"init_scale": "big"}, "init_scale"),
        ({"depth": 1}, "depth"),
        ({"depth": 0}, "depth"),
        ({"depth": 2.5}, "depth"),
        ({"depth": 3.0}, "depth"),
        ({"depth": True}, "depth"),
        ({"nonnegative": 1}, "nonnegative"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_flow_limit_bad_input(kwargs, name):
    args = {"A": _A, "y": _Y, "init_scale": 0.5} | kwargs
    with pytest.raises(ValueError, match=name):
        diagonal_flow_limit(**args)


def test_flow_limit_overdetermined_and_rank_deficient():
    with pytest.raises(ValueError, match="overdetermined"):
        diagonal_flow_limit(_A.T, np.ones(6), 0.5)
    rank1 = np.outer(np.ones(3), np.arange(1.0, 7.0))
    with pytest.raises(ValueError, match="full row rank"):
        diagonal_flow_limit(rank1, _Y, 0.5)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.ones(2)])
def test_hyperbolic_entropy_bad_input(bad):
    with pytest.raises(ValueError, match="init_scale"):
        hyperbolic_entropy(np.ones(3), bad)
    with pytest.raises(ValueError, match="x"):
        hyperbolic_entropy(np.ones((3, 1)), 1.0)
