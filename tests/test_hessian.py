"""Tests for implicitbias.hessian: exact trace, its gradient, HVPs, estimators (docs/science.md, section 3).

The ground truth is an independent NumPy implementation of the loss and its
gradient (checked against finite differences of the loss), and a dense
Hessian built from Richardson-extrapolated central differences of that
gradient (error O(h^4), about 1e-11 relative here).
"""

from __future__ import annotations

import numpy as np
import pytest

from implicitbias import data, factorization, hessian

# --------------------------------------------------------------------------- NumPy reference


def np_product(layers):
    E = layers[0]
    for W in layers[1:]:
        E = W @ E
    return E


def np_forward(E, A):
    if A.ndim == 3:
        return np.einsum("nij,ij->n", A, E)
    return E[A[:, 0], A[:, 1]]


def np_loss(layers, A, y):
    r = np_forward(np_product(layers), A) - y
    return float(np.mean(r**2))


def np_grad(layers, A, y, shape):
    """Per-layer gradient (2/n) W_{L:j+1}^T G W_{j-1:1}^T, G = sum_i r_i A_i."""
    n = y.size
    E = np_product(layers)
    r = np_forward(E, A) - y
    if A.ndim == 3:
        G = np.einsum("n,nij->ij", r, A)
    else:
        G = np.zeros(shape)
        np.add.at(G, (A[:, 0], A[:, 1]), r)
    out = []
    L = len(layers)
    for j in range(L):
        suffix = np.eye(shape[0])
        for W in reversed(layers[j + 1:]):
            suffix = suffix @ W
        prefix = np.eye(shape[1])
        for W in layers[:j]:
            prefix = W @ prefix
        out.append(2.0 / n * suffix.T @ G @ prefix.T)
    return out


def flat(layers):
    return np.concatenate([W.ravel(order="F") for W in layers])


def unflat(dims, z):
    return factorization.unpack(dims, z)


def fd_hessian(layers, A, y, shape, h=1e-3):
    """Dense Hessian by Richardson-extrapolated central differences of np_grad."""
    dims, z = factorization.pack(layers)

    def g(zz):
        return flat(np_grad(unflat(dims, zz), A, y, shape))

    D = z.size
    H = np.empty((D, D))
    for p in range(D):
        e = np.zeros(D)
        e[p] = 1.0
        d1 = (g(z + h * e) - g(z - h * e)) / (2 * h)
        d2 = (g(z + h / 2 * e) - g(z - h / 2 * e)) / h
        H[:, p] = (4 * d2 - d1) / 3
    return 0.5 * (H + H.T)


def problem(kind, L, seed=0, n=None):
    """Tiny instance: E is 3 x 4, hidden widths 2, 3, 2 ..., random layers (loss far from 0)."""
    shape = (3, 4)
    n = n or (7 if kind == "gaussian" else 9)
    m = data.matrix_sensing(shape, 1, n, kind="gaussian" if kind == "gaussian" else "completion", seed=seed)
    rng = np.random.default_rng(100 + seed + L)
    dims = [shape[1]] + [2 + (j % 2) for j in range(L - 1)] + [shape[0]]
    layers = [rng.standard_normal((dims[j], dims[j - 1])) for j in range(1, L + 1)]
    return m, layers


KINDS = ["gaussian", "gaussian-prepared", "completion"]


def A_of(m, kind):
    if kind == "gaussian-prepared":  # the Kronecker-sum path of the C++ operator
        op = factorization.sensing_operator(m.A)
        return op
    if kind == "completion":
        return factorization.sensing_operator(m.A, m.shape)
    return m.A  # one-off: the per-measurement path


# --------------------------------------------------------------------------- exact quantities
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_gradient_matches_numpy_and_finite_differences(kind, L):
    m, layers = problem(kind.split("-")[0], L)
    A = A_of(m, kind)
    g = factorization.gradient(layers, A, m.y)
    g_np = np_grad(layers, m.A, m.y, m.shape)
    for a, b in zip(g, g_np):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
    assert factorization.loss(layers, A, m.y) == pytest.approx(np_loss(layers, m.A, m.y), rel=1e-13)
    # NumPy gradient vs central differences of the NumPy loss
    dims, z = factorization.pack(layers)
    h = 1e-6
    fd = np.array([(np_loss(unflat(dims, z + h * e), m.A, m.y) - np_loss(unflat(dims, z - h * e), m.A, m.y)) / (2 * h)
                   for e in np.eye(z.size)])
    np.testing.assert_allclose(flat(g_np), fd, rtol=0, atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_trace_equals_finite_difference_hessian(kind, L):
    m, layers = problem(kind.split("-")[0], L)
    A = A_of(m, kind)
    assert np_loss(layers, m.A, m.y) > 0.1  # away from zero loss: the residual term matters
    H_fd = fd_hessian(layers, m.A, m.y, m.shape)
    t = hessian.trace(layers, A, m.y)
    assert t == pytest.approx(np.trace(H_fd), rel=1e-8)
    # the dense Hessian from exact HVPs agrees entrywise, and the residual term is not negligible
    H = hessian.dense(layers, A, m.y)
    np.testing.assert_allclose(H, H_fd, rtol=0, atol=1e-8 * np.abs(H_fd).max())
    J = factorization.jacobian(layers, A)
    gauss_newton = 2.0 / m.y.size * J.T @ J
    if L >= 2:
        assert np.abs(H - gauss_newton).max() > 1e-3 * np.abs(H).max()
    # trace of the Gauss-Newton part equals the full trace (same-layer blocks of the residual part vanish)
    assert np.trace(gauss_newton) == pytest.approx(t, rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_trace_gradient_matches_finite_differences(kind, L):
    m, layers = problem(kind.split("-")[0], L, seed=1)
    A = A_of(m, kind)
    t, g = hessian.trace_gradient(layers, A)
    assert t == pytest.approx(hessian.trace(layers, A), rel=1e-13)
    dims, z = factorization.pack(layers)
    h = 1e-3

    def tr(zz):
        return hessian.trace(unflat(dims, zz), A)

    fd = []
    for e in np.eye(z.size):
        d1 = (tr(z + h * e) - tr(z - h * e)) / (2 * h)
        d2 = (tr(z + h / 2 * e) - tr(z - h / 2 * e)) / h
        fd.append((4 * d2 - d1) / 3)
    fd = np.array(fd)
    scale = max(np.abs(fd).max(), 1.0)
    np.testing.assert_allclose(flat(g), fd, rtol=0, atol=1e-8 * scale)
    if L == 1:
        assert np.all(flat(g) == 0)  # depth 1: the trace does not depend on the weights
    else:
        assert np.abs(fd).max() > 1e-2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("L", [2, 3])
def test_hvp_matches_finite_differences_of_the_gradient(kind, L):
    m, layers = problem(kind.split("-")[0], L, seed=2)
    A = A_of(m, kind)
    dims, z = factorization.pack(layers)
    rng = np.random.default_rng(5)
    V = rng.standard_normal((z.size, 3))
    HV = hessian.hvp(layers, A, m.y, V)
    h = 1e-3
    for k in range(3):
        v = V[:, k]

        def g(zz):
            return flat(np_grad(unflat(dims, zz), m.A, m.y, m.shape))

        d1 = (g(z + h * v) - g(z - h * v)) / (2 * h)
        d2 = (g(z + h / 2 * v) - g(z - h / 2 * v)) / h
        fd = (4 * d2 - d1) / 3
        np.testing.assert_allclose(HV[:, k], fd, rtol=0, atol=1e-8 * np.abs(fd).max())
    # the three input forms agree
    one = hessian.hvp(layers, A, m.y, V[:, 0])
    as_layers = hessian.hvp(layers, A, m.y, unflat(dims, V[:, 0]))
    np.testing.assert_allclose(one, HV[:, 0], rtol=1e-14, atol=0)
    np.testing.assert_allclose(flat(as_layers), HV[:, 0], rtol=1e-14, atol=0)


def test_completion_trace_is_row_times_column_norms():
    m, layers = problem("completion", 3, seed=3)
    A = A_of(m, "completion")
    W1, W2, W3 = layers
    # closed form written out: sum_j ||row r of W_{L:j+1}||^2 ||column c of W_{j-1:1}||^2
    suffixes = [W3 @ W2, W3, np.eye(3)]
    prefixes = [np.eye(4), W1, W2 @ W1]
    expected = 0.0
    for r, c in m.A:
        for S, P in zip(suffixes, prefixes):
            expected += np.sum(S[r] ** 2) * np.sum(P[:, c] ** 2)
    assert hessian.trace(layers, A) == pytest.approx(2.0 / m.y.size * expected, rel=1e-13)


# --------------------------------------------------------------------------- proxy and bound
@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_balanced_factorization_attains_the_proxy_bound(L):
    # isotropic target: M = 0.7 * orthogonal (square, full rank, equal singular values)
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    M = 0.7 * Q
    layers = factorization.balanced_factorization(M, L)
    np.testing.assert_allclose(np_product(layers), M, atol=1e-13)
    for j in range(1, L):  # balancedness
        np.testing.assert_allclose(layers[j].T @ layers[j], layers[j - 1] @ layers[j - 1].T, atol=1e-13)
    bound = hessian.proxy_bound(M, L)
    assert hessian.proxy(layers) == pytest.approx(bound, rel=1e-12)
    # ... and no other factorization goes below it (random factorizations of random M)
    for seed in range(5):
        r = np.random.default_rng(seed)
        dims = [4] + [int(r.integers(3, 7)) for _ in range(L - 1)] + [6]
        Ws = [r.standard_normal((dims[j], dims[j - 1])) for j in range(1, L + 1)]
        assert hessian.proxy(Ws) >= hessian.proxy_bound(np_product(Ws), L) * (1 - 1e-12)


def test_depth_two_rescaled_balanced_factorization_attains_the_bound_for_any_matrix():
    rng = np.random.default_rng(1)
    M = rng.standard_normal((4, 2)) @ rng.standard_normal((2, 6))  # rank 2, d_out=4, d_in=6
    W1, W2 = factorization.balanced_factorization(M, 2)
    c = (4 / 6) ** 0.25  # d_0 ||W_2||^2 = d_2 ||W_1||^2 at the optimum
    assert hessian.proxy([W1 / c, W2 * c]) == pytest.approx(hessian.proxy_bound(M, 2), rel=1e-12)
    assert hessian.proxy([W1, W2]) > hessian.proxy_bound(M, 2) * 1.001


def test_gaussian_trace_concentrates_on_the_proxy():
    # E_A tr H = G for N(0, 1) entries; with many measurements tr H / G -> 1
    m = data.matrix_sensing((4, 5), 1, 4000, seed=0)
    rng = np.random.default_rng(2)
    layers = [rng.standard_normal((3, 5)), rng.standard_normal((3, 3)), rng.standard_normal((4, 3))]
    ratio = hessian.trace(layers, m.A) / hessian.proxy(layers)
    assert abs(ratio - 1) < 0.05


def test_depth_one_trace_is_the_same_for_every_interpolator():
    m = data.matrix_sensing((4, 5), 2, 8, seed=4)
    Amat = m.A.reshape(8, -1)
    x0 = np.linalg.lstsq(Amat, m.y, rcond=None)[0]
    null = np.linalg.svd(Amat)[2][8:]  # basis of the null space
    expected = 2.0 / 8 * np.sum(m.A**2)
    rng = np.random.default_rng(0)
    traces = []
    for _ in range(4):
        X = (x0 + 5.0 * rng.standard_normal(null.shape[0]) @ null).reshape(4, 5)
        assert factorization.loss([X], m.A, m.y) < 1e-20
        traces.append(hessian.trace([X], m.A, m.y))
    np.testing.assert_allclose(traces, expected, rtol=1e-13)
    # whereas at depth 2 different interpolators have different traces
    X1 = x0.reshape(4, 5)
    X2 = (x0 + 3.0 * null[0]).reshape(4, 5)
    t1 = hessian.trace(factorization.balanced_factorization(X1, 2), m.A)
    t2 = hessian.trace(factorization.balanced_factorization(X2, 2), m.A)
    assert abs(t1 - t2) > 0.01 * t1


# --------------------------------------------------------------------------- estimators
def test_hutchinson_is_unbiased_within_three_standard_errors():
    m, layers = problem("gaussian", 3, seed=5)
    exact = hessian.trace(layers, m.A)
    for probe in ("rademacher", "gaussian"):
        ests = [hessian.hutchinson(layers, m.A, m.y, num_matvecs=10, seed=s, probe=probe) for s in range(300)]
        values = np.array([e.estimate for e in ests])
        sem = values.std(ddof=1) / np.sqrt(values.size)
        assert abs(values.mean() - exact) < 3 * sem, (probe, values.mean(), exact, sem)
        # the reported standard error matches the spread over seeds
        reported = np.sqrt(np.mean([e.stderr**2 for e in ests]))
        assert 0.7 < reported / values.std(ddof=1) < 1.4
        assert all(e.num_matvecs == 10 for e in ests)
    # deterministic in the seed
    a = hessian.hutchinson(layers, m.A, m.y, num_matvecs=7, seed=3)
    b = hessian.hutchinson(layers, m.A, m.y, num_matvecs=7, seed=3)
    assert a == b
    est, se = a  # unpacks as (estimate, stderr)
    assert (est, se) == (a.estimate, a.stderr) and se > 0
    assert hessian.hutchinson(layers, m.A, m.y, num_matvecs=7, seed=4).estimate != a.estimate


def test_hutchpp_is_exact_at_zero_loss_with_a_sketch_covering_the_rank():
    m = data.matrix_sensing((4, 5), 1, 5, seed=6)
    layers = factorization.balanced_factorization(m.M_star, 3, width=3)
    assert factorization.loss(layers, m.A, m.y) < 1e-28  # an interpolator
    exact = hessian.trace(layers, m.A)
    H = hessian.dense(layers, m.A, m.y)
    rank = np.linalg.matrix_rank(H, tol=1e-10 * np.abs(H).max())
    assert rank <= 5
    for seed in range(3):
        est = hessian.hutchpp(layers, m.A, m.y, num_matvecs=3 * rank, seed=seed)
        assert est.estimate == pytest.approx(exact, rel=1e-10)
        assert est.stderr < 1e-10 * exact
    # with a smaller sketch it is not exact
    errs = [abs(hessian.hutchpp(layers, m.A, m.y, num_matvecs=3 * (rank - 2), seed=s).estimate - exact)
            for s in range(3)]
    assert max(errs) > 1e-6 * exact


def _low_rank_matrix(dim=60, rank=5, noise=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((dim, rank)))
    lam = np.linspace(10, 1, rank)
    B = rng.standard_normal((dim, dim))
    return U @ np.diag(lam) @ U.T + noise * (B @ B.T) / dim


def test_xtrace_within_its_error_on_a_low_rank_matrix():
    H = _low_rank_matrix()
    exact = np.trace(H)
    z_scores, x_err, h_err = [], [], []
    for seed in range(20):
        x = hessian.xtrace(lambda v: H @ v, dim=60, num_matvecs=20, seed=seed)
        h = hessian.hutchinson(lambda v: H @ v, dim=60, num_matvecs=20, seed=seed)
        z_scores.append((x.estimate - exact) / x.stderr)
        x_err.append(abs(x.estimate - exact))
        h_err.append(abs(h.estimate - exact))
        assert abs(x.estimate - exact) < 4 * x.stderr
    assert np.median(np.abs(z_scores)) < 2
    assert np.median(x_err) < 0.01 * np.median(h_err)  # the low-rank part is captured exactly
    # exact when rank <= k - 1, also through block matvecs
    P = _low_rank_matrix(noise=0.0)
    x = hessian.xtrace(lambda V: P @ V, dim=60, num_matvecs=12, seed=1, block=True)
    assert x.estimate == pytest.approx(np.trace(P), rel=1e-10)


def test_estimators_on_the_model_agree_with_callables():
    m, layers = problem("completion", 2, seed=7)
    A = A_of(m, "completion")
    H = hessian.dense(layers, A, m.y)
    for fn in (hessian.hutchinson, hessian.hutchpp, hessian.xtrace):
        a = fn(layers, A, m.y, num_matvecs=12, seed=9)
        b = fn(lambda v: H @ v, dim=H.shape[0], num_matvecs=12, seed=9)
        assert a.estimate == pytest.approx(b.estimate, rel=1e-10)
        assert a.num_matvecs == b.num_matvecs


# --------------------------------------------------------------------------- bad input
def test_bad_input_raises_value_error_naming_the_argument():
    m, layers = problem("gaussian", 2)
    bad_chain = [layers[0], np.ones((3, 5))]
    with pytest.raises(ValueError, match="layers"):
        hessian.trace(bad_chain, m.A)
    with pytest.raises(ValueError, match="layers"):
        hessian.trace([], m.A)
    nan_layers = [layers[0].copy(), layers[1]]
    nan_layers[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="layers"):
        hessian.trace(nan_layers, m.A)
    with pytest.raises(ValueError, match="layers"):  # product shape 3 x 4 vs measurements of another shape
        hessian.trace([np.ones((2, 3)), np.ones((3, 2))], m.A)
    with pytest.raises(ValueError, match="y"):
        hessian.hvp(layers, m.A, m.y[:-1], np.zeros(sum(W.size for W in layers)))
    with pytest.raises(ValueError, match="y"):
        hessian.hvp(layers, m.A, np.full(m.y.size, np.inf), np.zeros(sum(W.size for W in layers)))
    with pytest.raises(ValueError, match="v"):
        hessian.hvp(layers, m.A, m.y, np.zeros(3))
    with pytest.raises(ValueError, match="A"):
        hessian.trace(layers, np.ones((3, 4)))
    A_nan = m.A.copy()
    A_nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="A"):
        hessian.trace(layers, A_nan)
    with pytest.raises(ValueError, match="A"):
        hessian.trace(layers, factorization.SensingOperator(np.array([[0, 9]]), (3, 4)))
    with pytest.raises(ValueError, match="shape"):
        factorization.sensing_operator(np.array([[0, 1]]))
    with pytest.raises(ValueError, match="num_matvecs"):
        hessian.hutchpp(layers, m.A, m.y, num_matvecs=2)
    with pytest.raises(ValueError, match="num_matvecs"):
        hessian.xtrace(layers, m.A, m.y, num_matvecs=3)
    with pytest.raises(ValueError, match="num_matvecs"):
        hessian.hutchinson(layers, m.A, m.y, num_matvecs=0)
    with pytest.raises(ValueError, match="seed"):
        hessian.hutchinson(layers, m.A, m.y, seed=-1)
    with pytest.raises(ValueError, match="probe"):
        hessian.hutchinson(layers, m.A, m.y, probe="cauchy")
    with pytest.raises(ValueError, match="dim"):
        hessian.hutchinson(lambda v: v)
    with pytest.raises(ValueError, match="matvec"):
        hessian.hutchinson(lambda v: v[:-1], dim=5)
    with pytest.raises(ValueError, match="depth"):
        hessian.proxy_bound(np.eye(3), 0)
