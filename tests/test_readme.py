"""The numbers the README's usage examples quote, with tolerances that match the claims."""

from __future__ import annotations

import numpy as np

import implicitbias as ib


def test_diagonal_example_reaches_the_predicted_limits():
    d = ib.data.sparse_regression(n_measurements=40, dim=100, sparsity=4, seed=0)
    r = ib.diagonal.fit(d.A, d.y, depth=2, init_scale=0.1, x_star=d.x_star)
    x_lim = ib.reference.diagonal_flow_limit(d.A, d.y, init_scale=0.1, depth=2)
    assert r.success and np.linalg.norm(r.x - x_lim) <= 1e-6  # README: ~2e-7
    w = ib.diagonal.fit(d.A, d.y, init_scale=0.1, weight_norm="joint", lr_ratio=10)
    x_eff = ib.reference.diagonal_flow_limit(d.A, d.y, w.alpha_eff(), depth=2)
    assert np.linalg.norm(x_eff - w.x) <= 1e-6  # README: ~3e-7
    assert w.invariant_drift() <= 1e-6  # README: ~3e-7 at rtol 1e-8


def test_sign_descent_example_reaches_its_max_margin():
    c = ib.data.separable(n_samples=15, dim=20, seed=0)
    s = ib.steepest.fit(c.X, c.y, model="linear", norm="linf", normalized=True, lr=0.01, steps=100_000, loss="exp")
    ratio = s.margin("linf") / ib.reference.max_margin(c.X, c.y, "linf").margin
    assert 0.999 <= ratio <= 1.0 + 1e-9  # README: 0.999
