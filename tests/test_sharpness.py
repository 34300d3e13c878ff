"""record_sharpness: the top Hessian eigenvalue recorded at every record point, against eigvalsh of
the dense Hessian at the same state (states from an independent NumPy GD loop)."""

import numpy as np
import pytest

from implicitbias import diagonal, factorization, hessian
from implicitbias.data import sparse_regression, whitened_regression


def _regression():
    d = whitened_regression(n=8, d_in=3, d_out=2, seed=1)
    return d.X, d.Y


def _numpy_gd(layers, X, Y, lr, steps):
    """GD on (1/n) ||W_L ... W_1 X^T - Y^T||_F^2, the states after each step (index 0: the start)."""
    n = X.shape[0]
    Ws = [np.array(W, dtype=float) for W in layers]
    states = [[W.copy() for W in Ws]]
    for _ in range(steps):
        P = [np.eye(X.shape[1])]
        for W in Ws:
            P.append(W @ P[-1])
        R = P[-1] @ X.T - Y.T  # (d_out, n)
        G = (2.0 / n) * R @ X  # dLoss/dE
        S = np.eye(Y.shape[1])
        grads = [None] * len(Ws)
        for k in range(len(Ws) - 1, -1, -1):
            grads[k] = S.T @ G @ P[k].T
            S = S @ Ws[k]
        Ws = [W - lr * g for W, g in zip(Ws, grads)]
        states.append([W.copy() for W in Ws])
    return states


def _top(layers, A, y):
    return float(np.linalg.eigvalsh(hessian.dense(layers, A, y))[-1])


def test_sharpness_along_gd_matches_dense_hessian():
    X, Y = _regression()
    init = factorization.initial_layers((2, 3), 3, 3, init_scale=0.7, seed=2)
    steps, every, lr = 40, 5, 0.05
    r = factorization.fit(X, Y, depth=3, init_layers=init, lr=lr, steps=steps, record_every=every,
                          record_sharpness=True)
    h = r.history
    states = _numpy_gd(init, X, Y, lr, steps)
    assert len(h["sharpness"]) == steps // every + 1
    for t, s, res in zip(h["t"], h["sharpness"], h["sharpness_residual"]):
        ref = _top(states[round(t / lr)], X, Y)
        assert res <= 1e-8 * abs(s)
        assert abs(s - ref) <= res + 1e-10 * ref
    assert abs(h["sharpness"][-1] - _top(r.layers, X, Y)) <= 1e-9 * h["sharpness"][-1]


def test_unit_case_xy_one():
    # 0.5 (1 - x y)^2 as the 1x1 depth-2 factorization with n = 1 and A_1 = y_1 = 1/sqrt(2) (the loss is
    # (1/n) sum (f - y)^2): at x y = 1 its Hessian [[y^2, 1], [1, x^2]] has eigenvalues 0 and x^2 + y^2
    x, y = 2.0, 0.5
    A, b = np.full((1, 1, 1), 2**-0.5), np.full(1, 2**-0.5)
    r = factorization.fit(A, b, depth=2, init_layers=[np.array([[x]]), np.array([[y]])], lr=0.01, steps=0,
                          record_sharpness=True)
    assert r.history["sharpness"][-1] == pytest.approx(x * x + y * y, rel=1e-12)
    assert np.linalg.eigvalsh(hessian.dense(r.layers, A, b))[0] == pytest.approx(0, abs=1e-12)


def test_methods_record_the_plain_loss_sharpness_and_flow():
    X, Y = _regression()
    for method, extra in [("sam", dict(sam_radius=0.05)), ("trace_penalty", dict(trace_weight=0.01)),
                          ("label_noise_sgd", dict(label_noise_std=0.1)), ("flow", dict(t_max=2.0))]:
        r = factorization.fit(X, Y, depth=3, width=3, init_scale=0.7, method=method, lr=None if method == "flow"
                              else 0.05, steps=30, n_record=5, record_sharpness=True, **extra)
        s = r.history["sharpness"][-1]
        assert abs(s - _top(r.layers, X, Y)) <= 1e-9 * s, method


def test_warm_start_cuts_matvecs():
    d = whitened_regression(n=20, d_in=6, d_out=6, seed=0)
    r = factorization.fit(d.X, d.Y, depth=4, width=6, init_scale=0.5, lr=0.02, steps=400, record_every=20,
                          record_sharpness=True)
    warm = r.history["sharpness_matvecs"]
    cold = hessian.eigenvalues(hessian.dense(r.layers, d.X, d.Y), k=1, tol=1e-8)  # cold start, same Lanczos
    assert abs(cold.values[-1] - r.history["sharpness"][-1]) <= 1e-8 * cold.values[-1]
    assert warm[-1] < cold.num_matvecs
    assert np.mean(warm[1:]) < warm[0]  # the first point starts cold


def test_option_off_unchanged_and_bitwise_reproducible():
    X, Y = _regression()
    kw = dict(depth=3, width=3, init_scale=[0.5, 0.7, 0.6], seed=[0, 1, 2], method=["descent", "sam", "descent"],
              sam_radius=0.05, lr=0.05, steps=30, record_every=3)
    off = factorization.fit_many(X, Y, **kw)
    on = factorization.fit_many(X, Y, record_sharpness=True, **kw)
    on2 = factorization.fit_many(X, Y, record_sharpness=True, num_threads=2, block_size=2, **kw)
    for a, b, c in zip(off, on, on2):
        assert "sharpness" not in a.history
        for key, val in a.history.items():
            if key != "wall_time":
                np.testing.assert_array_equal(val, b.history[key])
        for W, V in zip(a.layers, b.layers):
            np.testing.assert_array_equal(W, V)
        for key in ("sharpness", "sharpness_residual", "sharpness_matvecs"):
            np.testing.assert_array_equal(b.history[key], c.history[key])
    one = factorization.fit(X, Y, depth=3, width=3, init_scale=0.7, seed=1, method="sam", sam_radius=0.05, lr=0.05,
                            steps=30, record_every=3, record_sharpness=True)
    np.testing.assert_array_equal(one.history["sharpness"], on[1].history["sharpness"])


# --------------------------------------------------------------------------- the diagonal family
def _diag_top(A, y, u, v, L):
    """Top eigenvalue of the Hessian of 0.5 ||A (u^L - v^L) - y||^2 in (u, v), formed in NumPy."""
    g = A.T @ (A @ (u**L - v**L) - y)
    J = A @ np.hstack([np.diag(L * u ** (L - 1)), np.diag(-L * v ** (L - 1))])
    H = J.T @ J + np.diag(np.concatenate([L * (L - 1) * u ** (L - 2) * g, -L * (L - 1) * v ** (L - 2) * g]))
    return float(np.linalg.eigvalsh(H)[-1])


@pytest.mark.parametrize("method, kw", [
    ("descent", dict(lr=0.02, steps=60)),
    ("descent", dict(lr=0.02, steps=60, depth=3, gd_kernel="generic")),
    ("descent", dict(lr=0.02, steps=60, weight_norm="joint")),
    ("sgd", dict(lr=0.02, steps=60, batch_size=3, momentum=0.5)),
    ("sam", dict(lr=0.02, steps=60, sam_radius=0.01)),
    ("label_noise_sgd", dict(lr=0.02, steps=60, label_noise_std=0.1)),
    ("flow", dict(t_max=10.0, n_record=8)),
    ("flow", dict(t_max=10.0, n_record=8, solver="rosw")),
])
def test_diagonal_sharpness_matches_dense_hessian(method, kw):
    s = sparse_regression(6, 10, 2, seed=0)
    r = diagonal.fit(s.A, s.y, init_scale=0.3, method=method, record_every=10 if method != "flow" else None,
                     record_state=True, record_sharpness=True, **kw)
    h = r.history
    L = kw.get("depth", 2)
    assert len(h["sharpness"]) == len(h["t"]) > 2
    for u, v, val, res in zip(h["u"], h["v"], h["sharpness"], h["sharpness_residual"]):
        ref = _diag_top(s.A, s.y, u, v, L)
        assert res <= 1e-8 * abs(val)
        assert abs(val - ref) <= res + 1e-12 * ref


@pytest.mark.parametrize("method", ["descent", "flow"])
def test_diagonal_warm_start_bitwise_and_option_off(method):
    s = sparse_regression(6, 10, 2, seed=0)
    kw = dict(init_scale=[0.3, 0.2, 0.4], method=method, lr=0.02, steps=60, record_every=10)
    off = diagonal.fit_many(s.A, s.y, **kw)
    on = diagonal.fit_many(s.A, s.y, record_sharpness=True, **kw)
    on2 = diagonal.fit_many(s.A, s.y, record_sharpness=True, num_threads=2, **kw)
    # one run per block: descent is bitwise the same; the dual flow of a block multiplies A by all its runs'
    # columns at once, and with the AVX2 / AVX-512 kernels a product of 3 columns rounds differently from 3
    # products of one (measured 1.2e-12 relative in the sharpness), so there the records agree to rounding
    on3 = diagonal.fit_many(s.A, s.y, record_sharpness=True, num_threads=2, block_size=1, **kw)
    for a, b, c, d in zip(off, on, on2, on3):
        for key, val in a.history.items():
            if key != "wall_time":
                np.testing.assert_array_equal(val, b.history[key])
        np.testing.assert_array_equal(a.u, b.u)
        for key in ("sharpness", "sharpness_residual", "sharpness_matvecs"):
            np.testing.assert_array_equal(b.history[key], c.history[key])
        if method == "descent":
            np.testing.assert_array_equal(b.history["sharpness"], d.history["sharpness"])
        else:
            np.testing.assert_allclose(b.history["sharpness"], d.history["sharpness"], rtol=1e-10)
    one = diagonal.fit(s.A, s.y, init_scale=0.2, method=method, lr=0.02, steps=60, record_every=10,
                       record_sharpness=True)
    np.testing.assert_array_equal(one.history["sharpness"], on[1].history["sharpness"])
    cold = hessian.eigenvalues(hessian.diagonal_operator(one.u, one.v, s.A, s.y), k=1, tol=1e-8)
    assert one.history["sharpness_matvecs"][-1] < cold.num_matvecs


def test_sweep_stores_the_sharpness(tmp_path):
    from implicitbias import sweep

    spec = {"family": "factorization", "seeds": 1,
            "problem": {"generator": "matrix_sensing", "n_measurements": 12, "shape": [3, 3], "rank": 1},
            "fit": {"method": "descent", "lr": 0.05, "steps": 20, "record_every": 5, "record_sharpness": True},
            "grid": {"fit.init_scale": [0.3, 0.5]}, "run": {"history": ["t", "sharpness", "sharpness_residual"]}}
    df = sweep.run(spec, tmp_path / "s", progress=False, num_threads=1)
    for _, row in df.iterrows():
        assert len(row["history.sharpness"]) == len(row["history.t"]) == 5
        assert np.all(np.array(row["history.sharpness_residual"]) <= 1e-8 * np.array(row["history.sharpness"]))
