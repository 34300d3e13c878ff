"""The Hessian of deep matrix factorization: exact trace, its gradient, HVPs, estimators.

For layers ``W_1..W_L`` (see :mod:`implicitbias.factorization`), measurements
``A`` and labels ``y``, ``H`` is the Hessian of
``Loss(W) = (1/n) sum_i (<A_i, E> - y_i)^2`` with respect to the stacked
layers (:func:`implicitbias.factorization.pack` order). Units: ``H`` has
units of ``Loss`` per squared parameter; ``tr H`` is a sum of curvatures.

Exact closed form at every point (docs/science.md, section 3.2)::

    tr H = (2/n) sum_i sum_j ||W_{L:j+1}^T A_i W_{j-1:1}^T||_F^2

(``W_{b:a} = W_b ... W_a``, empty products are identities). It does not depend
on ``y``: the residual part of ``H`` has zero diagonal blocks because each
``f_i = <A_i, E>`` is linear in each single layer. For entry sampling each term
is a product of a row norm and a column norm, so the trace costs O(n L) after
the products.

Regression data (``A = X`` with a 2-D ``y = Y``, or a
:class:`~implicitbias.factorization.RegressionOperator` with ``y=None``) has
``Loss = (1/n) ||E X^T - Y^T||_F^2`` and the closed form
``tr H = 2 sum_j ||W_{L:j+1}||_F^2 <X^T X / n, W_{j-1:1}^T W_{j-1:1}>``
(docs/families/factorization.md, "Deep linear regression").

Stochastic estimators (:func:`hutchinson`, :func:`hutchpp`, :func:`xtrace`)
take a budget of Hessian-vector products and a seed; they work for this model
(first argument: the layers) and for any symmetric operator given as a Python
callable ``matvec(v) -> H v`` (first argument: the callable, with ``dim``).

The spectrum (docs/science.md, section 3.9): :func:`eigenvalues` (block
Lanczos with residual error bounds and warm starts) and :func:`density`
(stochastic Lanczos quadrature with standard errors) on this model, on the
diagonal network's exact Hessian (:func:`diagonal_operator`), or on any
symmetric operator (:func:`as_operator`: a dense array, a scipy
``LinearOperator``, a callable).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _batch
from ._family import core_names
from ._native import core
from ._validation import (
    check_choice,
    check_matrix,
    check_positive,
    check_positive_int,
    check_seed,
    check_vector,
    finite_result,
)
from .factorization import RegressionOperator, _checked, _product, pack, unpack

__all__ = [
    "Eigenpairs", "HessianOperator", "SpectralDensity", "TraceEstimate", "as_operator", "dense", "density",
    "diagonal_operator", "eigenvalues", "hutchinson", "hutchpp", "hvp", "operator", "proxy", "proxy_bound", "trace",
    "trace_gradient", "xtrace",
]


class TraceEstimate(tuple[float, float]):
    """``(estimate, stderr)`` (unpacks as a pair), with ``.num_matvecs`` the products used.

    ``stderr`` is the estimator's standard error where the method defines one
    (Hutchinson: sample std / sqrt(probes); Hutch++: that of its Hutchinson
    part; XTrace: std of its exchangeable estimates / sqrt(count)); NaN if
    undefined (e.g. a single probe).
    """

    num_matvecs: int

    def __new__(cls, estimate: float, stderr: float, num_matvecs: int) -> TraceEstimate:
        self = super().__new__(cls, (float(estimate), float(stderr)))
        self.num_matvecs = int(num_matvecs)
        return self

    @property
    def estimate(self) -> float:
        return self[0]

    @property
    def stderr(self) -> float:
        return self[1]

    def __repr__(self) -> str:
        return f"TraceEstimate(estimate={self[0]!r}, stderr={self[1]!r}, num_matvecs={self.num_matvecs})"


def trace(layers: Any, A: Any, y: Any = None) -> float:
    """Exact ``tr Hess Loss`` at ``layers`` (``y`` is accepted but not needed)."""
    dims, z, op, _ = _checked(layers, A, y, prepare=False)
    return finite_result(float(core.factorization_trace(op._core, dims, z)), "layers", "trace")


def trace_gradient(layers: Any, A: Any, y: Any = None) -> tuple[float, list[np.ndarray]]:
    """``(tr H, d tr H / d W_j for each layer)``, exact (differentiated closed form)."""
    dims, z, op, _ = _checked(layers, A, y, prepare=False)
    t, g = core.factorization_trace_gradient(op._core, dims, z)
    finite_result(g, "layers", "trace gradient")
    return finite_result(float(t), "layers", "trace"), unpack(dims, g)


def hvp(layers: Any, A: Any, y: Any, v: Any) -> Any:
    """Exact Hessian-vector product, including the residual term::

        H v = (2/n) sum_i [ <grad f_i, v> grad f_i + r_i (Hess f_i) v ],  r = f - y.

    ``v``: a list of arrays shaped like the layers (returns a list), a
    vector of length ``n_params`` (returns a vector) or a matrix
    ``(n_params, k)`` of k directions (returns ``H V``).
    """
    dims, z, op, yv = _checked(layers, A, y, prepare=False)
    D = z.size
    as_list = isinstance(v, (list, tuple))
    if as_list:
        vd, vz = pack(v, "v")
        if vd != dims:
            raise ValueError(f"v must have the layers' shapes {dims}, got {vd}")
        V = vz[:, None]
    else:
        try:
            nd = np.ndim(v)
        except ValueError:  # ragged nested lists
            nd = -1
        if nd == 1:
            V = check_vector(v, "v", D)[:, None]
        elif nd == 2:
            V = check_matrix(v, "v")
            if V.shape[0] != D:
                raise ValueError(f"v must have shape ({D}, k), got {V.shape}")
        else:
            raise ValueError(f"v must be a vector of {D} entries or a ({D}, k) matrix")
    out = finite_result(np.asarray(core.factorization_hvp(op._core, dims, z, yv, np.asfortranarray(V))), "layers",
                        "Hessian-vector product")
    if as_list:
        return unpack(dims, out[:, 0])
    return out[:, 0] if np.ndim(v) == 1 else out


def dense(layers: Any, A: Any, y: Any) -> np.ndarray:
    """The full Hessian ``(n_params, n_params)`` from exact HVPs on the unit basis (small models)."""
    dims, z, op, yv = _checked(layers, A, y, prepare=False)
    return finite_result(np.asarray(core.factorization_hvp(op._core, dims, z, yv, np.eye(z.size))), "layers",
                         "Hessian")


def proxy(layers: Any) -> float:
    """The isotropic proxy ``G(W) = 2 sum_j ||W_{L:j+1}||_F^2 ||W_{j-1:1}||_F^2``.

    Boundary factors ``||W_{L:L+1}||_F^2 = d_L`` and ``||W_{0:1}||_F^2 = d_0``.
    ``G`` is the expectation of ``tr H`` over Gaussian ``A_i`` with N(0, 1)
    entries, and under RIP ``tr H`` is within ``(1 +- delta)`` of ``G``.
    """
    dims, z = pack(layers)
    Ws = unpack(dims, z)
    L = len(Ws)
    total = 0.0
    for j in range(1, L + 1):
        right = float(dims[0]) if j == 1 else float(np.sum(_product(Ws[:j - 1]) ** 2))
        left = float(dims[-1]) if j == L else float(np.sum(_product(Ws[j:]) ** 2))
        total += left * right
    return 2.0 * total


def proxy_bound(M: Any, depth: int) -> float:
    """``2 L (d_0 d_L)^(1/L) ||M||_*^(2(L-1)/L)``: the minimum of :func:`proxy` over factorizations of M."""

    M = check_matrix(M, "M")
    L = check_positive_int(depth, "depth")
    nuc = float(np.sum(np.linalg.svd(M, compute_uv=False)))
    d_out, d_in = M.shape
    return 2.0 * L * (d_in * d_out) ** (1.0 / L) * nuc ** (2.0 * (L - 1) / L)


# --------------------------------------------------------------------------- estimators
def _estimate(method: str, target: Any, A: Any, y: Any, num_matvecs: int, seed: int | None, probe: str,
              dim: int | None, block: bool) -> TraceEstimate:
    m = check_positive_int(num_matvecs, "num_matvecs", minimum={"hutchinson": 1, "hutchpp": 3, "xtrace": 4}[method])
    sd = check_seed(seed)
    sd = 0 if sd is None else sd
    check_choice(probe, "probe", core_names(core.Probe))
    if isinstance(target, HessianOperator):
        dim = target.dim if dim is None else dim
        block = True
    if callable(target):
        if dim is None:
            raise ValueError("dim is required when the first argument is a matvec callable")
        D = check_positive_int(dim, "dim")
        if A is not None or y is not None:
            raise ValueError("A and y must be None when a matvec callable is given")
        fn: Callable = target

        def checked(v: np.ndarray) -> np.ndarray:
            out = np.asarray(fn(v), dtype=np.float64)
            if out.shape != v.shape:
                raise ValueError(f"matvec returned shape {out.shape}, expected {v.shape}")
            if not np.all(np.isfinite(out)):
                raise ValueError("matvec returned NaN or inf")
            return out

        est, se, used = core.callable_estimate(_batch.enum(core.TraceEstimator, method), checked, D, m, sd,
                                               _batch.enum(core.Probe, probe), bool(block))
    else:
        if y is None and not isinstance(A, RegressionOperator):
            raise ValueError("y is required for the model's Hessian")
        dims, z, op, yv = _checked(target, A, y, prepare=False)
        est, se, used = core.factorization_estimate(_batch.enum(core.TraceEstimator, method), op._core, dims, z, yv,
                                                     m, sd, _batch.enum(core.Probe, probe))
        finite_result(np.array([est, 0.0 if np.isnan(se) else se]), "layers", f"{method} estimate")  # NaN se: undefined
    return TraceEstimate(float(est), float(se), int(used))


def hutchinson(layers: Any, A: Any = None, y: Any = None, *, num_matvecs: int = 100, seed: int | None = 0,
               probe: str = "rademacher", dim: int | None = None, block: bool = False) -> TraceEstimate:
    """Hutchinson's estimator ``(1/m) sum_k z_k^T H z_k`` with m = ``num_matvecs`` probes.

    ``probe``: ``"rademacher"`` (+-1 entries) or ``"gaussian"`` (N(0, 1)).
    Unbiased; ``stderr`` = sample standard deviation / sqrt(m).
    ``layers`` may be a callable ``matvec(v) -> H v`` on vectors of length
    ``dim`` (or on ``(dim, k)`` blocks when ``block=True``).
    """
    return _estimate("hutchinson", layers, A, y, num_matvecs, seed, probe, dim, block)


def hutchpp(layers: Any, A: Any = None, y: Any = None, *, num_matvecs: int = 99, seed: int | None = 0,
            probe: str = "rademacher", dim: int | None = None, block: bool = False) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021) with ``num_matvecs`` products.

    ``k = num_matvecs // 3``: ``Q = orth(H S)`` for k random probes S,
    ``tr(Q^T H Q)`` exactly, plus Hutchinson with the remaining probes on
    ``(I - QQ^T) H (I - QQ^T)``. Exact (to rounding) when ``rank(H) <= k``,
    e.g. at zero loss, where ``rank(H) <= n``. Arguments as :func:`hutchinson`.
    """
    return _estimate("hutchpp", layers, A, y, num_matvecs, seed, probe, dim, block)


def xtrace(layers: Any, A: Any = None, y: Any = None, *, num_matvecs: int = 100, seed: int | None = 0,
           probe: str = "rademacher", dim: int | None = None, block: bool = False) -> TraceEstimate:
    """XTrace (Epperly, Tropp & Webber 2024), the exchangeable trace estimator.

    ``k = num_matvecs // 2`` probes ``omega_i``; for each i, a low-rank
    approximation from the other k - 1 products plus a Hutchinson correction
    with ``omega_i``; the estimate is the mean of the k (unbiased) estimates
    and ``stderr`` their standard deviation / sqrt(k). Exact when
    ``rank(H) <= k - 1``. Arguments as :func:`hutchinson`.
    """
    return _estimate("xtrace", layers, A, y, num_matvecs, seed, probe, dim, block)


# --------------------------------------------------------------------------- operators, eigenvalues, density
class HessianOperator:
    """A symmetric operator ``H`` given by exact products (built by :func:`operator`,
    :func:`diagonal_operator` or :func:`as_operator`).

    ``H @ v`` / :meth:`matvec` take a vector of length ``dim`` or a ``(dim, k)``
    block; :meth:`dense` forms the matrix (small sizes); :meth:`aslinearoperator`
    wraps it for :mod:`scipy.sparse.linalg`. :func:`eigenvalues`, :func:`density`
    and the trace estimators accept it directly.
    """

    def __init__(self, core_op: Any, dense: Callable[[], np.ndarray] | None = None) -> None:
        self._core = core_op
        self._dense = dense

    @property
    def dim(self) -> int:
        """Number of parameters (the operator is ``dim x dim``)."""
        return int(self._core.dim)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    @property
    def kind(self) -> str:
        """``"factorization"``, ``"diagonal"`` or ``"callable"``."""
        return str(self._core.kind)

    def matvec(self, v: Any) -> np.ndarray:
        """``H v`` for a vector, or ``H V`` for a ``(dim, k)`` block."""
        arr = np.asarray(v, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[0] != self.dim:
            raise ValueError(f"v must be a vector of {self.dim} entries or a ({self.dim}, k) matrix, got shape "
                             f"{arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("v must be finite")
        out = np.asarray(self._core.apply(np.asfortranarray(arr.reshape(self.dim, -1))))
        return out[:, 0] if arr.ndim == 1 else out

    __matmul__ = matvec

    def __call__(self, v: Any) -> np.ndarray:
        return self.matvec(v)

    def dense(self) -> np.ndarray:
        """The ``(dim, dim)`` matrix (closed form where there is one, else products with the unit basis)."""
        if self._dense is not None:
            return self._dense()
        return self.matvec(np.eye(self.dim))

    def aslinearoperator(self) -> Any:
        """A :class:`scipy.sparse.linalg.LinearOperator` with the same products (symmetric)."""
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(self.shape, matvec=self.matvec, rmatvec=self.matvec, matmat=self.matvec,
                              dtype=np.float64)

    def __repr__(self) -> str:
        return f"HessianOperator(kind={self.kind!r}, dim={self.dim})"


def operator(layers: Any, A: Any, y: Any) -> HessianOperator:
    """The exact loss Hessian of deep matrix factorization at ``layers`` as an operator (see :func:`hvp`)."""
    if y is None and not isinstance(A, RegressionOperator):  # a regression operator carries its targets
        raise ValueError("y is required for the model's Hessian")
    dims, z, op, yv = _checked(layers, A, y, prepare=False)
    return HessianOperator(core.factorization_operator(op._core, dims, z, yv))


def diagonal_operator(u: Any, v: Any, A: Any, y: Any, *, depth: int = 2) -> HessianOperator:
    """The exact Hessian of the diagonal network's loss ``0.5 ||A x - y||^2`` in its factors.

    ``x = u**L - v**L`` with parameters ``z = (u, v)`` (``2N``), or, with
    ``v=None``, the nonnegative model ``x = u**L`` with ``z = u`` (``N``);
    ``L = depth >= 2``. With ``r = A x - y``, ``g = A^T r``,
    ``a = L u^(L-1)``, ``b = -L v^(L-1)``::

        H = J^T J + diag(L(L-1) u^(L-2) g, -L(L-1) v^(L-2) g),   J = A [diag(a), diag(b)]

    Products cost ``O(M N)`` per vector. Weight normalization changes the
    dynamics, not the loss: this is the Hessian in ``z`` for every method
    (docs/science.md, section 3.9).
    """
    Am = check_matrix(A, "A")
    M, N = Am.shape
    yv = check_vector(y, "y", M)
    L = check_positive_int(depth, "depth", minimum=2)
    uv = check_vector(u, "u", N)
    vv = None if v is None else check_vector(v, "v", N)
    args = (Am, yv, uv, vv, L, vv is None)
    return HessianOperator(core.diagonal_hessian_operator(*args),
                           lambda: np.asarray(core.diagonal_hessian_dense(*args)))


def _dense_operator(H: np.ndarray, symmetry_tol: float) -> HessianOperator:
    Hm = check_matrix(H, "H")
    if Hm.shape[0] != Hm.shape[1]:
        raise ValueError(f"a dense operator must be square, got shape {Hm.shape}")
    scale = float(np.max(np.abs(Hm)))
    asym = float(np.max(np.abs(Hm - Hm.T)))
    if asym > symmetry_tol * scale:
        raise ValueError(f"the matrix is not symmetric: max |H - H^T| = {asym:.3g} (max |H| = {scale:.3g}, "
                         f"symmetry_tol {symmetry_tol:g})")
    Hs = np.asfortranarray(0.5 * (Hm + Hm.T))
    return HessianOperator(core.callable_operator(lambda X: Hs @ X, Hs.shape[0], True), lambda: Hs.copy())


def as_operator(target: Any, A: Any = None, y: Any = None, *, dim: int | None = None, block: bool = False,
                symmetry_tol: float = 1e-6) -> HessianOperator:
    """Any supported description of a symmetric operator as a :class:`HessianOperator`.

    ``target``: a :class:`HessianOperator` (returned as is); the layers of a
    deep factorization (a list of arrays, with ``A`` and ``y``); a
    :class:`scipy.sparse.linalg.LinearOperator` (square); a dense symmetric
    ``(n, n)`` array (checked: ``max |H - H^T| <= symmetry_tol max |H|``); or a
    callable ``matvec(v) -> H v`` on vectors of length ``dim`` (on ``(dim, k)``
    blocks when ``block=True``).
    """
    tol = check_positive(symmetry_tol, "symmetry_tol")
    if isinstance(target, (list, tuple)):
        return operator(target, A, y)
    if A is not None or y is not None:
        raise ValueError("A and y are only for the layers of a factorization; they must be None for an operator")
    if isinstance(target, HessianOperator):
        return target
    if isinstance(target, np.ndarray):
        return _dense_operator(target, tol)
    if hasattr(target, "matmat") and hasattr(target, "shape"):  # a scipy LinearOperator
        n0, n1 = (int(s) for s in target.shape)
        if n0 != n1:
            raise ValueError(f"the LinearOperator must be square, got shape {target.shape}")
        lin = target
        return HessianOperator(core.callable_operator(lambda X: np.asarray(lin.matmat(X), dtype=np.float64),
                                                      n0, True))
    if callable(target):
        if dim is None:
            raise ValueError("dim is required when the first argument is a matvec callable")
        D = check_positive_int(dim, "dim")
        fn: Callable = target

        def checked(v: np.ndarray) -> np.ndarray:
            out = np.asarray(fn(v), dtype=np.float64)
            if out.shape != v.shape:
                raise ValueError(f"matvec returned shape {out.shape}, expected {v.shape}")
            return out

        return HessianOperator(core.callable_operator(checked, D, bool(block)))
    raise ValueError("target must be the layers of a factorization (with A and y), a HessianOperator, a dense "
                     f"symmetric array, a scipy LinearOperator or a matvec callable (with dim), got {type(target)}")


@dataclass(repr=False)
class Eigenpairs:
    """Eigenvalues of a symmetric operator from :func:`eigenvalues` (ascending).

    Attributes
    ----------
    values : ndarray (k,)
        Ritz values (Rayleigh quotients of the returned vectors), ascending.
    residuals : ndarray (k,)
        ``||H v_j - values[j] v_j||_2`` for unit ``v_j``: for symmetric ``H``
        an eigenvalue of ``H`` lies within ``residuals[j]`` of ``values[j]``
        (docs/science.md, section 3.9).
    vectors : ndarray (dim, k) or None
        Orthonormal Ritz vectors (only with ``return_vectors=True``).
    num_matvecs : int
        Products with ``H`` used (each column of a block counts once).
    basis_size : int
        Dimension of the Krylov basis at the end.
    converged : bool
        Every residual ``<= tol * max|Ritz value|`` (or the basis spans the space).
    """

    values: np.ndarray
    residuals: np.ndarray
    vectors: np.ndarray | None
    num_matvecs: int
    basis_size: int
    converged: bool
    which: str
    _start: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        return (f"Eigenpairs(values={self.values!r}, residuals={self.residuals!r}, num_matvecs={self.num_matvecs}, "
                f"converged={self.converged})")


def eigenvalues(target: Any, A: Any = None, y: Any = None, *, k: int = 1, which: str = "largest",
                return_vectors: bool = False, block_size: int | None = None, tol: float = 1e-8,
                max_matvecs: int | None = None, seed: int | None = 0, start: Any = None, dim: int | None = None,
                block: bool = False, symmetry_tol: float = 1e-6) -> Eigenpairs:
    """The ``k`` largest, smallest or both-end eigenvalues of a symmetric operator by block Lanczos.

    ``target`` is anything :func:`as_operator` accepts: the layers of a deep
    factorization with ``A`` and ``y`` (its exact HVP), a
    :func:`diagonal_operator`, a dense symmetric array, a scipy
    ``LinearOperator`` or a callable with ``dim``.

    Block Lanczos with full reorthogonalization and Rayleigh-Ritz on the
    Krylov basis (docs/science.md, section 3.9). ``which``: ``"largest"``
    (algebraically; the sharpness is ``values[-1]``), ``"smallest"``, or
    ``"both"`` (``k // 2`` smallest and ``k - k // 2`` largest). The block size
    (default ``k``, or the columns of ``start``) must be at least the
    multiplicity of a wanted eigenvalue to resolve its eigenspace. Stops when
    every wanted residual ``||H v - theta v|| <= tol * max|theta|``, when the
    basis spans the space (then exact to rounding), or after ``max_matvecs``
    products (default ``min(dim, max(500, 50 * block))`` columns; a
    RuntimeWarning says when it stopped unconverged). ``start``: a previous
    :class:`Eigenpairs` (warm start from its vectors) or a ``(dim, s)``
    array. Symmetry is checked over the first 8 blocks: the two computed values
    ``q_i^T H q_j`` and ``q_j^T H q_i`` must agree to ``symmetry_tol``
    (relative), else ValueError.
    """
    op = as_operator(target, A, y, dim=dim, block=block, symmetry_tol=symmetry_tol)
    D = op.dim
    kk = check_positive_int(k, "k")
    if kk > D:
        raise ValueError(f"k must be <= the operator's size {D}, got {kk}")
    check_choice(which, "which", core_names(core.EigenWhich))
    t = check_positive(tol, "tol", allow_zero=True)
    sd = check_seed(seed)
    if isinstance(start, Eigenpairs):
        S = start._start
    elif start is None:
        S = np.zeros((D, 0))
    else:
        S = np.asarray(start, dtype=np.float64)
        S = S[:, None] if S.ndim == 1 else S
        S = check_matrix(S, "start")
    if S.shape[0] != D:
        raise ValueError(f"start must have {D} rows (the operator's size), got {S.shape[0]}")
    b = max(kk, S.shape[1]) if block_size is None else check_positive_int(block_size, "block_size")
    b = min(b, D)
    budget = min(D, max(500, 50 * b)) if max_matvecs is None else check_positive_int(max_matvecs, "max_matvecs")
    if budget < b:
        raise ValueError(f"max_matvecs must be at least the block size {b}, got {budget}")
    r = core.lanczos_eigen(op._core, kk, _batch.enum(core.EigenWhich, which), b, t, budget,
                           0 if sd is None else sd, float(symmetry_tol), np.asfortranarray(S))
    vecs = np.asarray(r["vectors"])
    out = Eigenpairs(values=np.asarray(r["values"]), residuals=np.asarray(r["residuals"]),
                     vectors=vecs if return_vectors else None, num_matvecs=int(r["matvecs"]),
                     basis_size=int(r["basis"]), converged=bool(r["converged"]), which=str(which), _start=vecs)
    if not out.converged:
        warnings.warn(f"block Lanczos stopped after {out.num_matvecs} products (max_matvecs) with residuals up to "
                      f"{float(np.max(out.residuals)):.3g}: raise max_matvecs or tol", RuntimeWarning, stacklevel=2)
    return out


@dataclass(repr=False)
class SpectralDensity:
    """A smoothed spectral density from :func:`density` (stochastic Lanczos quadrature).

    ``density[i]`` estimates ``(1/dim) sum_j N(grid[i]; lambda_j, width^2)``,
    the eigenvalue distribution of ``H`` (integrating to 1) convolved with a
    Gaussian of standard deviation ``width``; ``stderr[i]`` is the standard
    error of that mean over the probes (sample std / sqrt(num_probes); NaN with
    one probe). ``nodes[p]``, ``weights[p]``: probe p's Gauss quadrature
    (Ritz values and squared first components of the Lanczos eigenvectors).
    """

    grid: np.ndarray
    density: np.ndarray
    stderr: np.ndarray
    width: float
    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    num_matvecs: int
    dim: int

    def per_probe(self, t: Any) -> np.ndarray:
        """The ``(num_probes, len(t))`` smoothed quadratures of each probe at points ``t``."""
        tt = np.atleast_1d(np.asarray(t, dtype=np.float64))
        s = self.width
        out = np.empty((len(self.nodes), tt.size))
        for p, (th, w) in enumerate(zip(self.nodes, self.weights)):
            out[p] = (w[None, :] * np.exp(-0.5 * ((tt[:, None] - th[None, :]) / s) ** 2)).sum(axis=1)
        return out / (s * np.sqrt(2.0 * np.pi))

    def moments(self, orders: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, stderr)`` of the quadrature estimates of ``(1/dim) tr H^p`` for each order p.

        Per probe ``sum_j weights_j nodes_j^p = q^T H^p q`` exactly (to
        rounding) for ``p < 2 * steps``; the mean over probes is unbiased and
        ``stderr`` is its standard error. (Moments of the unsmoothed quadrature.)
        """
        ps = np.atleast_1d(np.asarray(orders))
        est = np.array([[float(np.sum(w * th ** int(p))) for p in ps] for th, w in zip(self.nodes, self.weights)])
        return est.mean(axis=0), _std_error(est)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Plot the density with a band of +-2 standard errors (matplotlib); returns the axes."""
        from ._plotting import plot_spectral_density

        return plot_spectral_density(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        return (f"SpectralDensity(points={self.grid.size}, width={self.width:.3g}, probes={len(self.nodes)}, "
                f"num_matvecs={self.num_matvecs})")


def _std_error(est: np.ndarray) -> np.ndarray:
    P = est.shape[0]
    if P < 2:
        return np.full(est.shape[1:], np.nan)
    return np.asarray(est.std(axis=0, ddof=1) / np.sqrt(P))


def density(target: Any, A: Any = None, y: Any = None, *, num_probes: int = 10, steps: int = 50,
            width: float | None = None, grid: Any = 200, probe: str = "rademacher", seed: int | None = 0,
            dim: int | None = None, block: bool = False, symmetry_tol: float = 1e-6) -> SpectralDensity:
    """Spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

    For each of ``num_probes`` random probes ``z`` (``probe``: Rademacher or
    Gaussian), ``q = z / ||z||``, ``steps`` Lanczos steps with full
    reorthogonalization give ``T = S diag(theta) S^T`` and the Gauss
    quadrature ``q^T f(H) q ~ sum_j S[0, j]^2 f(theta_j)`` (exact for
    polynomials of degree < 2 steps; exact for any f when the Krylov space
    is invariant, e.g. steps >= dim). Since ``E[q q^T] = I / dim``, the mean
    over probes of the smoothed quadratures estimates the density
    ``(1/dim) sum_j N(t; lambda_j, width^2)`` without bias in the probes;
    the per-point standard error is the sample std over probes / sqrt(probes)
    (docs/science.md, section 3.9). ``width``: the Gaussian smoothing width
    (default 1% of the spread of all nodes, or 1e-3 * max(1, abs(node)) if
    they coincide). ``grid``: a number of points spanning the nodes +- 5
    widths, or an array of points. ``target``: as :func:`eigenvalues`.
    """
    op = as_operator(target, A, y, dim=dim, block=block, symmetry_tol=symmetry_tol)
    P = check_positive_int(num_probes, "num_probes")
    m = check_positive_int(steps, "steps")
    check_choice(probe, "probe", core_names(core.Probe))
    sd = check_seed(seed)
    nodes, weights, used = core.lanczos_quadrature(op._core, P, m, 0 if sd is None else sd,
                                                   _batch.enum(core.Probe, probe))
    nodes = [np.asarray(n) for n in nodes]
    weights = [np.asarray(w) for w in weights]
    allnodes = np.concatenate(nodes)
    lo, hi = float(allnodes.min()), float(allnodes.max())
    if width is None:
        s = 0.01 * (hi - lo) if hi > lo else 1e-3 * max(1.0, abs(hi))
    else:
        s = check_positive(width, "width")
        with np.errstate(over="ignore"):
            if not np.isfinite(1.0 / (s * np.sqrt(2.0 * np.pi))):
                raise ValueError(f"width is too small ({s!r}): the Gaussian's peak 1/(width sqrt(2 pi)) overflows")
    if np.ndim(grid) == 0:
        n_pts = check_positive_int(grid, "grid", minimum=2)
        with np.errstate(over="ignore", invalid="ignore"):
            g = np.linspace(lo - 5.0 * s, hi + 5.0 * s, n_pts)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"width is too large ({s!r}): the default grid, 5 widths beyond the spectrum, overflows")
    else:
        g = check_vector(grid, "grid")
    out = SpectralDensity(grid=g, density=np.empty(0), stderr=np.empty(0), width=s, nodes=nodes, weights=weights,
                          num_matvecs=int(used), dim=op.dim)
    per = out.per_probe(g)
    out.density = per.mean(axis=0)
    out.stderr = _std_error(per)
    return out
