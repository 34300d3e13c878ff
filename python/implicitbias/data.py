"""Problem generators: numpy in, numpy out, every draw governed by ``seed``.

Conventions (docs/science.md, sections 1.1, 2.1 and 3.1): Gaussian sensing matrices have i.i.d. N(0, 1/M)
entries, so that the columns have unit expected squared norm. Binary
classification data have labels in {-1, +1} (docs/science.md, section 2.1).
Matrix-sensing matrices A_i have i.i.d. N(0, 1) entries (section 3), so that
E <A_i, X>^2 = ||X||_F^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special

from ._validation import check_matrix, check_positive, check_positive_int, check_seed, finite_result

__all__ = [
    "BinaryClassification",
    "MatrixSensing",
    "Regression",
    "SparseRegression",
    "digits_binary",
    "matrix_sensing",
    "separable",
    "sparse_regression",
    "whitened_regression",
]


@dataclass(frozen=True)
class SparseRegression:
    """A noiseless (or noisy) sparse recovery problem ``y = A x_star + noise``.

    Attributes
    ----------
    A : ndarray, shape (M, N)
        Sensing matrix, i.i.d. N(0, 1/M) entries.
    y : ndarray, shape (M,)
        Measurements.
    x_star : ndarray, shape (N,)
        The planted ``sparsity``-sparse vector.
    """

    A: np.ndarray
    y: np.ndarray
    x_star: np.ndarray

    @property
    def support(self) -> np.ndarray:
        """Indices of the nonzero entries of ``x_star``."""
        return np.flatnonzero(self.x_star)


def sparse_regression(
    n_measurements: int,
    dim: int,
    sparsity: int,
    seed: int | None = 0,
    *,
    nonnegative: bool = False,
    noise: float = 0.0,
    entry_std: float | None = None,
) -> SparseRegression:
    """Draw a sparse recovery instance.

    ``A`` has i.i.d. N(0, 1/M) entries (M = ``n_measurements``), or N(0, ``entry_std^2``)
    when ``entry_std`` is given (the same draws, rescaled: ``entry_std = 0.5`` is the
    problem of a paper whose sensing matrix ``X = 2 A`` has N(0, 1) entries); ``x_star`` has
    ``sparsity`` nonzero entries at uniformly random positions with i.i.d.
    N(0, 1) values (absolute values if ``nonnegative``); ``y = A x_star + e``
    with ``e ~ N(0, noise^2 I)``.
    """
    m = check_positive_int(n_measurements, "n_measurements")
    n = check_positive_int(dim, "dim")
    s = check_positive_int(sparsity, "sparsity", minimum=0)
    if s > n:
        raise ValueError(f"sparsity must be an integer in [0, dim={n}], got {sparsity!r}")
    noise = check_positive(noise, "noise", allow_zero=True)
    std = None if entry_std is None else check_positive(entry_std, "entry_std")
    rng = np.random.default_rng(check_seed(seed))
    A = rng.standard_normal((m, n))
    A = A / np.sqrt(m) if std is None else A * std
    x_star = np.zeros(n)
    support = rng.choice(n, size=s, replace=False)
    values = rng.standard_normal(s)
    x_star[support] = np.abs(values) if nonnegative else values
    y = A @ x_star
    if noise > 0:
        with np.errstate(over="ignore"):
            y = finite_result(y + noise * rng.standard_normal(m), "noise", "noisy y")
    return SparseRegression(A=A, y=y, x_star=x_star)


@dataclass(frozen=True)
class BinaryClassification:
    """A binary classification data set with labels in {-1, +1}.

    Attributes
    ----------
    X : ndarray, shape (n, d)
        Inputs.
    y : ndarray, shape (n,)
        Labels, each exactly -1.0 or +1.0; both classes are present.
    w_teacher : ndarray, shape (d,), or None
        The unit-l2-norm planted separator (``y_i = sign(<w_teacher, x_i>)``)
        for synthetic data; None for real data.
    labels : ndarray, shape (n,), or None
        The original class labels (the digit 0..9 for :func:`digits_binary`);
        None for synthetic data.
    """

    X: np.ndarray
    y: np.ndarray
    w_teacher: np.ndarray | None = None
    labels: np.ndarray | None = None


def separable(
    n_samples: int,
    dim: int,
    seed: int | None = 0,
    *,
    margin: float = 0.1,
    sparsity: int | None = None,
) -> BinaryClassification:
    """Linearly separable (through the origin, no bias) data from a teacher.

    The teacher ``w_teacher`` has ``sparsity`` nonzero entries (all ``dim``
    when None) at uniformly random positions with i.i.d. N(0, 1) values,
    normalized to unit l2 norm. The inputs are i.i.d. N(0, I_dim) conditioned
    on ``|<w_teacher, x>| >= margin``, and ``y = sign(<w_teacher, x>)``; so the
    teacher separates the data with l2 margin at least ``margin`` (``margin =
    0`` still separates, almost surely with a positive margin). The
    conditioning is sampled exactly, not by rejection: ``x = s w_teacher + P g``
    with ``g ~ N(0, I)``, ``P`` the projection orthogonal to ``w_teacher`` and
    ``s`` a standard normal restricted to ``|s| >= margin`` (random sign,
    ``|s| = -Phi^{-1}(U Phi(-margin))``, ``U`` uniform on (0, 1]), which has
    the same distribution as dropping the points with ``|<w_teacher, x>| <
    margin``. If all labels came out equal, the last point is replaced by
    ``(-x, -y)`` so that both classes are present.

    Parameters
    ----------
    n_samples : int
        Number of points, >= 2.
    dim : int
        Input dimension, >= 1.
    seed : int or None
        Seed of ``numpy.random.default_rng``.
    margin : float
        Gap ``>= 0`` between the teacher's hyperplane and every point.
    sparsity : int or None
        Number of nonzero teacher entries, in [1, dim]; None for a dense teacher.

    Returns
    -------
    BinaryClassification
        ``.X`` (n_samples, dim), ``.y`` in {-1, +1}, ``.w_teacher``.
    """
    n = check_positive_int(n_samples, "n_samples", minimum=2)
    d = check_positive_int(dim, "dim")
    gap = check_positive(margin, "margin", allow_zero=True)
    if gap > 1e100:
        raise ValueError(f"margin must be <= 1e100 (the points would overflow), got {margin!r}")
    if sparsity is None:
        k = d
    else:
        k = check_positive_int(sparsity, "sparsity")
        if k > d:
            raise ValueError(f"sparsity must be None or an integer in [1, dim={d}], got {sparsity!r}")
    rng = np.random.default_rng(check_seed(seed))
    w = np.zeros(d)
    support = rng.choice(d, size=k, replace=False)
    w[support] = rng.standard_normal(k)
    while not np.any(w != 0):  # probability zero, but keep w_teacher well defined
        w[support] = rng.standard_normal(k)
    w /= np.linalg.norm(w)
    g = rng.standard_normal((n, d))
    g -= np.outer(g @ w, w)
    u = 1.0 - rng.random(n)  # uniform on (0, 1]
    if gap <= 30.0:
        s = -scipy.special.ndtri(u * scipy.special.ndtr(-gap))  # |N(0,1)| given >= gap
    else:  # the same in the log domain (ndtr(-gap) underflows for gap > ~38)
        s = -scipy.special.ndtri_exp(np.log(u) + scipy.special.log_ndtr(-gap))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    s = np.maximum(s, gap) * sign
    X = g + np.outer(s, w)
    y = sign.copy()
    if np.all(y == y[0]):
        X[-1] = -X[-1]
        y[-1] = -y[-1]
    return BinaryClassification(X=X, y=y, w_teacher=w)


def digits_binary(
    standardize: bool = True,
    n_samples: int | None = None,
    seed: int | None = 0,
) -> BinaryClassification:
    """The 8x8 digits of scikit-learn as a binary problem: odd vs even.

    Loads ``sklearn.datasets.load_digits()`` (1797 images of 64 pixels with
    values 0..16, shipped with scikit-learn, no download). Labels: ``y = +1``
    for the odd digits 1, 3, 5, 7, 9 and ``y = -1`` for the even digits
    0, 2, 4, 6, 8. With ``n_samples``, a uniformly random subset of that size
    (drawn with ``seed``, kept in the original order; if it holds only one
    class, its last point is swapped for the first point of the other class in
    the random order). With ``standardize``, every column of the returned
    ``X`` is centered and divided by its standard deviation (``ddof=0``), so
    it has mean 0 and standard deviation 1; constant columns (e.g. pixel 0)
    become 0, never NaN. Otherwise ``X`` holds the raw pixel values as float64.

    Note: odd vs even on the full set is not linearly separable (with or
    without a bias), so :func:`implicitbias.reference.max_margin` raises on
    it; a nonlinear model (e.g. a two-layer ReLU network) is needed.

    Requires scikit-learn (``pip install "implicitbias[digits]"``).

    Parameters
    ----------
    standardize : bool
    n_samples : int or None
        Size of a random subsample, in [2, 1797]; None for all 1797 images.
    seed : int or None
        Seed of ``numpy.random.default_rng`` for the subsample.

    Returns
    -------
    BinaryClassification
        ``.X`` (n, 64), ``.y`` in {-1, +1}, ``.labels`` the digits,
        ``.w_teacher`` None.
    """
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be a bool, got {standardize!r}")
    seed = check_seed(seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "digits_binary needs scikit-learn; install it with "
            '`pip install "implicitbias[digits]"` (or `pip install scikit-learn`)'
        ) from exc
    digits = load_digits()
    X = np.asarray(digits.data, dtype=np.float64)
    labels = np.asarray(digits.target, dtype=np.int64)
    total = X.shape[0]
    if n_samples is not None:
        m = check_positive_int(n_samples, "n_samples", minimum=2)
        if m > total:
            raise ValueError(f"n_samples must be <= {total}, got {m}")
        order = np.random.default_rng(seed).permutation(total)
        idx = order[:m]
        odd = labels[idx] % 2 == 1
        if np.all(odd == odd[0]):
            other = order[m:][(labels[order[m:]] % 2 == 1) != odd[0]][0]
            idx = np.concatenate([idx[:-1], [other]])
        idx = np.sort(idx)
        X, labels = X[idx], labels[idx]
    if standardize:
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        const = std == 0
        X = (X - mean) / np.where(const, 1.0, std)
        X[:, const] = 0.0
    y = np.where(labels % 2 == 1, 1.0, -1.0)
    return BinaryClassification(X=np.ascontiguousarray(X), y=y, labels=labels)


@dataclass(frozen=True)
class MatrixSensing:
    """A low-rank matrix sensing or completion instance ``y_i = <A_i, M_star>``.

    Attributes
    ----------
    A : ndarray
        ``kind="gaussian"``: float array (n, d_out, d_in), i.i.d. N(0, 1)
        entries. ``kind="completion"``: int array (n, 2) of distinct
        (row, column) index pairs, ``A_i = e_row e_col^T`` (never densified).
        Either form is accepted as ``A`` by :mod:`implicitbias.factorization`
        and :mod:`implicitbias.hessian`.
    y : ndarray (n,)
        Measurements.
    M_star : ndarray (d_out, d_in)
        The planted rank-``rank`` matrix ``U V^T``, scaled to
        ``||M_star||_F = sqrt(rank)`` (singular values near 1).
    kind : str
    shape : tuple (d_out, d_in)
    """

    A: np.ndarray
    y: np.ndarray
    M_star: np.ndarray
    kind: str
    shape: tuple

    @property
    def n_measurements(self) -> int:
        return int(self.y.shape[0])


def matrix_sensing(
    shape: tuple = (20, 20),
    rank: int = 2,
    n_measurements: int = 300,
    kind: str = "gaussian",
    seed: int | None = 0,
) -> MatrixSensing:
    """Draw a low-rank matrix sensing (``"gaussian"``) or completion instance.

    ``M_star = U V^T * sqrt(rank) / ||U V^T||_F`` with ``U`` (d_out, rank) and
    ``V`` (d_in, rank) i.i.d. N(0, 1). Gaussian sensing: ``A_i`` i.i.d. N(0, 1)
    entries. Completion: ``n_measurements`` distinct entries drawn uniformly
    without replacement (so ``n_measurements <= d_out * d_in``).
    ``y_i = <A_i, M_star>`` (noiseless).
    """
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a pair (d_out, d_in), got {shape!r}")
    d_out = check_positive_int(shape[0], "shape")
    d_in = check_positive_int(shape[1], "shape")
    r = check_positive_int(rank, "rank")
    if r > min(d_out, d_in):
        raise ValueError(f"rank must be <= min(shape) = {min(d_out, d_in)}, got {r}")
    n = check_positive_int(n_measurements, "n_measurements")
    if kind not in ("gaussian", "completion"):
        raise ValueError(f"kind must be 'gaussian' or 'completion', got {kind!r}")
    rng = np.random.default_rng(check_seed(seed))
    U = rng.standard_normal((d_out, r))
    V = rng.standard_normal((d_in, r))
    M = U @ V.T
    M *= np.sqrt(r) / np.linalg.norm(M)
    if kind == "gaussian":
        A = rng.standard_normal((n, d_out, d_in))
        y = np.einsum("nij,ij->n", A, M)
    else:
        if n > d_out * d_in:
            raise ValueError(f"n_measurements must be <= d_out * d_in = {d_out * d_in} for completion, got {n}")
        flat = rng.choice(d_out * d_in, size=n, replace=False)
        A = np.stack([flat // d_in, flat % d_in], axis=1).astype(np.int64)
        y = M[A[:, 0], A[:, 1]].copy()
    return MatrixSensing(A=A, y=y, M_star=M, kind=kind, shape=(d_out, d_in))


@dataclass(frozen=True)
class Regression:
    """A noiseless linear regression data set ``Y = X A_true^T`` (deep linear regression).

    Attributes
    ----------
    X : ndarray (n, d_in)
        Inputs, whitened: ``X^T X / n = I``.
    Y : ndarray (n, d_out)
        Targets ``X A_true^T``.
    A_true : ndarray (d_out, d_in)
        The planted map.

    ``(X, Y)`` is accepted as ``(A, y)`` by :mod:`implicitbias.factorization` and :mod:`implicitbias.hessian`.
    """

    X: np.ndarray
    Y: np.ndarray
    A_true: np.ndarray


def whitened_regression(
    n: int = 20,
    d_in: int = 20,
    d_out: int | None = None,
    A_true: np.ndarray | None = None,
    seed: int | None = 0,
) -> Regression:
    """Whitened regression data of the edge-of-stability setup.

    ``X = sqrt(n) Q`` with ``Q`` (n, d_in) the orthonormal factor of a QR of an
    i.i.d. N(0, 1) matrix (needs ``n >= d_in``), so ``X^T X / n = I`` exactly
    (for ``n = d_in`` this is the ``X = Q sqrt(d)`` of Cohen et al. 2021); ``Y = X A_true^T``.
    ``A_true`` (d_out, d_in) defaults to i.i.d. N(0, 1/d_in) entries
    (``d_out`` defaults to ``d_in``; with ``A_true`` given, ``d_out`` must be
    None or its row count). ``seed`` draws ``Q`` and then the default ``A_true``.
    """
    n = check_positive_int(n, "n")
    d_in = check_positive_int(d_in, "d_in")
    if n < d_in:
        raise ValueError(f"n must be >= d_in = {d_in} for whitened inputs, got {n}")
    rng = np.random.default_rng(check_seed(seed))
    Q = np.linalg.qr(rng.standard_normal((n, d_in)))[0]
    X = np.sqrt(n) * Q
    if A_true is None:
        k = d_in if d_out is None else check_positive_int(d_out, "d_out")
        A = rng.standard_normal((k, d_in)) / np.sqrt(d_in)
    else:
        A = check_matrix(A_true, "A_true").copy()
        if A.shape[1] != d_in:
            raise ValueError(f"A_true must have shape (d_out, {d_in}), got {A.shape}")
        if d_out is not None and check_positive_int(d_out, "d_out") != A.shape[0]:
            raise ValueError(f"d_out ({d_out}) does not match A_true's rows ({A.shape[0]})")
    return Regression(X=X, Y=X @ A.T, A_true=A)
