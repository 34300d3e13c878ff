"""Problem generators: numpy in, numpy out, every draw governed by ``seed``.

Conventions (SCIENCE.md): Gaussian sensing matrices have i.i.d. N(0, 1/M)
entries, so that the columns have unit expected squared norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_positive_int, check_seed

__all__ = ["SparseRegression", "sparse_regression"]


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
