"""Sparse recovery with diagonal linear networks: the exact limits.

* :func:`basis_pursuit` -- the minimum (weighted) l1-norm interpolator, by
  linear programming (HiGHS), with a least-squares polish on the support.
* :func:`hyperbolic_entropy` -- the depth-2 implicit regularizer ``Q_alpha``.
* :func:`diagonal_flow_limit` -- the limit of plain gradient flow on the
  diagonal linear network ``x = u^L - v^L`` (or ``x = u^L``) started at
  ``u = v = alpha``, computed by Newton's method on a smooth strictly convex
  dual problem (docs/science.md, section 1; the solver is in
  :mod:`._dual_newton`, the potentials in :mod:`._potentials`).

Derivation of the flow limit. For L = 2, ``du/dt = -2 u g``, ``dv/dt = 2 v g``
with ``g = A^T (A x - y)`` give ``u = alpha e^{s/2}``, ``v = alpha e^{-s/2}``,
``s = -4 A^T int r dt``, hence ``x = 2 alpha^2 sinh(s)``: the limit
minimizes the hyperbolic entropy (:func:`hyperbolic_entropy`) on
``{A x = y}`` (Woodworth et al. 2020, "Kernel and rich regimes in
overparametrized models"). For L > 2 (docs/science.md, section 1),
``d u^(2-L)/dt = L (L-2) g`` and ``d v^(2-L)/dt = -L (L-2) g``, so
``u^(2-L) = a - s``, ``v^(2-L) = a + s`` with ``s`` in range(A^T), which
gives the formulas of :func:`diagonal_flow_limit` (the invariant
``u^(2-L) + v^(2-L) = 2 a`` holds). In every case ``lam`` minimizes the
smooth strictly convex dual ``D(lam) = sum_i psi_i((A^T lam)_i) - <lam, y>``,
whose gradient is ``A x(lam) - y`` and Hessian ``A diag(psi''(s)) A^T``.

Conventions (docs/science.md): loss ``0.5 * ||A x - y||^2``, residual
``r = A x - y``, ``g = A^T r``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize

from .._validation import check_matrix, check_positive, check_positive_int, check_vector
from ._dual_newton import _minimize_dual
from ._potentials import _potential


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_init_scale(init_scale: Any, n: int, name: str = "init_scale") -> np.ndarray:
    """A positive finite scalar (broadcast to length n) or length-n vector."""
    if isinstance(init_scale, np.ndarray) and init_scale.ndim == 0:
        init_scale = init_scale.item()
    if np.ndim(init_scale) == 0:
        return np.full(n, check_positive(init_scale, name))
    arr = check_vector(init_scale, name, size=n)
    if not np.all(arr > 0):
        raise ValueError(f"{name} must be > 0 in every entry, got min {arr.min()!r}")
    return arr


# --------------------------------------------------------------------------
# basis pursuit
# --------------------------------------------------------------------------
def basis_pursuit(
    A: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    nonnegative: bool = False,
) -> np.ndarray:
    """Minimum (weighted) l1-norm interpolator.

    Solves ``min_x sum_i w_i |x_i|  s.t.  A x = y`` (and ``x >= 0`` when
    ``nonnegative``) as a linear program with HiGHS
    (``scipy.optimize.linprog(method="highs")``), splitting
    ``x = x_plus - x_minus`` with ``x_plus, x_minus >= 0`` in the signed case.
    Primal and dual feasibility tolerances are 1e-10.

    After the LP the solution is *polished*: if its support ``S`` (entries
    with ``|x_i| > 1e-9 * max(1, max|x|)``) has at most ``M`` entries, ``A_S x_S
    = y`` is re-solved by least squares, and the polished point is kept if it
    reduces the residual, keeps the signs, and moves ``x`` by at most
    ``1e-6 * max(1, max|x|)``. Then ``A x = y`` typically holds to ~1e-12.

    Parameters
    ----------
    A : array, shape (M, N)
        Sensing matrix (finite).
    y : array, shape (M,)
        Measurements (finite).
    weights : array, shape (N,), optional
        Positive finite weights ``w``; default all ones (plain l1 norm).
    nonnegative : bool
        Restrict to ``x >= 0`` (then the objective is ``sum_i w_i x_i``).

    Returns
    -------
    x : ndarray, shape (N,)

    Raises
    ------
    ValueError
        Bad input, or ``A x = y`` (with ``x >= 0``) is infeasible.
    RuntimeError
        HiGHS failed for another reason (its message is included).
    """
    A = check_matrix(A, "A")
    m, n = A.shape
    y = check_vector(y, "y", size=m)
    if weights is None:
        w = np.ones(n)
    else:
        w = check_vector(weights, "weights", size=n)
        if not np.all(w > 0):
            raise ValueError(f"weights must be > 0 in every entry, got min {w.min()!r}")
    nonnegative = _check_bool(nonnegative, "nonnegative")
    return _polish(A, y, _weighted_l1_lp(A, y, w, nonnegative), nonnegative)


def _weighted_l1_lp(A: np.ndarray, y: np.ndarray, w: np.ndarray, nonnegative: bool) -> np.ndarray:
    """The LP of :func:`basis_pursuit` by HiGHS (before the polish)."""
    n = A.shape[1]
    if nonnegative:
        c, a_eq = w, A
    else:
        c, a_eq = np.concatenate([w, w]), np.hstack([A, -A])
    res = scipy.optimize.linprog(
        c,
        A_eq=a_eq,
        b_eq=y,
        bounds=(0, None),
        method="highs",
        options={
            "primal_feasibility_tolerance": 1e-10,
            "dual_feasibility_tolerance": 1e-10,
            "presolve": True,
        },
    )
    if res.status == 2:
        what = "A x = y, x >= 0" if nonnegative else "A x = y"
        raise ValueError(f"the constraints {what} are infeasible (HiGHS: {res.message})")
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"basis_pursuit: HiGHS failed (status {res.status}): {res.message}")
    z = np.asarray(res.x, dtype=np.float64)
    x = z.copy() if nonnegative else z[:n] - z[n:]
    if nonnegative:
        x = np.maximum(x, 0.0)
    return x


def _polish(A: np.ndarray, y: np.ndarray, x: np.ndarray, nonnegative: bool) -> np.ndarray:
    """Re-solve ``A_S x_S = y`` on the support by least squares (see basis_pursuit)."""
    m = A.shape[0]
    scale = max(1.0, float(np.max(np.abs(x))))
    support = np.flatnonzero(np.abs(x) > 1e-9 * scale)
    res_old = np.linalg.norm(A @ x - y)
    if support.size > m:
        return x
    x_new = np.zeros_like(x)
    if support.size > 0:
        sol, *_ = np.linalg.lstsq(A[:, support], y, rcond=None)
        x_new[support] = sol
    res_new = np.linalg.norm(A @ x_new - y)
    ok = (
        np.all(np.isfinite(x_new))
        and res_new <= res_old
        and np.all(np.sign(x_new[support]) == np.sign(x[support]))
        and np.max(np.abs(x_new - x), initial=0.0) <= 1e-6 * scale
        and (not nonnegative or np.all(x_new >= 0))
    )
    return x_new if ok else x


# --------------------------------------------------------------------------
# hyperbolic entropy
# --------------------------------------------------------------------------
def hyperbolic_entropy(x: np.ndarray, init_scale: float | np.ndarray) -> float:
    """The depth-2 implicit regularizer (hyperbolic entropy) ``Q_alpha(x)``.

    ``Q_alpha(x) = sum_i [ x_i asinh(x_i / (2 alpha_i^2)) - sqrt(x_i^2 + 4 alpha_i^4) ]``

    This is the primal potential of the signed depth-2 diagonal network
    ``x = u^2 - v^2`` initialized at ``u = v = alpha``: its gradient is
    ``asinh(x / (2 alpha^2))``, and the plain gradient-flow limit minimizes it
    over ``{x : A x = y}`` (Woodworth et al. 2020, "Kernel and rich regimes in
    overparametrized models"; their ``Q_alpha`` differs by the constant
    ``2 alpha_i^2`` per coordinate). For small alpha it behaves like
    ``log(1/alpha^2) * ||x||_1``, for large alpha like ``||x||_2^2 / (4 alpha^2)``
    (up to constants).

    Parameters
    ----------
    x : array, shape (N,)
    init_scale : float or array of shape (N,)
        alpha > 0 (a scalar or one value per coordinate).

    Returns
    -------
    float
    """
    x = check_vector(x, "x")
    alpha = _check_init_scale(init_scale, x.shape[0])
    log_c = np.log(2.0) + 2.0 * np.log(alpha)  # log(2 alpha^2)
    c = np.exp(log_c)
    ax = np.abs(x)
    big = (ax > 0) & (ax > 1e8 * c)  # asinh(z) = log(2 z) + O(z^-2) there
    small = ~big
    as_ = np.zeros_like(x)
    nz_small = small & (ax > 0)
    as_[nz_small] = np.arcsinh(x[nz_small] / c[nz_small])
    as_[big] = np.sign(x[big]) * (np.log(2.0) + np.log(ax[big]) - log_c[big])
    return float(np.sum(x * as_ - np.hypot(x, c)))



# --------------------------------------------------------------------------
# gradient-flow limit
# --------------------------------------------------------------------------
def diagonal_flow_limit(
    A: np.ndarray,
    y: np.ndarray,
    init_scale: float | np.ndarray,
    depth: int = 2,
    nonnegative: bool = False,
    *,
    log_alpha_ratio: np.ndarray | None = None,
    tol: float = 1e-12,
    max_iter: int = 200,
) -> np.ndarray:
    """Limit of plain gradient flow on a diagonal linear network (and, with ``log_alpha_ratio``,
    of any descent-type run from its effective initialization).

    The model is ``x = u^L - v^L`` (signed) or ``x = u^L`` (``nonnegative``),
    ``L = depth``, trained by gradient flow on ``0.5 ||A x - y||^2`` from
    ``u = v = alpha`` (``alpha = init_scale``, a positive scalar or one value
    per coordinate). When the flow converges to an interpolator, its limit is
    ``x = grad psi(s)`` with ``s = A^T lam`` in range(A^T) and ``A x = y``,
    where, coordinatewise (``a_i = alpha_i^(2-L)``, ``p = L/(L-2)``):

    - signed, L = 2: ``psi_i(s) = 2 alpha_i^2 cosh(s)``,
      ``x_i = 2 alpha_i^2 sinh(s)``;
    - signed, L > 2: ``psi_i(s) = [(a_i - s)^(1-p) + (a_i + s)^(1-p)] / (p - 1)``,
      ``x_i = (a_i - s)^(-p) - (a_i + s)^(-p)`` on ``|s| < a_i``;
    - nonnegative, L = 2: ``psi_i(s) = alpha_i^2 exp(s)``, ``x_i = alpha_i^2 exp(s)``;
    - nonnegative, L > 2: ``psi_i(s) = (a_i - s)^(1-p) / (p - 1)``,
      ``x_i = (a_i - s)^(-p)`` on ``s < a_i``.

    ``lam`` minimizes the dual ``D(lam) = sum_i psi_i((A^T lam)_i) - <lam, y>``
    (derivation: module docstring; docs/science.md, section 1), here by damped
    Newton in double-double arithmetic (algorithm and accuracy:
    :mod:`implicitbias.reference._dual_newton`; full accuracy up to
    ``alpha^(2-L)`` ~ 1e16). Stops when ``||A x - y|| <= tol * max(1, ||y||)``
    or, if larger, at the rounding level of the arithmetic.

    Parameters
    ----------
    A : array, shape (M, N)
        Full row rank, ``M <= N``.
    y : array, shape (M,)
    init_scale : float or array of shape (N,)
        alpha > 0.
    depth : int
        L >= 2.
    nonnegative : bool
        Use the model ``x = u^L`` (needs ``y = A x`` for some ``x > 0``).
    tol : float
        Relative residual tolerance (> 0).
    max_iter : int
        Maximum number of Newton iterations.
    log_alpha_ratio : array of shape (N,), optional
        A linear term ``c`` (depth 2, signed model): the limit becomes
        ``argmin_{Ax=y} Q_alpha(x) - <c, x>`` with ``Q_alpha`` the hyperbolic entropy, i.e.
        ``x = 2 alpha^2 sinh(c + A^T lam)``. With ``init_scale = r.alpha_eff()`` and
        ``log_alpha_ratio = r.log_alpha_ratio()`` of a run ``r`` of ``method="sgd"``,
        ``"label_noise_sgd"`` or ``"sam"`` this is that run's limit when it interpolates
        (docs/dynamics.md).

    Returns
    -------
    x : ndarray, shape (N,)

    Raises
    ------
    ValueError
        Bad input (names the argument), ``M > N`` (overdetermined), or
        rank-deficient ``A``.
    RuntimeError
        Newton did not converge (message gives the residual reached); e.g. in
        the nonnegative model when ``y`` is not ``A x`` for any ``x > 0``, or
        for ``alpha^(2-L)`` beyond ~1e30.
    """
    A, y, alpha, depth, nonnegative, tol, max_iter = _check_flow_inputs(
        A, y, init_scale, depth, nonnegative, tol, max_iter
    )
    pot = _potential(alpha, depth, nonnegative)
    if log_alpha_ratio is not None:
        shift = check_vector(log_alpha_ratio, "log_alpha_ratio", size=A.shape[1])
        if depth != 2 or nonnegative:
            raise ValueError("log_alpha_ratio applies to the signed depth-2 model (the nonnegative model "
                             "absorbs it in init_scale; depth > 2 has no such term)")
        pot = _ShiftedPotential(pot, shift)
    target = tol * max(1.0, float(np.linalg.norm(y)))
    x, rnorm, it = _minimize_dual(A, y, pot, target, max_iter)
    if x is None:
        raise _not_converged(pot, depth, nonnegative, rnorm, target, it)
    return x


class _ShiftedPotential:
    """psi(c + s) for a depth-2 potential psi: the dual point is shifted by the linear term c (so
    ``x = 2 alpha^2 sinh(c + A^T lam)``); every other method acts on the shifted point."""

    def __init__(self, pot, shift: np.ndarray):
        self._pot = pot
        self._shift = shift

    def state(self, s_hi, s_lo):
        return self._pot.state(s_hi, s_lo) + self._shift

    def __getattr__(self, name):
        return getattr(self._pot, name)


def _check_flow_inputs(A, y, init_scale, depth, nonnegative, tol, max_iter):
    """Validate the arguments of :func:`diagonal_flow_limit` (in this order)."""
    A = check_matrix(A, "A")
    m, n = A.shape
    y = check_vector(y, "y", size=m)
    depth = check_positive_int(depth, "depth", minimum=2)
    nonnegative = _check_bool(nonnegative, "nonnegative")
    alpha = _check_init_scale(init_scale, n)
    tol = check_positive(tol, "tol")
    max_iter = check_positive_int(max_iter, "max_iter")
    if m > n:
        raise ValueError(
            f"A has more rows than columns ({m} > {n}): the problem is overdetermined, "
            "so the interpolation set {x : A x = y} is generically a point or empty"
        )
    if np.linalg.matrix_rank(A) < m:
        raise ValueError("A must have full row rank")
    return A, y, alpha, depth, nonnegative, tol, max_iter


def _not_converged(pot, depth: int, nonnegative: bool, rnorm: float, target: float, it: int) -> RuntimeError:
    """The error of :func:`diagonal_flow_limit` when Newton stopped short, with a hint."""
    hint = ""
    if nonnegative:
        hint = (
            "; in the nonnegative model this happens when no x > 0 satisfies A x = y "
            "(the flow then converges to the boundary, which the dual cannot represent)"
        )
    elif depth > 2 and float(np.max(pot.a)) > 1e16:
        hint = (
            f"; alpha^(2-L) = {float(np.max(pot.a)):.1e} exceeds the ~1e16 range that "
            "double-double arithmetic resolves"
        )
    return RuntimeError(
        f"diagonal_flow_limit did not converge: residual ||A x - y|| = {rnorm:.3e} "
        f"(target {target:.3e}) after {it} Newton iterations{hint}"
    )
