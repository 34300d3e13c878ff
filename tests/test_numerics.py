"""Numerical edge cases (issue 12): each test failed before its fix.

- lp direction maps and norms are computed with the largest entry factored out: no overflow or
  underflow for p near 1 or for huge and tiny vectors (docs/science.md, section 2.3);
- the loss-based schedule ends a run as ``stalled`` when no retry decreases the loss (2.5);
- the logistic smoothed margin is finite for any finite loss (2.7);
- the ReLU backward pass skips a sample only when a bound proves the skipped part negligible;
- ``nonnegative=True`` with ``weight_norm="separate"`` is rejected;
- ``min_nuclear_norm`` warns when it returns an "optimal_inaccurate" solution.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import implicitbias as ib
from implicitbias import steepest
from implicitbias._native import core
from implicitbias.steepest import _core_model


def np_lp_direction(g: np.ndarray, p: float) -> tuple[np.ndarray, float]:
    """g# = ||g||_q^(2-q) sign(g) |g|^(q-1), q = p/(p-1), for g of moderate size."""
    q = p / (p - 1)
    dual = np.sum(np.abs(g) ** q) ** (1 / q)
    return dual ** (2 - q) * np.sign(g) * np.abs(g) ** (q - 1), dual


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300, 1e-300])
@pytest.mark.parametrize("p", [1.01, 1.5, 3.0, 50.0])
def test_lp_direction_is_homogeneous_for_huge_and_tiny_gradients(p, scale):
    g = np.random.default_rng(0).standard_normal(7)
    ref, ref_dual = np_lp_direction(g, p)
    d, dual = steepest.direction(scale * g, p)
    assert dual == pytest.approx(scale * ref_dual, rel=1e-12)
    np.testing.assert_allclose(d, scale * ref, rtol=1e-11, atol=0)
    assert steepest.param_norm(scale * g, p) == pytest.approx(scale * np.sum(np.abs(g) ** p) ** (1 / p), rel=1e-12)


def test_lp_direction_near_p_one_does_not_overflow():
    # q = 1001: |g|^q overflows for |g| > 2.03 without the scaling
    g = np.array([30.0, -29.0, 3.0, 0.0])
    d, dual = steepest.direction(g, 1.001)
    ref, ref_dual = np_lp_direction(g / 30.0, 1.001)
    assert np.isfinite(dual) and dual == pytest.approx(30.0 * ref_dual, rel=1e-12)
    np.testing.assert_allclose(d, 30.0 * ref, rtol=1e-10, atol=1e-300)
    assert d @ g == pytest.approx(dual**2, rel=1e-12)  # <g#, g> = ||g||_*^2


def test_lp_runs_with_large_features_near_p_one_take_steps():
    # the scale-free gradient is a weighted mean of the y_i x_i: entries ~1e4, whose power
    # q - 1 = 100 overflowed before (the step became 0 and the run sat still until max_steps)
    X = 1e4 * np.array([[1.0, 0.5], [0.8, -0.3], [-0.2, 1.0]])
    y = np.array([1.0, 1.0, -1.0])
    theta0 = np.array([0.1, -0.2])
    p = 1.01
    r = steepest.fit(X, y, "linear", norm=p, normalized=True, lr=0.5, steps=1, init=theta0)
    assert r.status == "max_steps"
    step = r.theta - theta0
    assert np.sum(np.abs(step) ** p) ** (1 / p) == pytest.approx(0.5, rel=1e-9)  # one step of length lr


def test_loss_schedule_that_finds_no_decrease_ends_as_stalled():
    # the exponential loss e^w + e^-w has its minimum at w = 0, where the gradient is 0: no step
    # can decrease the loss, every retry fails, and the run ends at once as stalled
    X = np.array([[1.0], [-1.0]])
    y = np.array([1.0, 1.0])
    r = steepest.fit(X, y, "linear", normalized=False, lr=0.1, schedule="loss", steps=50, init=np.zeros(1),
                     lr_growth=1.5, lr_backoff=0.5)
    assert r.status == "stalled" and not r.success
    assert r.n_steps == 0 and r.t_final == 0.0 and r.theta[0] == 0.0
    assert r.n_grad_evals == 1 + 61  # the start and max_retries + 1 = 61 attempts
    assert r.log_loss == pytest.approx(np.log(2.0), rel=1e-15)


def test_loss_schedule_that_keeps_decreasing_is_not_stalled(small_separable):
    X, y = small_separable
    r = steepest.fit(X, y, "linear", normalized=False, lr=0.5, schedule="loss", steps=30, init=np.zeros(X.shape[1]))
    assert r.status == "max_steps" and r.n_steps == 30


@pytest.fixture
def small_separable():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 3))
    return X, np.sign(X @ np.array([1.0, -0.5, 0.25]))


@pytest.mark.parametrize("loss_value", [5.0, 700.0, 720.0, 1e4, 1e6])
def test_logistic_smoothed_margin_is_finite_for_large_losses(loss_value):
    # one sample with q = -Loss gives Loss = log(1 + e^Loss) ~ loss_value
    X = np.array([[1.0]])
    y = np.array([1.0])
    theta = np.array([-loss_value])
    r = steepest.fit(X, y, "linear", loss="logistic", lr=1e-9, steps=1, init=theta, record_every=1)
    # Loss = log(1 + e^(-q)) with q = -loss_value, so e^Loss - 1 = e^(-q) and the smoothed margin
    # log(1 / (e^Loss - 1)) / ||theta|| = q / |q| = -1 exactly: the closed form, independent of how the
    # code avoids the overflow of e^Loss
    sm = r.history["smoothed_margin"][0]
    assert np.isfinite(sm) and sm == pytest.approx(-1.0, rel=1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_relu_backward_pass_keeps_skipped_samples_when_they_matter(depth):
    # The largest weight sits on a zero input (its gradient is exactly 0); all other weights are
    # below 2^-64 of it. Skipping them would give G = 0; the bound makes the pass use them all.
    rng = np.random.default_rng(4)
    n, d, width = 12, 3, 4
    X = rng.standard_normal((n, d))
    X[0] = 0.0
    spec = _core_model("mlp", depth, width)
    theta = rng.standard_normal(steepest.init_params("mlp", d, width=width, depth=depth).size)
    small = rng.uniform(0.5, 1.0, n) * 1e-25
    small[0] = 0.0
    c = small.copy()
    c[0] = 1e-3
    G, used = core.homogeneous_grad_sum(spec, X, theta, c)
    G_small, used_small = core.homogeneous_grad_sum(spec, X, theta, small)  # all active: the dense pass
    assert np.linalg.norm(G_small) > 0
    assert used == used_small == n  # the bound refused the skip
    np.testing.assert_allclose(G, G_small, rtol=1e-12, atol=0)


def test_relu_backward_pass_still_skips_when_the_bound_allows(depth=3):
    # weights concentrated on a few samples with a non-zero gradient: the skipped ones change G by
    # less than 2^-53 ||G||, so the result equals the dense one to rounding
    rng = np.random.default_rng(5)
    n, d, width = 40, 4, 5
    X = rng.standard_normal((n, d))
    spec = _core_model("mlp", depth, width)
    theta = rng.standard_normal(steepest.init_params("mlp", d, width=width, depth=depth).size)
    c = rng.uniform(0.5, 1.0, n) * 1e-30
    c[[2, 9]] = [1.0, -0.7]
    G, used = core.homogeneous_grad_sum(spec, X, theta, c)
    G_big, _ = core.homogeneous_grad_sum(spec, X, theta, np.where(np.abs(c) > 1e-20, c, 0.0))
    assert used == 2  # the backward pass ran on the two samples that carry the weight
    assert np.linalg.norm(G - G_big) <= 2.0**-52 * np.linalg.norm(G)


def test_nonnegative_with_separate_weight_norm_is_rejected():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((5, 8))
    y = A @ np.abs(rng.standard_normal(8))
    with pytest.raises(ValueError, match="weight_norm='separate'"):
        ib.diagonal.fit(A, y, nonnegative=True, weight_norm="separate", t_max=1.0)
    with pytest.raises(ValueError, match="weight_norm='separate'"):
        ib.diagonal.fit_many(A, y, nonnegative=True, weight_norm=["joint", "separate"], t_max=1.0)
    r = ib.diagonal.fit(A, y, nonnegative=True, weight_norm="joint", t_max=1.0)
    assert r.weight_norm == "joint"


def test_min_nuclear_norm_warns_when_the_solver_is_inaccurate(monkeypatch):
    cp = pytest.importorskip("cvxpy")
    from implicitbias.reference import InaccurateSolveWarning, nuclear

    solve = cp.Problem.solve

    def inaccurate(self, *args, **kwargs):
        out = solve(self, *args, **kwargs)
        self._status = "optimal_inaccurate"
        return out

    rng = np.random.default_rng(7)
    A = rng.standard_normal((10, 3, 3))
    M = np.outer(rng.standard_normal(3), rng.standard_normal(3))
    y = np.einsum("kij,ij->k", A, M)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X = nuclear.min_nuclear_norm(A, y)  # optimal: no warning
    monkeypatch.setattr(cp.Problem, "solve", inaccurate)
    with pytest.warns(InaccurateSolveWarning, match="optimal_inaccurate"):
        Xi = nuclear.min_nuclear_norm(A, y)
    np.testing.assert_allclose(Xi, X, atol=1e-6)
