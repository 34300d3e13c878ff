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
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _batch
from ._family import core_names
from ._native import core
from ._validation import check_choice, check_matrix, check_positive_int, check_seed, check_vector, finite_result
from .factorization import RegressionOperator, _checked, _product, pack, unpack

__all__ = [
    "TraceEstimate", "dense", "hutchinson", "hutchpp", "hvp", "proxy", "proxy_bound", "trace", "trace_gradient",
    "xtrace",
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
