"""Deep linear regression: the factorization family's regression-data operator.

References are independent NumPy reimplementations of the loss, its gradient and the trace's
closed form, central finite differences of them, and the closed-form mode dynamics of Saxe et
al. (2014) (torch is not installed here, so there is no autograd reference).
"""

from __future__ import annotations

import numpy as np
import pytest

from implicitbias import data, factorization, hessian


def flat(layers):
    return np.concatenate([W.ravel(order="F") for W in layers])


def prod(Ws):
    E = Ws[0]
    for W in Ws[1:]:
        E = W @ E
    return E


def np_loss(Ws, X, Y):
    R = prod(Ws) @ X.T - Y.T
    return float(np.sum(R**2)) / X.shape[0]


def np_grad(Ws, X, Y):
    n = X.shape[0]
    G = 2.0 / n * (prod(Ws) @ X.T - Y.T) @ X
    out = []
    for j in range(len(Ws)):
        P = prod(Ws[:j]) if j > 0 else np.eye(X.shape[1])
        S = prod(Ws[j + 1:]) if j + 1 < len(Ws) else np.eye(Y.shape[1])
        out.append(S.T @ G @ P.T)
    return out


def np_trace(Ws, X, d_out):
    C = X.T @ X / X.shape[0]
    t = 0.0
    for j in range(len(Ws)):
        P = prod(Ws[:j]) if j > 0 else np.eye(X.shape[1])
        S = prod(Ws[j + 1:]) if j + 1 < len(Ws) else np.eye(d_out)
        t += np.sum(S**2) * np.sum(C * (P.T @ P))
    return 2.0 * t


def fd(fun, z, h):
    """Central differences of fun (scalar or vector valued) at z, one column per coordinate."""
    cols = []
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = h
        cols.append((np.asarray(fun(z + e)) - np.asarray(fun(z - e))) / (2 * h))
    return np.array(cols).T


@pytest.fixture(scope="module", params=[4, 13], ids=["raw", "compressed"])
def problem(request):
    """d_in = 3, d_out = 2: n = 4 keeps the samples, n = 13 > d_in + d_out keeps a QR factor."""
    rng = np.random.default_rng(request.param)
    n = request.param
    X = rng.standard_normal((n, 3))
    Y = rng.standard_normal((n, 2))
    dims = [3, 4, 3, 2]
    Ws = [0.7 * rng.standard_normal((dims[j + 1], dims[j])) for j in range(3)]
    return X, Y, Ws, dims


# --------------------------------------------------------------------------- loss, gradient, Hessian, trace
def test_loss_and_gradient_match_numpy_and_finite_differences(problem):
    X, Y, Ws, dims = problem
    op = factorization.regression_operator(X, Y)
    assert op.kind == "regression" and op.shape == (2, 3) and op.n == X.shape[0]
    assert factorization.loss(Ws, op, None) == pytest.approx(np_loss(Ws, X, Y), rel=1e-13)
    assert factorization.loss(Ws, X, Y) == factorization.loss(Ws, op, None)  # raw arrays: the same operator
    g = flat(factorization.gradient(Ws, X, Y))
    np.testing.assert_allclose(g, flat(np_grad(Ws, X, Y)), rtol=1e-12, atol=1e-13)
    num = fd(lambda z: np_loss(factorization.unpack(dims, z), X, Y), flat(Ws), 1e-6)
    np.testing.assert_allclose(g, num, rtol=1e-7, atol=1e-8)


def test_hessian_matches_finite_differences_of_the_numpy_gradient(problem):
    X, Y, Ws, dims = problem
    H = hessian.dense(Ws, X, Y)
    num = fd(lambda z: flat(np_grad(factorization.unpack(dims, z), X, Y)), flat(Ws), 1e-5)
    np.testing.assert_allclose(H, num, rtol=1e-7, atol=1e-7 * np.abs(H).max())
    np.testing.assert_allclose(H, H.T, atol=1e-12 * np.abs(H).max())
    V = np.random.default_rng(5).standard_normal((H.shape[0], 3))
    op = factorization.regression_operator(X, Y)
    np.testing.assert_allclose(hessian.hvp(Ws, op, None, V), H @ V, rtol=1e-12, atol=1e-12 * np.abs(H).max())
    # the residual term is there: at the point the loss is far from zero, H differs from J^T J (2/n)
    J = factorization.jacobian(Ws, op)
    assert np.abs(H - 2.0 / X.shape[0] * J.T @ J).max() > 1e-3 * np.abs(H).max()


def test_trace_closed_form_its_gradient_and_estimators(problem):
    X, Y, Ws, dims = problem
    op = factorization.regression_operator(X, Y)
    t = hessian.trace(Ws, op)
    assert t == pytest.approx(np_trace(Ws, X, 2), rel=1e-12)
    assert t == pytest.approx(np.trace(hessian.dense(Ws, op, None)), rel=1e-12)
    t2, tg = hessian.trace_gradient(Ws, X, Y)
    assert t2 == pytest.approx(t, rel=1e-14)
    num = fd(lambda z: np_trace(factorization.unpack(dims, z), X, 2), flat(Ws), 1e-6)
    np.testing.assert_allclose(flat(tg), num, rtol=1e-7, atol=1e-7 * np.abs(num).max())
    D = flat(Ws).size
    assert hessian.hutchpp(Ws, op, num_matvecs=3 * D, seed=1).estimate == pytest.approx(t, rel=1e-9)
    est = hessian.hutchinson(Ws, op, num_matvecs=200, seed=2)
    assert abs(est.estimate - t) < 4 * est.stderr


def test_compression_keeps_the_gram_matrix_and_the_model():
    """A data set and the same data set repeated (same C, B, c_0 after dividing by n) give the same model."""
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    small = factorization.regression_operator(X, Y)  # n = 5: samples kept
    big = factorization.regression_operator(np.vstack([X] * 4), np.vstack([Y] * 4))  # n = 20: QR factor kept
    np.testing.assert_allclose(np.asarray(big._core.gram) / 4, np.asarray(small._core.gram), rtol=1e-13)
    assert big._targets.size == 2 * 5 and small._targets.size == 2 * 5
    Ws = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    assert factorization.loss(Ws, big, None) == pytest.approx(factorization.loss(Ws, small, None), rel=1e-12)
    np.testing.assert_allclose(hessian.dense(Ws, big, None), hessian.dense(Ws, small, None), rtol=1e-11,
                               atol=1e-12)
    # near zero loss the loss is a sum of squares, not a difference of large terms
    A = rng.standard_normal((2, 3))
    Xb = rng.standard_normal((50, 3))
    Yb = Xb @ A.T + 1e-9 * rng.standard_normal((50, 2))
    exact = np_loss([A], Xb, Yb)
    assert factorization.loss([A], Xb, Yb) == pytest.approx(exact, rel=1e-5)


def test_validation_names_the_argument():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    Ws = [rng.standard_normal((2, 3))]
    with pytest.raises(ValueError, match="y must have one row per sample of A"):
        factorization.loss(Ws, X, Y[:4])
    Xn = X.copy()
    Xn[1, 1] = np.nan
    with pytest.raises(ValueError, match="A contains NaN"):
        factorization.fit(Xn, Y, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="Y must have one row per sample of X"):
        factorization.regression_operator(X, Y[:3])
    with pytest.raises(ValueError, match="Y contains"):
        factorization.regression_operator(X, np.full((5, 2), np.inf))
    op = factorization.regression_operator(X, Y)
    with pytest.raises(ValueError, match="y must be None with a RegressionOperator"):
        factorization.fit(op, Y, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="product's shape"):
        hessian.trace([rng.standard_normal((3, 3))], op)
    with pytest.raises(ValueError, match="shape"):
        factorization.fit(X, Y, shape=(3, 3), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="n must be >= d_in"):
        data.whitened_regression(n=3, d_in=4)
    with pytest.raises(ValueError, match="A_true"):
        data.whitened_regression(n=4, d_in=4, A_true=np.ones((2, 3)))


def test_whitened_regression():
    d = data.whitened_regression(n=7, d_in=5, d_out=3, seed=4)
    np.testing.assert_allclose(d.X.T @ d.X / 7, np.eye(5), atol=1e-13)
    np.testing.assert_allclose(d.Y, d.X @ d.A_true.T, rtol=1e-14)
    assert d.A_true.shape == (3, 5)
    e = data.whitened_regression(n=7, d_in=5, d_out=3, seed=4)
    np.testing.assert_array_equal(d.X, e.X)
    np.testing.assert_array_equal(d.Y, e.Y)
    assert not np.array_equal(d.X, data.whitened_regression(n=7, d_in=5, d_out=3, seed=5).X)


# --------------------------------------------------------------------------- training
def test_descent_and_sam_match_a_numpy_loop():
    d = data.whitened_regression(n=9, d_in=3, d_out=2, seed=2)  # n > d_in + d_out: the compressed path
    init = factorization.initial_layers((2, 3), 3, width=4, init_scale=0.9, seed=1)
    lr, steps, rho = 0.05, 6, 0.2
    for method in ("descent", "sam"):
        r = factorization.fit(d.X, d.Y, init_layers=init, method=method, lr=lr, steps=steps, sam_radius=rho,
                              anneal_frac=1.0, final_ratio=1.0)
        W = [w.copy() for w in init]
        for _ in range(steps):
            g = np_grad(W, d.X, d.Y)
            if method == "sam":
                nrm = np.linalg.norm(flat(g))
                g = np_grad([w + rho * a / nrm for w, a in zip(W, g)], d.X, d.Y)
            W = [w - lr * a for w, a in zip(W, g)]
        np.testing.assert_allclose(flat(r.layers), flat(W), rtol=1e-11, atol=1e-13)
        assert r.loss == pytest.approx(np_loss(W, d.X, d.Y), rel=1e-10)
        assert r.trace == pytest.approx(np_trace(W, d.X, 2), rel=1e-10)


def test_fit_many_entries_equal_fit_and_do_not_depend_on_threads():
    d = data.whitened_regression(n=8, d_in=3, d_out=2, seed=0)
    op = factorization.regression_operator(d.X, d.Y)
    methods = ["descent", "sam", "label_noise_sgd", "trace_penalty", "flow"]
    kw = dict(depth=3, width=3, init_scale=0.8, lr=0.05, steps=40, sam_radius=0.1, label_noise_std=0.3,
              trace_weight=0.01, t_max=2.0)
    one = factorization.fit_many(op, None, method=methods, num_threads=1, **kw)
    two = factorization.fit_many(op, None, method=methods, num_threads=2, **kw)
    raw = factorization.fit_many(d.X, d.Y, method=methods, num_threads=2, block_size=2, **kw)
    for k, m in enumerate(methods):
        single = factorization.fit(op, None, method=m, **kw)
        for other in (two[k], raw[k], single):
            np.testing.assert_array_equal(flat(one[k].layers), flat(other.layers))
            np.testing.assert_array_equal(one[k].history["loss"], other.history["loss"])
        assert np.isfinite(one[k].loss) and one[k].loss < np_loss(
            factorization.initial_layers((2, 3), 3, 3, 0.8, seed=0), d.X, d.Y)
    assert not np.array_equal(flat(one[0].layers), flat(one[2].layers))  # the label noise acted


def saxe(t, s, a0):
    """Mode strength under the flow of (1/n)||E X^T - Y^T||^2, whitened, depth 2: da/dt = 4 a (s - a)."""
    e = np.exp(4.0 * s * t)
    return s * e / (e - 1.0 + s / a0)


def test_depth_two_flow_follows_the_saxe_mode_dynamics():
    rng = np.random.default_rng(7)
    U = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    V = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    s = np.array([3.0, 1.5, 0.75])
    A_true = U[:, :3] @ np.diag(s) @ V.T  # (4, 3), singular values s
    d = data.whitened_regression(n=5, d_in=3, A_true=A_true, seed=1)
    a0 = 1e-4
    init = [np.sqrt(a0) * V.T, np.sqrt(a0) * U[:, :3]]  # W_1 (3x3), W_2 (4x3): aligned, balanced
    t_max = 6.0
    r = factorization.fit(d.X, d.Y, init_layers=init, method="flow", t_max=t_max, rtol=1e-10, target_loss=0.0,
                          n_record=60)
    t = r.history["t"]
    assert t[-1] == pytest.approx(t_max) and t.size > 30
    a = saxe(t[:, None], s[None, :], a0)  # (times, modes)
    # the whole trajectory: loss = sum_i (a_i - s_i)^2 and nuclear norm = sum_i a_i
    np.testing.assert_allclose(r.history["loss"], np.sum((a - s) ** 2, axis=1), rtol=1e-7, atol=1e-14)
    np.testing.assert_allclose(r.history["nuclear_norm"], np.sum(a, axis=1), rtol=1e-7)
    # each mode, at a few times: u_i^T E v_i, and E stays diagonal in the target's singular bases;
    # the modes are learned one after another, largest first
    learned = {}
    for tk in (0.5, 1.2, 2.5):
        rk = factorization.fit(d.X, d.Y, init_layers=init, method="flow", t_max=tk, rtol=1e-10, target_loss=0.0)
        M = U[:, :3].T @ rk.product @ V
        np.testing.assert_allclose(np.diag(M), saxe(tk, s, a0), rtol=1e-7)
        assert np.abs(M - np.diag(np.diag(M))).max() < 1e-9
        learned[tk] = np.diag(M) / s
    assert learned[0.5][0] < 0.5 and learned[0.5][1] < 0.01  # nothing learned yet
    assert learned[1.2][0] > 0.95 and learned[1.2][1] < 0.2 and learned[1.2][2] < 0.01  # the largest mode
    assert learned[2.5][1] > 0.95 and learned[2.5][2] < 0.5  # then the second
    assert r.history["loss"][-1] < 1e-6 * r.history["loss"][0]  # then the third


@pytest.mark.parametrize("n", [3, 12], ids=["raw", "compressed"])
def test_label_noise_has_the_law_of_noise_on_the_original_targets(n):
    """One step of label-noise descent on a depth-1 model: the noise part of the step,
    (2 sigma / n) xi^T X for fresh N(0, 1) targets' noise xi, has covariance (4 sigma^2 / n^2) X^T X
    whether the samples (n = 3) or a QR factor of [X Y] (n = 12 > d_in + d_out = 3) are kept."""
    rng = np.random.default_rng(n)
    X, Y = rng.standard_normal((n, 2)), rng.standard_normal((n, 1))
    op = factorization.regression_operator(X, Y)
    init = [rng.standard_normal((1, 2))]
    sigma, K = 0.7, 4000
    kw = dict(lr=1.0, steps=1, anneal_frac=1.0, final_ratio=1.0)
    gd = factorization.fit(op, None, method="descent", init_layers=init, **kw).layers[0]
    noisy = factorization.fit_many(op, None, method="label_noise_sgd", label_noise_std=sigma, seed=list(range(K)),
                                   init_layers=[init], **kw)
    D = np.array([r.layers[0][0] - gd[0] for r in noisy])  # (K, 2) samples of the noise part of the step
    exact = 4 * sigma**2 / n**2 * (X.T @ X)
    assert np.abs(D.mean(axis=0)).max() < 4 * np.sqrt(np.diag(exact).max() / K)
    emp = D.T @ D / K
    # sample covariance of K Gaussian draws: entrywise standard error <= sqrt(2 / K) * max variance
    assert np.abs(emp - exact).max() < 4 * np.sqrt(2.0 / K) * np.diag(exact).max()


def test_spectrum_of_a_regression_operator_without_y():
    """A RegressionOperator carries its targets: operator/eigenvalues take y=None, as hvp and trace do."""
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    op = factorization.regression_operator(X, Y)
    Ws = [rng.standard_normal((4, 3)), rng.standard_normal((2, 4))]
    truth = np.linalg.eigvalsh(hessian.dense(Ws, X, Y))
    top = hessian.eigenvalues(Ws, op, None, k=3)
    np.testing.assert_allclose(top.values, truth[-3:], rtol=1e-10, atol=1e-10 * truth[-1])
    H = hessian.operator(Ws, op, None)
    v = rng.standard_normal(H.dim)
    np.testing.assert_allclose(H.matvec(v), hessian.dense(Ws, X, Y) @ v, rtol=1e-11, atol=1e-11 * np.abs(truth).max())
