"""Problem generators: numpy in, numpy out, every draw governed by ``seed``.

Conventions (SCIENCE.md): sparse-regression sensing matrices have i.i.d.
N(0, 1/M) entries, so that the columns have unit expected squared norm;
matrix-sensing matrices A_i have i.i.d. N(0, 1) entries (section 3), so that
E <A_i, X>^2 = ||X||_F^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_positive_int, check_seed

__all__ = ["MatrixSensing", "SparseRegression", "matrix_sensing", "sparse_regression"]


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
) -> SparseRegression:
    """Draw a sparse recovery instance.

    ``A`` has i.i.d. N(0, 1/M) entries (M = ``n_measurements``); ``x_star`` has
    ``sparsity`` nonzero entries at uniformly random positions with i.i.d.
    N(0, 1) values (absolute values if ``nonnegative``); ``y = A x_star + e``
    with ``e ~ N(0, noise^2 I)``.
    """
    m = check_positive_int(n_measurements, "n_measurements")
    n = check_positive_int(dim, "dim")
    s = int(sparsity)
    if sparsity != s or not 0 <= s <= n:
        raise ValueError(f"sparsity must be an integer in [0, dim={n}], got {sparsity!r}")
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}")
    rng = np.random.default_rng(check_seed(seed))
    A = rng.standard_normal((m, n)) / np.sqrt(m)
    x_star = np.zeros(n)
    support = rng.choice(n, size=s, replace=False)
    values = rng.standard_normal(s)
    x_star[support] = np.abs(values) if nonnegative else values
    y = A @ x_star
    if noise > 0:
        y = y + noise * rng.standard_normal(m)
    return SparseRegression(A=A, y=y, x_star=x_star)


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
