"""Tests for the Hessian's spectrum (implicitbias.hessian: operators, eigenvalues, density; docs/science.md, 3.9).

References: ``numpy.linalg.eigh`` of dense Hessians built independently (the
diagonal network's Hessian by central differences of a NumPy gradient, the
factorization's from exact HVPs of the unit basis, checked in test_hessian.py
against finite differences), closed forms (``0.5 (1 - x y)^2``), and known
spectra (diagonal and rotated diagonal matrices).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from scipy.sparse.linalg import aslinearoperator

from implicitbias import factorization, hessian


def rotated(eigs, seed=0):
    """``Q diag(eigs) Q^T`` for a random orthogonal Q: a symmetric matrix with a known spectrum."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
    return (Q * np.asarray(eigs)) @ Q.T


def factorization_model(seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((6, 4, 3)) / np.sqrt(6)
    layers = [rng.standard_normal((3, 3)) * 0.7, rng.standard_normal((4, 3)) * 0.7]
    y = rng.standard_normal(6)  # nonzero residual: H is indefinite
    return layers, A, y


# --------------------------------------------------------------------------- the diagonal network's Hessian
def np_diag_grad(z, A, y, L, nonneg):
    N = A.shape[1]
    u = z[:N]
    if nonneg:
        x = u**L
        return L * u ** (L - 1) * (A.T @ (A @ x - y))
    v = z[N:]
    g = A.T @ (A @ (u**L - v**L) - y)
    return np.concatenate([L * u ** (L - 1) * g, -L * v ** (L - 1) * g])


def fd_hessian(grad, z, h=1e-5):
    """Central differences of the gradient, Richardson-extrapolated (error O(h^4))."""
    def cd(step):
        H = np.empty((z.size, z.size))
        for i in range(z.size):
            e = np.zeros(z.size)
            e[i] = step
            H[:, i] = (grad(z + e) - grad(z - e)) / (2 * step)
        return H
    H = (4 * cd(h / 2) - cd(h)) / 3
    return 0.5 * (H + H.T)


@pytest.mark.parametrize("L,nonneg", [(2, False), (3, False), (2, True), (4, True)])
def test_diagonal_hessian_matches_finite_differences(L, nonneg):
    rng = np.random.default_rng(L)
    M, N = 4, 6
    A = rng.standard_normal((M, N)) / np.sqrt(M)
    y = rng.standard_normal(M)
    u = rng.uniform(0.3, 1.2, N) * rng.choice([-1, 1], N)
    v = None if nonneg else rng.uniform(0.3, 1.2, N)
    op = hessian.diagonal_operator(u, v, A, y, depth=L)
    z = u if nonneg else np.concatenate([u, v])
    H_fd = fd_hessian(lambda w: np_diag_grad(w, A, y, L, nonneg), z)
    H = op.dense()
    assert op.shape == (z.size, z.size)
    np.testing.assert_allclose(H, H_fd, atol=1e-8 * np.abs(H).max())
    V = rng.standard_normal((z.size, 3))
    np.testing.assert_allclose(op @ V, H @ V, rtol=0, atol=1e-13 * np.abs(H).max() * z.size)
    np.testing.assert_allclose(op.matvec(V[:, 0]), H @ V[:, 0], rtol=0, atol=1e-13 * np.abs(H).max() * z.size)
    ev = hessian.eigenvalues(op, k=4, which="both", tol=1e-13)
    exact = np.linalg.eigvalsh(H)
    np.testing.assert_allclose(ev.values, np.r_[exact[:2], exact[-2:]], rtol=0, atol=1e-10 * np.abs(exact).max())


def test_diagonal_operator_rejects_bad_input():
    A = np.ones((2, 3))
    with pytest.raises(ValueError, match="depth"):
        hessian.diagonal_operator(np.ones(3), np.ones(3), A, np.ones(2), depth=1)
    with pytest.raises(ValueError, match="v"):
        hessian.diagonal_operator(np.ones(3), np.ones(2), A, np.ones(2))
    with pytest.raises(ValueError, match="y"):
        hessian.diagonal_operator(np.ones(3), np.ones(3), A, np.ones(3))
    op = hessian.diagonal_operator(np.ones(3), np.ones(3), A, np.ones(2))
    with pytest.raises(ValueError, match="v must be"):
        op.matvec(np.ones(5))


# --------------------------------------------------------------------------- eigenvalues
@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_factorization_eigenvalues_match_eigh(which):
    layers, A, y = factorization_model()
    H = hessian.dense(layers, A, y)
    exact = np.linalg.eigvalsh(H)
    ev = hessian.eigenvalues(layers, A, y, k=3, which=which, tol=1e-13, return_vectors=True)
    want = {"largest": exact[-3:], "smallest": exact[:3], "both": np.r_[exact[:1], exact[-2:]]}[which]
    scale = np.abs(exact).max()
    np.testing.assert_allclose(ev.values, want, rtol=0, atol=1e-10 * scale)
    assert ev.converged and ev.num_matvecs <= H.shape[0] + 3
    # the vectors are orthonormal eigenvectors: residuals recomputed from the dense matrix
    V = ev.vectors
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-12)
    res = np.linalg.norm(H @ V - V * ev.values, axis=0)
    np.testing.assert_allclose(ev.residuals, res, rtol=0, atol=1e-12 * scale)


def test_model_and_operator_and_linear_operator_agree():
    layers, A, y = factorization_model(1)
    op = hessian.operator(layers, A, y)
    H = hessian.dense(layers, A, y)
    np.testing.assert_allclose(op.dense(), H, rtol=0, atol=1e-14 * np.abs(H).max())
    a = hessian.eigenvalues(layers, A, y, k=2, tol=1e-12)
    for target, kw in [(op, {}), (op.aslinearoperator(), {}), (aslinearoperator(H), {}), (H, {}),
                       (lambda v: H @ v, {"dim": H.shape[0]})]:
        b = hessian.eigenvalues(target, k=2, tol=1e-12, **kw)
        np.testing.assert_allclose(b.values, a.values, rtol=0, atol=1e-10 * np.abs(H).max())
    # the trace estimators take the operator too
    t = hessian.hutchpp(op, num_matvecs=3 * H.shape[0])
    assert t.estimate == pytest.approx(np.trace(H), abs=1e-10 * np.abs(H).max())


def test_degenerate_eigenvalues_by_subspace_angles():
    eigs = np.r_[5.0, 5.0, 5.0, np.linspace(-1.0, 3.0, 147)]
    H = rotated(eigs, seed=3)
    _, U = np.linalg.eigh(H)
    ev = hessian.eigenvalues(H, k=3, block_size=3, tol=1e-11, return_vectors=True)
    np.testing.assert_allclose(ev.values, [5.0, 5.0, 5.0], rtol=0, atol=1e-10)
    assert ev.basis_size < H.shape[0]  # converged before the basis filled the space
    assert np.max(subspace_angles(ev.vectors, U[:, -3:])) < 1e-8
    # both ends: the eigenspace of 5 and the bottom vector
    ev2 = hessian.eigenvalues(H, k=4, which="both", block_size=4, tol=1e-11, return_vectors=True)
    assert np.max(subspace_angles(ev2.vectors[:, 2:], U[:, -3:])) < 1e-8
    assert np.max(subspace_angles(ev2.vectors[:, :2], U[:, :2])) < 1e-6


def test_residual_bounds_hold_when_unconverged():
    eigs = np.r_[np.linspace(0.0, 1.0, 150), 1.05, 1.1, 1.2]
    H = rotated(eigs, seed=4)
    with pytest.warns(RuntimeWarning, match="max_matvecs"):
        ev = hessian.eigenvalues(H, k=3, max_matvecs=12, tol=1e-12)
    assert not ev.converged
    assert np.all(ev.residuals > 1e-6)  # genuinely unconverged: the bound is not vacuous
    for theta, r in zip(ev.values, ev.residuals):
        assert np.min(np.abs(eigs - theta)) <= r * (1 + 1e-12)


def test_warm_start_cuts_the_matvec_count():
    eigs = np.r_[np.linspace(0.0, 1.0, 200), 1.3, 1.5, 2.0]
    H = rotated(eigs, seed=5)
    cold = hessian.eigenvalues(H, k=3, tol=1e-9)
    same = hessian.eigenvalues(H, k=3, tol=1e-9, start=cold)
    assert same.num_matvecs < cold.num_matvecs / 3
    # a nearby operator (as between two steps of training) also starts closer
    E = rotated(np.linspace(-1, 1, 203), seed=6) * 1e-3
    cold2 = hessian.eigenvalues(H + E, k=3, tol=1e-9)
    warm2 = hessian.eigenvalues(H + E, k=3, tol=1e-9, start=cold)
    np.testing.assert_allclose(warm2.values, cold2.values, rtol=0, atol=1e-8)
    assert warm2.num_matvecs < cold2.num_matvecs
    # a start array works too
    assert hessian.eigenvalues(H, k=3, tol=1e-9, start=cold._start).num_matvecs == same.num_matvecs


def test_scalar_depth_two_at_the_minimum():
    """0.5 (1 - x y)^2 at x y = 1: eigenvalues 0 and x^2 + y^2."""
    x, y = 2.0, 0.5
    # as a 1x1 depth-2 factorization: (1/n)(<A, W2 W1> - label)^2 with n = 1, A = label = 1/sqrt 2
    c = 1.0 / np.sqrt(2.0)
    ev = hessian.eigenvalues([np.array([[x]]), np.array([[y]])], np.array([[[c]]]), np.array([c]), k=2,
                             which="both", tol=1e-14)
    np.testing.assert_allclose(ev.values, [0.0, x * x + y * y], rtol=0, atol=1e-14)
    # the closed-form Hessian [[y^2, 2xy - 1], [2xy - 1, x^2]] as a Python operator
    H = np.array([[y * y, 2 * x * y - 1], [2 * x * y - 1, x * x]])
    ev2 = hessian.eigenvalues(lambda v: H @ v, k=1, dim=2, which="smallest")
    assert abs(ev2.values[0]) < 1e-14 and ev2.residuals[0] < 1e-14


def test_eigenvalues_are_deterministic_in_the_seed():
    layers, A, y = factorization_model(3)
    a = hessian.eigenvalues(layers, A, y, k=2, tol=1e-12, seed=4, return_vectors=True)
    b = hessian.eigenvalues(layers, A, y, k=2, tol=1e-12, seed=4, return_vectors=True)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    c = hessian.eigenvalues(layers, A, y, k=2, tol=1e-12, seed=5)
    np.testing.assert_allclose(c.values, a.values, rtol=0, atol=1e-10 * np.abs(a.values).max())


def test_results_do_not_depend_on_how_the_products_are_blocked():
    """A callable on single vectors and one on blocks give bitwise the same eigenpairs and density when
    their products are bitwise the same (an elementwise diagonal operator)."""
    d = np.r_[np.linspace(-1.0, 2.0, 57), 3.0, 3.5]
    one = hessian.eigenvalues(lambda v: d * v, dim=d.size, k=3, tol=1e-12)
    blk = hessian.eigenvalues(lambda V: d[:, None] * V, dim=d.size, k=3, tol=1e-12, block=True)
    np.testing.assert_array_equal(one.values, blk.values)
    np.testing.assert_array_equal(one.residuals, blk.residuals)
    s1 = hessian.density(lambda v: d * v, dim=d.size, num_probes=5, steps=10)
    s2 = hessian.density(lambda V: d[:, None] * V, dim=d.size, num_probes=5, steps=10, block=True)
    np.testing.assert_array_equal(s1.density, s2.density)


def test_eigenvalues_reject_bad_input():
    H = rotated(np.arange(6.0))
    with pytest.raises(ValueError, match="k must be <="):
        hessian.eigenvalues(H, k=7)
    with pytest.raises(ValueError, match="k must be"):
        hessian.eigenvalues(H, k=0)
    with pytest.raises(ValueError, match="which"):
        hessian.eigenvalues(H, which="middle")
    with pytest.raises(ValueError, match="not symmetric"):
        hessian.eigenvalues(H + np.triu(np.ones((6, 6)), 1))
    N = rotated(np.arange(20.0)) + np.triu(np.ones((20, 20)), 1)
    with pytest.raises(ValueError, match="not symmetric"):
        hessian.eigenvalues(lambda v: N @ v, dim=20, k=2)
    with pytest.raises(ValueError, match="square"):
        hessian.eigenvalues(np.ones((3, 4)))
    with pytest.raises(ValueError, match="dim is required"):
        hessian.eigenvalues(lambda v: v)
    with pytest.raises(ValueError, match="A and y"):
        hessian.eigenvalues(H, np.ones(3))
    with pytest.raises(ValueError, match="start must have 6 rows"):
        hessian.eigenvalues(H, start=np.ones((5, 1)))
    with pytest.raises(ValueError, match="shape"):
        hessian.eigenvalues(lambda v: v[:-1], dim=6)
    with pytest.raises(ValueError, match="max_matvecs"):
        hessian.eigenvalues(H, k=3, max_matvecs=2)
    with pytest.raises(ValueError, match="y is required"):
        hessian.eigenvalues(*factorization_model()[:2])


# --------------------------------------------------------------------------- density
def test_density_moments_on_a_known_spectrum():
    eigs = np.r_[np.linspace(-1.0, 1.0, 50), np.full(10, 3.0)]
    H = np.diag(eigs)
    for probe in ("rademacher", "gaussian"):
        sd = hessian.density(H, num_probes=40, steps=6, probe=probe, seed=1)
        for w in sd.weights:
            assert w.sum() == pytest.approx(1.0, abs=1e-13)
        orders = np.arange(1, 9)  # exact per probe up to degree 2 * steps - 1 = 11
        mean, se = sd.moments(orders)
        exact = np.array([np.mean(eigs**p) for p in orders])
        # (the first moment of a diagonal H is exact for every Rademacher probe: se = 0 there)
        assert np.all(np.abs(mean - exact) <= 3 * se + 1e-12 * np.abs(exact)), (probe, mean - exact, se)
        assert sd.num_matvecs <= 40 * 6


def test_density_per_point_within_its_standard_errors():
    eigs = np.r_[np.linspace(0.0, 1.0, 30), np.full(5, 2.0), -0.5]
    H = rotated(eigs, seed=8)
    sd = hessian.density(H, num_probes=30, steps=36, width=0.05, grid=np.linspace(-1, 3, 81), seed=2)
    # steps >= dim: each probe's quadrature is exact, only the probes' randomness is left
    exact = np.exp(-0.5 * ((sd.grid[:, None] - eigs[None, :]) / 0.05) ** 2).sum(axis=1) / (
        eigs.size * 0.05 * np.sqrt(2 * np.pi))
    z = np.abs(sd.density - exact) / np.maximum(sd.stderr, 1e-300)
    big = sd.stderr > 1e-6 * sd.density.max()
    assert np.mean(z[big] <= 3) >= 0.95 and np.max(z[big]) < 5
    np.testing.assert_allclose(sd.density[~big], exact[~big], atol=1e-6 * sd.density.max())
    assert np.trapezoid(sd.density, sd.grid) == pytest.approx(1.0, abs=1e-6)


def test_density_on_the_factorization_model_matches_its_spectrum():
    layers, A, y = factorization_model(2)
    H = hessian.dense(layers, A, y)
    exact = np.linalg.eigvalsh(H)
    sd = hessian.density(layers, A, y, num_probes=30, steps=8, seed=3)
    mean, se = sd.moments([1, 2, 3, 4])
    want = np.array([np.mean(exact**p) for p in (1, 2, 3, 4)])
    assert np.all(np.abs(mean - want) <= 3 * se)
    # the extreme nodes converge to the extreme eigenvalues
    assert max(n.max() for n in sd.nodes) == pytest.approx(exact[-1], rel=1e-6)


def test_density_rejects_bad_input_and_plots():
    H = np.diag(np.arange(5.0))
    with pytest.raises(ValueError, match="num_probes"):
        hessian.density(H, num_probes=0)
    with pytest.raises(ValueError, match="probe"):
        hessian.density(H, probe="uniform")
    with pytest.raises(ValueError, match="width"):
        hessian.density(H, width=-1.0)
    sd = hessian.density(H, num_probes=1, steps=5)
    assert np.all(np.isnan(sd.stderr))
    pytest.importorskip("matplotlib")
    ax = hessian.density(H, num_probes=4, steps=5).plot()
    assert ax.get_xlabel() == "eigenvalue"


@pytest.mark.parametrize("n", [6, 40])  # 40 > d_in + d_out: the data are kept as a QR factor
def test_eigenvalues_on_regression_data_match_eigh(n):
    """Deep linear regression (X, Y): the operator's eigenvalues equal those of the dense Hessian, also when
    the regression data are compressed (the targets then live in the factor's rows, not the samples')."""
    rng = np.random.default_rng(n)
    X, Y = rng.standard_normal((n, 4)), rng.standard_normal((n, 3))
    layers = factorization.initial_layers((3, 4), 2, width=3, init_scale=0.5, seed=1)
    dense = hessian.dense(layers, X, Y)
    want = np.linalg.eigvalsh(dense)
    for which, ends in (("largest", want[-3:]), ("smallest", want[:3])):
        got = hessian.eigenvalues(layers, X, Y, k=3, which=which)
        np.testing.assert_allclose(got.values, ends, rtol=1e-10, atol=1e-10 * np.abs(want).max())
