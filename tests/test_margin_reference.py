"""Tests for the max-margin references and the classification data sets.

Independent routes to every optimum (docs/science.md, section 2.8). With
``z_i = y_i x_i`` and the minimax theorem,
``max_{||w|| <= 1} min_i <z_i, w> = min_{lam in simplex} ||Z^T lam||_*``:
the l2 margin is the distance from the origin to ``conv{z_i}`` (solved with
cvxpy/CLARABEL), the l_inf margin the smallest l1 norm over ``conv{z_i}`` and
the l1 margin the smallest l_inf norm over it (dual LPs solved with the HiGHS
interior-point method, not the simplex the primal uses). The l2 optimum is
also checked by its KKT conditions recomputed from ``w`` alone.
"""

from __future__ import annotations

import sys

import cvxpy as cp
import numpy as np
import pytest
import scipy.optimize
from sklearn.datasets import load_digits

from implicitbias.data import BinaryClassification, digits_binary, separable
from implicitbias.reference import (
    DiagonalMaxMargin,
    MaxMargin,
    diagonal_max_margin,
    max_margin,
)

NORMS = ("l2", "linf", "l1")
DUAL_ORD = {"l2": 2, "linf": 1, "l1": np.inf}
PRIMAL_ORD = {"l2": 2, "linf": np.inf, "l1": 1}


# --------------------------------------------------------------------------
# independent references
# --------------------------------------------------------------------------
def hull_l2(Z):
    """Distance from 0 to conv{z_i} by CLARABEL; returns (lower, upper) bounds.

    upper = ||Z^T lam|| for the (re-normalized) solver lam; lower = the margin
    of the direction Z^T lam. Data are rescaled so the solver tolerances are
    relative."""
    s = float(np.max(np.linalg.norm(Z, axis=1)))
    lam = cp.Variable(Z.shape[0], nonneg=True)
    prob = cp.Problem(cp.Minimize(cp.sum_squares((Z / s).T @ lam)), [cp.sum(lam) == 1])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-14)
    lv = np.maximum(lam.value, 0.0)
    lv /= lv.sum()
    z = Z.T @ lv
    upper = float(np.linalg.norm(z))
    return float(np.min(Z @ z)) / upper, upper


def hull_lp(Z, norm):
    """min over conv{z_i} of ||z||_1 (norm="linf") or ||z||_inf (norm="l1")."""
    n, d = Z.shape
    opts = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
    if norm == "linf":
        # variables (lam, s): min sum s, -s <= Z^T lam <= s, lam in simplex
        c = np.concatenate([np.zeros(n), np.ones(d)])
        a_ub = np.block([[Z.T, -np.eye(d)], [-Z.T, -np.eye(d)]])
        bounds = [(0, None)] * n + [(0, None)] * d
        a_eq = np.concatenate([np.ones(n), np.zeros(d)])[None, :]
    else:
        # variables (lam, t): min t, -t <= Z^T lam <= t, lam in simplex
        c = np.concatenate([np.zeros(n), [1.0]])
        a_ub = np.block([[Z.T, -np.ones((d, 1))], [-Z.T, -np.ones((d, 1))]])
        bounds = [(0, None)] * (n + 1)
        a_eq = np.concatenate([np.ones(n), [0.0]])[None, :]
    res = scipy.optimize.linprog(
        c, A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=a_eq, b_eq=[1.0],
        bounds=bounds, method="highs-ipm", options=opts,
    )
    assert res.status == 0, res.message
    return float(res.fun)


def random_separable(rng, n, d):
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    return X, np.where(X @ w >= 0, 1.0, -1.0)


CASES = [(15, 20, 0), (30, 5, 1), (60, 4, 2), (8, 3, 3), (1, 4, 4), (40, 40, 5)]


# --------------------------------------------------------------------------
# max_margin
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n,d,seed", CASES)
@pytest.mark.parametrize("norm", NORMS)
def test_max_margin_feasible_and_attained(n, d, seed, norm):
    X, y = random_separable(np.random.default_rng(seed), n, d)
    res = max_margin(X, y, norm=norm)
    assert isinstance(res, MaxMargin) and isinstance(res, tuple)
    w, m = res  # unpacks as (w, margin)
    assert w.shape == (d,) and np.all(np.isfinite(w))
    assert isinstance(m, float) and m > 0
    assert np.linalg.norm(w, ord=PRIMAL_ORD[norm]) == pytest.approx(1.0, rel=1e-12)
    assert m == float(np.min(y * (X @ w)))


@pytest.mark.parametrize("n,d,seed", CASES)
def test_l2_matches_hull_distance_clarabel(n, d, seed):
    X, y = random_separable(np.random.default_rng(seed), n, d)
    _, m = max_margin(X, y, norm="l2")
    lower, upper = hull_l2(y[:, None] * X)
    # the exact optimum lies in [lower, upper]; ours is a feasible value, so
    # it cannot exceed upper, and it is at least as good as lower
    assert m <= upper * (1 + 1e-12)
    assert m >= lower * (1 - 1e-12)
    assert m == pytest.approx(upper, rel=1e-7)


@pytest.mark.parametrize("n,d,seed", CASES)
def test_l2_kkt(n, d, seed):
    """SVM min ||v||^2 s.t. Z v >= 1 at v = w / m: primal feasibility and
    v = Z_S^T a with a >= 0 on the active set S (stationarity, complementary
    slackness, dual feasibility). These certify optimality (convex QP)."""
    X, y = random_separable(np.random.default_rng(seed), n, d)
    w, m = max_margin(X, y, norm="l2")
    Z = y[:, None] * X
    v = w / m
    slack = Z @ v
    assert np.all(slack >= 1 - 1e-12)
    active = np.flatnonzero(slack <= 1 + 1e-8)
    assert active.size >= 1
    np.testing.assert_allclose(slack[active], 1.0, rtol=0, atol=1e-8)
    a, resid = scipy.optimize.nnls(Z[active].T, v)
    assert np.all(a >= 0)
    assert resid <= 1e-9 * np.linalg.norm(v)
    # strong duality: ||v||^2 = sum(a)
    assert float(np.sum(a)) == pytest.approx(float(v @ v), rel=1e-8)


@pytest.mark.parametrize("n,d,seed", CASES)
@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_lp_matches_hull_dual(n, d, seed, norm):
    X, y = random_separable(np.random.default_rng(seed), n, d)
    _, m = max_margin(X, y, norm=norm)
    assert m == pytest.approx(hull_lp(y[:, None] * X, norm), rel=1e-8)


def test_margins_are_nested_and_scale():
    X, y = random_separable(np.random.default_rng(7), 25, 10)
    m = {nm: max_margin(X, y, norm=nm).margin for nm in NORMS}
    # ||w||_1 <= 1 implies ||w||_2 <= 1 implies ||w||_inf <= 1
    assert m["l1"] <= m["l2"] * (1 + 1e-10)
    assert m["l2"] <= m["linf"] * (1 + 1e-10)
    assert m["linf"] <= np.sqrt(10) * m["l2"] * (1 + 1e-10)
    for nm in NORMS:
        assert max_margin(1e3 * X, y, norm=nm).margin == pytest.approx(1e3 * m[nm], rel=1e-8)
        assert max_margin(-X, -y, norm=nm).margin == pytest.approx(m[nm], rel=1e-10)


def test_known_solutions():
    X = np.vstack([np.eye(4), -np.eye(4)])
    y = np.r_[np.ones(4), -np.ones(4)]
    w, m = max_margin(X, y, "l2")
    assert m == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(w, 0.5, atol=1e-12)
    assert max_margin(X, y, "linf").margin == pytest.approx(1.0, rel=1e-12)
    assert max_margin(X, y, "l1").margin == pytest.approx(0.25, rel=1e-12)
    # a single point: w = x / ||x||, margin ||x||_*
    w, m = max_margin([[3.0, -4.0]], [-1], "l2")
    assert m == pytest.approx(5.0, rel=1e-12)
    np.testing.assert_allclose(w, [-0.6, 0.8], atol=1e-12)
    assert max_margin([[3.0, -4.0]], [1], "linf").margin == pytest.approx(7.0, rel=1e-12)
    assert max_margin([[3.0, -4.0]], [1], "l1").margin == pytest.approx(4.0, rel=1e-12)


NON_SEPARABLE = [
    # x and -x with the same label
    (np.array([[1.0, 2.0], [-1.0, -2.0]]), np.array([1.0, 1.0])),
    # XOR
    (
        np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]),
        np.array([1.0, 1.0, -1.0, -1.0]),
    ),
    # a zero input has margin 0 for every w
    (np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([1.0, -1.0])),
    # the origin inside conv{y_i x_i}
    (np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([1.0, 1.0, -1.0])),
]


@pytest.mark.parametrize("X,y", NON_SEPARABLE)
@pytest.mark.parametrize("norm", NORMS)
def test_non_separable_raises(X, y, norm):
    with pytest.raises(ValueError, match="not linearly separable"):
        max_margin(X, y, norm=norm)


@pytest.mark.parametrize("X,y", NON_SEPARABLE[:2])
@pytest.mark.parametrize("norm", ["l1", "linf"])
def test_diagonal_non_separable_raises(X, y, norm):
    with pytest.raises(ValueError, match="not linearly separable"):
        diagonal_max_margin(X, y, norm=norm)


@pytest.mark.parametrize(
    "y", [[1, 0, -1], [1, 2, -1], [1, -1, 0.5], [1, -1, np.nan], [[1, -1, 1]], [1, -1]]
)
def test_bad_labels_name_y(y):
    X = np.eye(3)
    with pytest.raises(ValueError, match=r"\by\b"):
        max_margin(X, y)
    with pytest.raises(ValueError, match=r"\by\b"):
        diagonal_max_margin(X, y)


@pytest.mark.parametrize(
    "X", [[1.0, 2.0, 3.0], [[1.0, np.inf, 0], [0, 1, 0], [0, 0, 1]], np.zeros((0, 3))]
)
def test_bad_X_names_X(X):
    with pytest.raises(ValueError, match=r"\bX\b"):
        max_margin(X, [1, -1, 1])


@pytest.mark.parametrize("norm", ["l3", "L2", 2, None, "inf"])
def test_bad_norm_names_norm(norm):
    with pytest.raises(ValueError, match="norm"):
        max_margin(np.eye(2), [1, -1], norm=norm)


@pytest.mark.parametrize("norm", ["l2", "spectral", 1])
def test_diagonal_bad_norm_names_norm(norm):
    with pytest.raises(ValueError, match="norm"):
        diagonal_max_margin(np.eye(2), [1, -1], norm=norm)


# --------------------------------------------------------------------------
# diagonal network
# --------------------------------------------------------------------------
def param_margin(X, y, u, v, norm):
    """min_i y_i <u^2 - v^2, x_i> / ||(u, v)||^2 in the parameter norm."""
    theta = np.concatenate([u, v])
    q = y * (X @ (u**2 - v**2))
    p = np.linalg.norm(theta) if norm == "l1" else np.max(np.abs(theta))
    return float(np.min(q)) / p**2


@pytest.mark.parametrize("n,d,seed", CASES[:4])
@pytest.mark.parametrize("norm", ["l1", "linf"])
def test_diagonal_max_margin(n, d, seed, norm):
    X, y = random_separable(np.random.default_rng(seed), n, d)
    res = diagonal_max_margin(X, y, norm=norm)
    assert isinstance(res, DiagonalMaxMargin)
    beta, m, u, v = res
    # the predictor LP: same value as the linear max-margin, checked by the dual
    assert m == pytest.approx(max_margin(X, y, norm=norm).margin, rel=1e-10)
    assert m == pytest.approx(hull_lp(y[:, None] * X, norm), rel=1e-8)
    assert m == pytest.approx(float(np.min(y * (X @ beta))), rel=1e-12)
    # parameters realizing it
    assert np.all(u >= 0) and np.all(v >= 0) and np.all(u * v == 0)
    np.testing.assert_allclose(u**2 - v**2, beta, rtol=0, atol=1e-15)
    theta = np.concatenate([u, v])
    pnorm = np.linalg.norm(theta) if norm == "l1" else np.max(np.abs(theta))
    assert pnorm == pytest.approx(1.0, rel=1e-12)
    assert param_margin(X, y, u, v, norm) == pytest.approx(m, rel=1e-12)
    # no other parameters do better: random ones, and the same predictor with
    # u_j v_j != 0 (strictly larger parameter norm)
    rng = np.random.default_rng(100 + seed)
    for _ in range(200):
        ur, vr = rng.standard_normal(d), rng.standard_normal(d)
        assert param_margin(X, y, ur, vr, norm) <= m * (1 + 1e-12)
    c = 0.1
    up, vp = np.sqrt(u**2 + c), np.sqrt(v**2 + c)
    np.testing.assert_allclose(up**2 - vp**2, beta, atol=1e-12)
    assert param_margin(X, y, up, vp, norm) < m


# --------------------------------------------------------------------------
# data.separable
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n,d,seed", [(15, 20, 0), (40, 5, 1), (2, 1, 2), (100, 3, 3)])
def test_separable(n, d, seed):
    ds = separable(n, d, seed=seed)
    assert isinstance(ds, BinaryClassification)
    assert ds.X.shape == (n, d) and ds.y.shape == (n,) and ds.w_teacher.shape == (d,)
    assert set(np.unique(ds.y)) == {-1.0, 1.0}
    assert np.linalg.norm(ds.w_teacher) == pytest.approx(1.0, rel=1e-14)
    q = ds.y * (ds.X @ ds.w_teacher)
    assert np.min(q) >= 0.1 - 1e-12  # default margin
    # the teacher is a feasible unit-l2 separator, so the optimum is at least its margin
    assert max_margin(ds.X, ds.y, "l2").margin >= np.min(q) * (1 - 1e-12)
    for norm in ("linf", "l1"):
        assert max_margin(ds.X, ds.y, norm).margin > 0


def test_separable_reproducible_and_options():
    a, b = separable(20, 6, seed=3), separable(20, 6, seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.w_teacher, b.w_teacher)
    c = separable(20, 6, seed=4)
    assert not np.array_equal(a.X, c.X)
    s = separable(30, 12, seed=0, sparsity=3, margin=0.5)
    assert np.count_nonzero(s.w_teacher) == 3
    assert np.min(s.y * (s.X @ s.w_teacher)) >= 0.5 - 1e-12
    z = separable(30, 12, seed=0, margin=0.0)
    assert np.min(z.y * (z.X @ z.w_teacher)) > 0
    # both classes, even for two points
    for seed in range(40):
        assert set(separable(2, 3, seed=seed).y) == {-1.0, 1.0}


def test_separable_distribution():
    """Exact conditioning: <w, x> is N(0, 1) given |<w, x>| >= margin, the rest N(0, I)."""
    ds = separable(4000, 3, seed=0, margin=0.0)
    s = ds.X @ ds.w_teacher
    assert np.mean(s**2) == pytest.approx(1.0, abs=0.08)
    ds = separable(4000, 3, seed=0, margin=1.0)
    s = np.abs(ds.X @ ds.w_teacher)
    # E[|Z| | |Z| >= 1] = phi(1) / Phi(-1)
    expected = np.exp(-0.5) / np.sqrt(2 * np.pi) / 0.15865525393145707
    assert np.mean(s) == pytest.approx(expected, abs=0.03)
    rest = ds.X - np.outer(ds.X @ ds.w_teacher, ds.w_teacher)
    assert np.mean(np.sum(rest**2, axis=1)) == pytest.approx(2.0, abs=0.15)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_samples": 1}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"dim": 0}, "dim"),
        ({"margin": -0.1}, "margin"),
        ({"margin": np.nan}, "margin"),
        ({"sparsity": 0}, "sparsity"),
        ({"sparsity": 9}, "sparsity"),
        ({"seed": -1}, "seed"),
    ],
)
def test_separable_bad_input(kwargs, name):
    args = {"n_samples": 10, "dim": 8, **kwargs}
    with pytest.raises(ValueError, match=name):
        separable(**args)


# --------------------------------------------------------------------------
# data.digits_binary
# --------------------------------------------------------------------------
def test_digits_binary():
    ds = digits_binary()
    raw = load_digits()
    assert ds.X.shape == (1797, 64) and ds.y.shape == (1797,)
    assert ds.X.dtype == np.float64 and np.all(np.isfinite(ds.X))
    assert ds.w_teacher is None
    np.testing.assert_array_equal(ds.labels, raw.target)
    np.testing.assert_array_equal(ds.y, np.where(raw.target % 2 == 1, 1.0, -1.0))
    assert set(ds.y[np.isin(ds.labels, [1, 3, 5, 7, 9])]) == {1.0}
    assert set(ds.y[np.isin(ds.labels, [0, 2, 4, 6, 8])]) == {-1.0}
    np.testing.assert_allclose(ds.X.mean(axis=0), 0.0, atol=1e-12)
    std = ds.X.std(axis=0)
    const = raw.data.std(axis=0) == 0
    assert const.sum() >= 1 and const[0]  # pixel 0 is constant
    np.testing.assert_allclose(std[~const], 1.0, rtol=1e-12)
    assert np.all(ds.X[:, const] == 0.0)


def test_digits_binary_not_linearly_separable():
    """Finding: odd vs even on all 1797 digits is not linearly separable
    through the origin (the optimal margin is 0 in every norm)."""
    ds = digits_binary()
    for norm in NORMS:
        with pytest.raises(ValueError, match="not linearly separable"):
            max_margin(ds.X, ds.y, norm=norm)
    # with an explicit bias column it is not separable either
    with pytest.raises(ValueError, match="not linearly separable"):
        max_margin(np.hstack([ds.X, np.ones((1797, 1))]), ds.y, norm="linf")


def test_digits_binary_subsample_separable():
    ds = digits_binary(n_samples=200, seed=0)
    assert ds.X.shape == (200, 64)
    assert set(np.unique(ds.y)) == {-1.0, 1.0}
    np.testing.assert_allclose(ds.X.mean(axis=0), 0.0, atol=1e-12)
    _w, m = max_margin(ds.X, ds.y, "l2")
    assert m > 0
    lower, upper = hull_l2(ds.y[:, None] * ds.X)
    assert lower * (1 - 1e-12) <= m <= upper * (1 + 1e-12)
    again = digits_binary(n_samples=200, seed=0)
    np.testing.assert_array_equal(ds.X, again.X)
    other = digits_binary(n_samples=200, seed=1)
    assert not np.array_equal(ds.labels, other.labels) or not np.array_equal(ds.X, other.X)
    for seed in range(20):
        assert set(digits_binary(n_samples=2, seed=seed).y) == {-1.0, 1.0}


def test_digits_binary_raw():
    ds = digits_binary(standardize=False)
    np.testing.assert_array_equal(ds.X, load_digits().data.astype(np.float64))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n_samples": 1}, "n_samples"),
        ({"n_samples": 1798}, "n_samples"),
        ({"n_samples": 10.0}, "n_samples"),
        ({"standardize": "yes"}, "standardize"),
        ({"seed": -3}, "seed"),
    ],
)
def test_digits_binary_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        digits_binary(**kwargs)


def test_digits_binary_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"implicitbias\[digits\]"):
        digits_binary()
