"""Exact reference solutions for sparse recovery with diagonal linear networks.

Everything here is pure numpy/scipy and independent of the compiled core, so
it can serve as the ground truth the simulations are compared against.

* :func:`basis_pursuit` -- the minimum (weighted) l1-norm interpolator, by
  linear programming (HiGHS), with a least-squares polish on the support.
* :func:`diagonal_flow_limit` -- the limit of plain gradient flow on the
  diagonal linear network ``x = u^L - v^L`` (or ``x = u^L``) started at
  ``u = v = alpha``, computed by Newton's method on a smooth strictly convex
  dual problem (SCIENCE.md, section 1).
* :func:`hyperbolic_entropy` -- the depth-2 implicit regularizer ``Q_alpha``.
* :func:`max_margin` -- the l2 / l_inf / l1 max-margin of a bias-free linear
  classifier (SVM by least-distance programming, LPs by HiGHS).
* :func:`diagonal_max_margin` -- the predictor-level max-margin LPs for the
  diagonal network ``<u^2 - v^2, x>`` (SCIENCE.md, section 2).
* :func:`min_nuclear_norm` -- the minimum nuclear-norm interpolator of matrix
  sensing / completion (SCIENCE.md section 3), by semidefinite programming
  with cvxpy (optional dependency: ``pip install implicitbias[nuclear]``).

Conventions (SCIENCE.md): loss ``0.5 * ||A x - y||^2``, residual
``r = A x - y``, ``g = A^T r``.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.optimize

from ._validation import (
    check_choice,
    check_labels,
    check_matrix,
    check_positive,
    check_positive_int,
    check_vector,
)

__all__ = [
    "DiagonalMaxMargin",
    "MaxMargin",
    "basis_pursuit",
    "diagonal_flow_limit",
    "diagonal_max_margin",
    "hyperbolic_entropy",
    "max_margin",
    "min_nuclear_norm",
]


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_init_scale(init_scale: object, n: int, name: str = "init_scale") -> np.ndarray:
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
    return _polish(A, y, x, nonnegative)


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
# error-free transformations (double-double arithmetic for A^T lam)
# --------------------------------------------------------------------------
_SPLITTER = 134217729.0  # 2^27 + 1


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, a_hi, a_lo, b):
    """a * b = p + e exactly (Dekker), with a's split precomputed."""
    p = a * b
    b_hi, b_lo = _split(b)
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


class _DualMap:
    """s = A^T lam evaluated in double-double precision.

    For small alpha and depth > 2 the dual point s_i sits within O(1) of
    a = alpha^(2-L) (e.g. 1e10), and x depends on a - s; plain float64 would
    lose all accuracy, so lam is kept as an unevaluated sum lam_hi + lam_lo and
    A^T lam is accumulated with error-free transformations.
    """

    def __init__(self, A: np.ndarray):
        self.A = A
        self.A_hi, self.A_lo = _split(A)

    def __call__(self, lam_hi: np.ndarray, lam_lo: np.ndarray):
        A = self.A
        p, e = _two_prod(A, self.A_hi, self.A_lo, lam_hi[:, None])
        err = e.sum(axis=0) + lam_lo @ A
        while p.shape[0] > 1:
            if p.shape[0] % 2:
                p = np.vstack([p, np.zeros((1, p.shape[1]))])
            p, e = _two_sum(p[0::2], p[1::2])
            err = err + e.sum(axis=0)
        return _two_sum(p[0], err)


# --------------------------------------------------------------------------
# dual potentials psi (one per model)
# --------------------------------------------------------------------------
_EXP_CAP = 600.0  # keep log(alpha^2) + |s| below this: no overflow anywhere


class _ExpSigned:
    """signed, L = 2: psi(s) = 2 alpha^2 cosh(s), x = 2 alpha^2 sinh(s)."""

    def __init__(self, alpha):
        self.la = 2.0 * np.log(alpha)  # log(alpha^2)

    def state(self, s_hi, s_lo):
        return s_hi + s_lo

    def trial(self, s, ds, t):
        return s + t * ds

    @staticmethod
    def _sinh2(s, la):  # 2 alpha^2 sinh(s), accurate and overflow-free
        out = np.empty_like(s)
        sm = np.abs(s) < 1.0
        out[sm] = 2.0 * np.exp(la[sm]) * np.sinh(s[sm])
        bg = ~sm
        a = np.abs(s[bg])
        out[bg] = np.sign(s[bg]) * (np.exp(la[bg] + a) - np.exp(la[bg] - a))
        return out

    def in_domain(self, s):
        return bool(np.all(np.abs(s) + self.la <= _EXP_CAP + 1.0))

    @staticmethod
    def _psi(s, la):  # 2 alpha^2 cosh(s)
        a = np.abs(s)
        return np.exp(la + a) + np.exp(la - a)

    def x(self, s):
        return self._sinh2(s, self.la)

    def hess(self, s):
        return self._psi(s, self.la)

    def max_step(self, s, ds):
        bound = _EXP_CAP - self.la
        with np.errstate(divide="ignore", invalid="ignore"):
            t_up = np.where(ds > 0, np.maximum(bound - s, 0.0) / ds, np.inf)
            t_dn = np.where(ds < 0, np.maximum(bound + s, 0.0) / -ds, np.inf)
        return float(min(t_up.min(), t_dn.min())), 1.0

    def dpsi(self, s, ds, t):
        """psi(s + t ds) - psi(s) per coordinate, without cancellation, and
        the size of the terms it was computed from (for rounding estimates)."""
        step = t * ds
        half = 0.5 * step
        la = self.la
        out = np.empty_like(s)
        sm = np.abs(half) < 1.0
        # cosh(b) - cosh(a) = 2 sinh((a+b)/2) sinh((b-a)/2)
        out[sm] = self._sinh2(s[sm] + half[sm], la[sm]) * 2.0 * np.sinh(half[sm])
        bg = ~sm
        out[bg] = self._psi(s[bg] + step[bg], la[bg]) - self._psi(s[bg], la[bg])
        return out, np.abs(out)


class _ExpNonneg:
    """nonnegative, L = 2: psi(s) = alpha^2 exp(s), x = alpha^2 exp(s)."""

    def __init__(self, alpha):
        self.la = 2.0 * np.log(alpha)

    def state(self, s_hi, s_lo):
        return s_hi + s_lo

    def trial(self, s, ds, t):
        return s + t * ds

    def in_domain(self, s):
        return bool(np.all(s + self.la <= _EXP_CAP + 1.0))

    def x(self, s):
        return np.exp(self.la + s)

    def hess(self, s):
        return np.exp(self.la + s)

    def max_step(self, s, ds):
        bound = _EXP_CAP - self.la
        with np.errstate(divide="ignore", invalid="ignore"):
            t_up = np.where(ds > 0, np.maximum(bound - s, 0.0) / ds, np.inf)
        return float(t_up.min()), 1.0

    def dpsi(self, s, ds, t):
        step = t * ds
        out = np.empty_like(s)
        sm = np.abs(step) < 1.0
        out[sm] = np.exp(self.la[sm] + s[sm]) * np.expm1(step[sm])
        bg = ~sm
        out[bg] = np.exp(self.la[bg] + s[bg] + step[bg]) - np.exp(self.la[bg] + s[bg])
        return out, np.abs(out)


def _pow_diff(w, dw, q):
    """(w + dw)^q - w^q for w > 0, w + dw > 0, without cancellation."""
    return w**q * np.expm1(q * np.log1p(dw / w))


class _PowSigned:
    """signed, L > 2: with a = alpha^(2-L), p = L/(L-2), on |s| < a,
    psi(s) = [(a - s)^(1-p) + (a + s)^(1-p)] / (p - 1),
    x = psi'(s) = (a - s)^(-p) - (a + s)^(-p).
    State: (s, a - s, a + s), the last two accurate to full relative precision.
    """

    def __init__(self, alpha, depth):
        self.a = alpha ** (2.0 - depth)
        self.p = depth / (depth - 2.0)

    def state(self, s_hi, s_lo):
        d, e = _two_sum(self.a, -s_hi)
        wu = d + (e - s_lo)
        d, e = _two_sum(self.a, s_hi)
        wv = d + (e + s_lo)
        return s_hi + s_lo, wu, wv

    def trial(self, st, ds, t):
        s, wu, wv = st
        step = t * ds
        return s + step, wu - step, wv + step

    def in_domain(self, st):
        _, wu, wv = st
        return bool(np.all(wu > 0) and np.all(wv > 0))

    def x(self, st):
        s, wu, wv = st
        # wv^-p * ((wv/wu)^p - 1), with wv / wu = 1 + 2 s / wu
        ratio = 2.0 * s / wu
        near = np.abs(ratio) < 0.5
        log_ratio = np.empty_like(s)
        log_ratio[near] = np.log1p(ratio[near])
        log_ratio[~near] = np.log(wv[~near]) - np.log(wu[~near])
        return wv ** (-self.p) * np.expm1(self.p * log_ratio)

    def hess(self, st):
        _, wu, wv = st
        return self.p * (wu ** (-self.p - 1.0) + wv ** (-self.p - 1.0))

    def max_step(self, st, ds):
        _, wu, wv = st
        with np.errstate(divide="ignore", invalid="ignore"):
            t_u = np.where(ds > 0, wu / ds, np.inf)
            t_v = np.where(ds < 0, wv / -ds, np.inf)
        return float(min(t_u.min(), t_v.min())), 0.99

    def dpsi(self, st, ds, t):
        _, wu, wv = st
        step = t * ds
        q = 1.0 - self.p
        du = _pow_diff(wu, -step, q)
        dv = _pow_diff(wv, step, q)
        return (du + dv) / (self.p - 1.0), (np.abs(du) + np.abs(dv)) / (self.p - 1.0)


class _PowNonneg:
    """nonnegative, L > 2: psi(s) = (a - s)^(1-p) / (p - 1) on s < a,
    x = (a - s)^(-p). State: (s, a - s)."""

    def __init__(self, alpha, depth):
        self.a = alpha ** (2.0 - depth)
        self.p = depth / (depth - 2.0)

    def state(self, s_hi, s_lo):
        d, e = _two_sum(self.a, -s_hi)
        return s_hi + s_lo, d + (e - s_lo)

    def trial(self, st, ds, t):
        s, w = st
        step = t * ds
        return s + step, w - step

    def in_domain(self, st):
        return bool(np.all(st[1] > 0))

    def x(self, st):
        return st[1] ** (-self.p)

    def hess(self, st):
        return self.p * st[1] ** (-self.p - 1.0)

    def max_step(self, st, ds):
        w = st[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_w = np.where(ds > 0, w / ds, np.inf)
        return float(t_w.min()), 0.99

    def dpsi(self, st, ds, t):
        out = _pow_diff(st[1], -t * ds, 1.0 - self.p) / (self.p - 1.0)
        return out, np.abs(out)


class _NewtonSystem:
    """Solver for (A diag(h) A^T + mu I) d = -b, without forming the matrix.

    Householder QR with column pivoting of the stacked matrix
    [diag(sqrt h) A^T; sqrt(mu) I] with its rows sorted by decreasing norm
    (row-wise stable when h varies over many orders of magnitude).
    """

    def __init__(self, A: np.ndarray, h: np.ndarray, mu: float, col_sq: np.ndarray):
        m = A.shape[0]
        weights = np.concatenate([h * col_sq, np.full(m, mu)])
        rows = np.vstack([np.sqrt(h)[:, None] * A.T, np.sqrt(mu) * np.eye(m)])
        order = np.argsort(-weights, kind="stable")
        R, piv = scipy.linalg.qr(rows[order], mode="r", pivoting=True, check_finite=False)
        self.R = R[:m]
        self.piv = piv
        diag = np.abs(np.diag(self.R))
        self.ok = bool(np.all(np.isfinite(self.R)) and diag.min() > 0)

    def solve(self, b: np.ndarray) -> np.ndarray:
        z = scipy.linalg.solve_triangular(self.R, b[self.piv], trans="T", check_finite=False)
        z = scipy.linalg.solve_triangular(self.R, z, check_finite=False)
        d = np.empty_like(b)
        d[self.piv] = -z
        return d


_EPS = np.finfo(np.float64).eps


def _rounding_floor(A, y, x, h, lam_hi, abs_a) -> float:
    """The residual level below which ||A x - y|| is rounding noise.

    Two sources: evaluating A x - y in float64 (~eps * | |A| |x| + |y| |), and
    the double-double evaluation of s = A^T lam (error ~eps^2 * |A|^T |lam|
    per coordinate, i.e. ~h_i times that in x_i). The second matters only for
    L > 2 with alpha^(2-L) beyond ~1e16.
    """
    ax = abs_a @ np.abs(x) + np.abs(y)
    ds = _EPS**2 * (np.abs(lam_hi) @ abs_a)
    return 16.0 * _EPS * _safe_norm(ax) + 16.0 * _safe_norm(abs_a @ (h * ds))


def _accept_step(pot, state, ds, t, gd, dy, dy_abs, rnorm, A, y, c_armijo) -> bool:
    """Armijo test on the dual objective for the step t (in the direction d).

    D(lam + t d) - D(lam) = sum_i [psi_i(s_i + t ds_i) - psi_i(s_i)] - t <d, y>
    is evaluated without cancellation. When the predicted decrease t |<r, d>|
    is below the rounding noise of that difference, the Armijo test is
    meaningless and the residual norm ||A x - y|| (which the Newton direction
    also decreases) must decrease instead.
    """
    dpsi, dpsi_abs = pot.dpsi(state, ds, t)
    if not (np.all(np.isfinite(dpsi)) and np.all(np.isfinite(dpsi_abs))):
        return False
    d_obj = float(np.sum(dpsi)) - t * dy
    if d_obj <= c_armijo * t * gd:
        return True
    noise = 1e-13 * (float(np.sum(dpsi_abs)) + t * dy_abs)
    if t * abs(gd) <= noise:
        x_t = pot.x(pot.trial(state, ds, t))
        return _safe_norm(A @ x_t - y) <= (1.0 - c_armijo * t) * rnorm
    return False


def _newton_step(A, h, r, rnorm, scale, col_sq, mu_rel, dual_map):
    """Levenberg-Marquardt-regularized Newton direction for the dual.

    Solves (A diag(h) A^T + mu I) d = -r. The exact Newton step (mu = 0) can
    have enormous components along directions of tiny Hessian eigenvalues
    (coordinates with tiny h, hence tiny x); their rounding errors then
    corrupt the well-determined part of the step. So the direction is
    checked: its model residual rho = r + A (h * A^T d) + mu d (zero in exact
    arithmetic; A^T d in double-double) must be at most 0.25 ||r||, after up
    to two steps of iterative refinement. Otherwise mu is raised 100-fold
    (starting at 1e-16 * trace). mu is relaxed 100-fold at every iteration,
    so it stays as small as the arithmetic allows (and 0 when possible).
    Returns (d, A^T d, mu), or (None, None, mu) on failure.
    """
    m = A.shape[0]
    zeros = np.zeros(m)
    mu_rel = mu_rel / 100.0 if mu_rel > 1e-30 else 0.0
    for _ in range(16):
        mu = mu_rel * scale
        system = _NewtonSystem(A, h, mu, col_sq)
        if system.ok:
            d = system.solve(r)
            eta = np.inf
            for _refine in range(3):
                if not np.all(np.isfinite(d)):
                    break
                ds_hi, ds_lo = dual_map(d, zeros)
                ds = ds_hi + ds_lo
                rho = r + A @ (h * ds) + mu * d
                eta_new = _safe_norm(rho) / rnorm
                if not eta_new < eta:
                    break
                eta, best = eta_new, (d, ds)
                if eta <= 1e-3:
                    break
                d = d + system.solve(rho)
            if eta <= 0.25:
                return best[0], best[1], mu
        if mu_rel >= 1.0:
            break
        mu_rel = max(100.0 * mu_rel, 1e-16)
    return None, None, mu_rel * scale


def _safe_norm(v: np.ndarray) -> float:
    """Euclidean norm without overflow in the squares (inf/nan propagate)."""
    if not np.all(np.isfinite(v)):
        return np.inf
    big = float(np.max(np.abs(v), initial=0.0))
    if big == 0.0:
        return 0.0
    return big * float(np.linalg.norm(v / big))


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
    tol: float = 1e-12,
    max_iter: int = 200,
) -> np.ndarray:
    """Limit of plain gradient flow on a diagonal linear network.

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

    Derivation. For L = 2, ``du/dt = -2 u g``, ``dv/dt = 2 v g`` with
    ``g = A^T (A x - y)`` give ``u = alpha e^{s/2}``, ``v = alpha e^{-s/2}``,
    ``s = -4 A^T int r dt``, hence ``x = 2 alpha^2 sinh(s)``: the limit
    minimizes the hyperbolic entropy (:func:`hyperbolic_entropy`) on
    ``{A x = y}`` (Woodworth et al. 2020, "Kernel and rich regimes in
    overparametrized models"). For L > 2 (SCIENCE.md, section 1),
    ``d u^(2-L)/dt = L (L-2) g`` and ``d v^(2-L)/dt = -L (L-2) g``, so
    ``u^(2-L) = a - s``, ``v^(2-L) = a + s`` with ``s`` in range(A^T), which
    gives the formulas above (the invariant ``u^(2-L) + v^(2-L) = 2 a`` holds). In every
    case ``lam`` minimizes the smooth strictly convex dual
    ``D(lam) = sum_i psi_i((A^T lam)_i) - <lam, y>``, whose gradient is
    ``A x(lam) - y`` and Hessian ``A diag(psi''(s)) A^T``.

    Algorithm: damped Newton on D from ``lam = 0`` with a backtracking
    (Armijo) line search that stays in the domain (fraction-to-boundary 0.99
    for L > 2; for L = 2 a cap keeping ``log(alpha^2) + |s| <= 600`` so nothing
    overflows). Objective differences are evaluated coordinatewise without
    cancellation, and ``lam`` is stored and ``A^T lam`` evaluated in
    double-double arithmetic, so small alpha (where ``s`` is
    ~``log(1/alpha^2)`` for L = 2 but ~``alpha^(2-L)``, e.g. 1e10, for L > 2,
    while x depends on ``a - s`` = O(1)) keeps full accuracy up to
    ``alpha^(2-L)`` of about 1e16 (alpha >= ~1e-8 for L = 4); beyond that
    the double-double rounding of ``a - s`` limits the attainable residual
    (accounted for in the stopping rule below), and for ``alpha^(2-L)``
    beyond ~1e30 Newton fails (RuntimeError). The Newton
    system is solved by a row-sorted pivoted QR, checked with a double-double
    residual and iteratively refined; when the Hessian is too ill-conditioned
    for that (coordinates with tiny curvature and tiny x) a small, adaptive
    Levenberg-Marquardt term is added. Stops when
    ``||A x - y|| <= tol * max(1, ||y||)`` or, if larger, when the residual
    reaches the rounding level of the arithmetic (about
    ``eps * || |A| |x| + |y| ||``, which matters only when x is large, e.g.
    the nonnegative model at large alpha where ``x ~ alpha^L``, plus the
    double-double term above).

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
        the nonnegative model when ``y`` is not ``A x`` for any ``x > 0``.
    """
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

    if depth == 2:
        pot = _ExpNonneg(alpha) if nonnegative else _ExpSigned(alpha)
    else:
        pot = _PowNonneg(alpha, depth) if nonnegative else _PowSigned(alpha, depth)

    dual_map = _DualMap(A)
    lam_hi = np.zeros(m)
    lam_lo = np.zeros(m)
    state = pot.state(*dual_map(lam_hi, lam_lo))
    ynorm = max(1.0, float(np.linalg.norm(y)))
    target = tol * ynorm
    col_sq = np.einsum("ij,ij->j", A, A)
    abs_a = np.abs(A)
    c_armijo = 1e-4
    mu_rel = 0.0
    rnorm = np.inf
    for it in range(max_iter + 1):
        x = pot.x(state)
        r = A @ x - y
        rnorm = _safe_norm(r)
        if not np.isfinite(rnorm):
            break
        if rnorm <= target:
            return x
        h = pot.hess(state)
        if rnorm <= _rounding_floor(A, y, x, h, lam_hi, abs_a):
            return x
        if it == max_iter:
            break
        scale = float(np.sum(h * col_sq))
        if not (np.isfinite(scale) and scale > 0):
            break
        d, ds, mu = _newton_step(A, h, r, rnorm, scale, col_sq, mu_rel, dual_map)
        if d is None:
            break
        mu_rel = mu / scale
        gd = float(r @ d)
        if not gd < 0:
            break
        dy = float(d @ y)
        dy_abs = float(np.abs(d) @ np.abs(y))
        t_bound, frac = pot.max_step(state, ds)
        t = min(1.0, frac * t_bound)
        new_state = None
        for _ in range(200):
            if t <= 0:
                break
            if _accept_step(pot, state, ds, t, gd, dy, dy_abs, rnorm, A, y, c_armijo):
                lam_t_hi, e = _two_sum(lam_hi, t * d)
                lam_t_hi, lam_t_lo = _two_sum(lam_t_hi, lam_lo + e)
                candidate = pot.state(*dual_map(lam_t_hi, lam_t_lo))
                if pot.in_domain(candidate):  # exact recomputation agrees
                    new_state = candidate
                    break
            t *= 0.5
        if new_state is None:
            break
        lam_hi, lam_lo, state = lam_t_hi, lam_t_lo, new_state
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
    raise RuntimeError(
        f"diagonal_flow_limit did not converge: residual ||A x - y|| = {rnorm:.3e} "
        f"(target {target:.3e}) after {it} Newton iterations{hint}"
    )


# --------------------------------------------------------------------------
# max-margin linear classifiers (SCIENCE.md, section 2)
# --------------------------------------------------------------------------
class MaxMargin(NamedTuple):
    """Result of :func:`max_margin`; unpacks as ``w, margin = max_margin(...)``.

    Attributes
    ----------
    w : ndarray, shape (d,)
        A maximizer with ``||w|| = 1`` in the requested norm.
    margin : float
        ``min_i y_i <w, x_i>`` evaluated at the returned ``w`` (the optimum).
    """

    w: np.ndarray
    margin: float


class DiagonalMaxMargin(NamedTuple):
    """Result of :func:`diagonal_max_margin`; unpacks as ``beta, margin, u, v``.

    Attributes
    ----------
    beta : ndarray, shape (d,)
        Predictor ``u^2 - v^2`` maximizing the margin, ``||beta|| = 1`` in the
        requested norm.
    margin : float
        ``min_i y_i <beta, x_i>`` (the predictor-level max-margin).
    u, v : ndarray, shape (d,)
        Parameters with ``u^2 - v^2 = beta`` and ``u_j v_j = 0`` realizing the
        parameter-space margin (see :func:`diagonal_max_margin`).
    """

    beta: np.ndarray
    margin: float
    u: np.ndarray
    v: np.ndarray


_MARGIN_NORMS = ("l2", "linf", "l1")
_SEP_TOL = 1e-9  # margins below _SEP_TOL * (largest possible margin) count as zero


def _not_separable(norm: str, margin: float) -> ValueError:
    return ValueError(
        "X, y are not linearly separable through the origin (no bias): the optimal "
        f"{norm} margin is {margin:.3e} <= 0 up to tolerance"
    )


def _max_margin_lp(Z: np.ndarray, norm: str) -> np.ndarray:
    """The LPs for linf and l1; returns w (before normalization)."""
    n, d = Z.shape
    opts = {
        "primal_feasibility_tolerance": 1e-10,
        "dual_feasibility_tolerance": 1e-10,
        "presolve": True,
    }
    if norm == "linf":
        # variables (w, t): max t s.t. t - <z_i, w> <= 0, -1 <= w_j <= 1
        c = np.zeros(d + 1)
        c[-1] = -1.0
        a_ub = np.hstack([-Z, np.ones((n, 1))])
        bounds = [(-1.0, 1.0)] * d + [(None, None)]
        res = scipy.optimize.linprog(
            c, A_ub=a_ub, b_ub=np.zeros(n), bounds=bounds, method="highs", options=opts
        )
    else:
        # variables (w+, w-, t): max t s.t. t - <z_i, w+ - w-> <= 0,
        # sum(w+ + w-) <= 1, w+- >= 0
        c = np.zeros(2 * d + 1)
        c[-1] = -1.0
        a_ub = np.vstack(
            [
                np.hstack([-Z, Z, np.ones((n, 1))]),
                np.concatenate([np.ones(2 * d), [0.0]])[None, :],
            ]
        )
        b_ub = np.concatenate([np.zeros(n), [1.0]])
        bounds = [(0.0, None)] * (2 * d) + [(None, None)]
        res = scipy.optimize.linprog(
            c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs", options=opts
        )
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"max_margin: HiGHS failed (status {res.status}): {res.message}")
    x = np.asarray(res.x, dtype=np.float64)
    return x[:d] if norm == "linf" else x[:d] - x[d : 2 * d]


def _ldp(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``min ||w||_2 s.t. Z w >= 1`` by least-distance programming.

    Lawson & Hanson (Solving Least Squares Problems, ch. 23): with
    ``E = [Z^T; 1^T]`` and ``f = e_{d+1}``, solve the NNLS problem
    ``min_{a >= 0} ||E a - f||``; with ``r = E a - f``, ``w = -r[:d] / r[d]``
    and the multipliers are ``a / (-r[d])``. ``r = 0`` means infeasible.
    Returns (w, multipliers) or None.
    """
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    try:
        a, _ = scipy.optimize.nnls(E, f, maxiter=max(50 * n, 1000))
    except RuntimeError as exc:
        raise RuntimeError(f"max_margin(norm='l2'): NNLS failed: {exc}") from exc
    r = E @ a - f
    if not (np.all(np.isfinite(r)) and -r[-1] > 1e-14):
        return None
    return -r[:d] / r[-1], a / (-r[-1])


def _l2_certificate(Z: np.ndarray, w: np.ndarray, a: np.ndarray) -> tuple[float, float]:
    """(lower, upper) bounds on the l2 max-margin from a primal w and dual a >= 0.

    lower = min_i <z_i, w> / ||w||_2 (any w); upper = ||Z^T lam||_2 with
    lam = a / sum(a) in the simplex (for unit w, min_i <z_i, w> <=
    <Z^T lam, w> <= ||Z^T lam||)."""
    nw = float(np.linalg.norm(w))
    lower = float(np.min(Z @ w)) / nw if nw > 0 else -np.inf
    s = float(np.sum(a))
    upper = float(np.linalg.norm(Z.T @ (a / s))) if s > 0 else np.inf
    return lower, upper


def _max_margin_l2(Z: np.ndarray, scale: float) -> np.ndarray:
    """Hard-margin SVM without bias, certified by duality (see max_margin)."""
    n, d = Z.shape
    sol = _ldp(Z)
    if sol is None:
        raise _not_separable("l2", 0.0)
    w0, a0 = sol
    candidates = [(w0, a0)]
    # polish on the support S: min-norm w with Z_S w = 1, multipliers a_S >= 0
    # with Z_S^T a_S = w (NNLS, so dual feasibility holds by construction)
    active = np.flatnonzero(a0 > 1e-12 * max(1.0, float(np.max(a0))))
    if active.size > 0:
        Zs = Z[active]
        w1, *_ = np.linalg.lstsq(Zs, np.ones(active.size), rcond=None)
        try:
            a_s, _ = scipy.optimize.nnls(Zs.T, w1, maxiter=max(50 * active.size, 1000))
        except RuntimeError:
            a_s = None
        if a_s is not None and np.all(np.isfinite(w1)) and np.all(np.isfinite(a_s)):
            a1 = np.zeros(n)
            a1[active] = a_s
            candidates.append((w1, a1))
    best = None
    for w, a in candidates:
        lower, upper = _l2_certificate(Z, w, a)
        if best is None or lower > best[1]:
            best = (w, lower, upper)
    w, lower, upper = best
    if not lower > _SEP_TOL * scale:
        raise _not_separable("l2", lower)
    upper_best = min(_l2_certificate(Z, w_, a_)[1] for w_, a_ in candidates)
    if upper_best - lower > 1e-8 * max(upper_best, _SEP_TOL * scale):
        raise RuntimeError(
            f"max_margin(norm='l2'): no certified optimum (margin {lower:.17g}, "
            f"dual bound {upper_best:.17g})"
        )
    return w


def max_margin(X: np.ndarray, y: np.ndarray, norm: str = "l2") -> MaxMargin:
    """Maximum margin of a bias-free linear classifier ``f(x) = <w, x>``.

    Solves ``max_{||w|| <= 1} min_i y_i <w, x_i>`` for ``||.||`` the l2, l_inf
    or l1 norm (SCIENCE.md, section 2). With ``z_i = y_i x_i``:

    - ``norm="l2"``: the hard-margin SVM without bias,
      ``min ||w||_2^2 s.t. <z_i, w> >= 1``; then ``margin = 1 / ||w||_2`` and
      ``w`` is rescaled to unit l2 norm. Solved as a least-distance program
      through NNLS (Lawson-Hanson active set, ``scipy.optimize.nnls``), then
      polished on the support vectors ``S`` (minimum-norm solution of
      ``Z_S w = 1`` and multipliers ``a_S >= 0`` with ``Z_S^T a_S = w``).
      The result is certified by duality: the returned margin ``min_i <z_i, w>``
      is within 1e-8 (relative) of the upper bound ``||sum_i lam_i z_i||_2``,
      ``lam = a / sum(a)`` in the simplex (the optimum is the distance from
      the origin to ``conv{z_i}``); otherwise RuntimeError.
    - ``norm="linf"``: the LP ``max t s.t. <z_i, w> >= t, -1 <= w_j <= 1``.
    - ``norm="l1"``: the LP ``max t s.t. <z_i, w_+ - w_-> >= t,
      sum_j (w_+ + w_-)_j <= 1, w_+, w_- >= 0``.

    The LPs use HiGHS (``scipy.optimize.linprog(method="highs")``) with
    feasibility tolerances 1e-10. The l_inf and l1 maximizers need not be
    unique: compare margins, not directions.

    Parameters
    ----------
    X : array, shape (n, d)
        Inputs (finite).
    y : array, shape (n,)
        Labels, each exactly -1 or +1.
    norm : {"l2", "linf", "l1"}

    Returns
    -------
    MaxMargin
        ``(w, margin)``: ``w`` with ``||w|| = 1`` in ``norm`` and
        ``margin = min_i y_i <w, x_i>`` evaluated at that ``w``.

    Raises
    ------
    ValueError
        Bad input (names the argument), or X, y not linearly separable through
        the origin (optimal margin <= 1e-9 times ``max_i ||x_i||_*``, the
        largest margin any unit ``w`` could have).
    RuntimeError
        The solver failed.
    """
    X = check_matrix(X, "X")
    y = check_labels(y, X.shape[0])
    check_choice(norm, "norm", _MARGIN_NORMS)
    Z = y[:, None] * X
    # largest possible margin: max_i ||z_i||_* (dual norm)
    dual_ord = {"l2": 2, "linf": 1, "l1": np.inf}[norm]
    scale = float(np.max(np.linalg.norm(Z, ord=dual_ord, axis=1)))
    if norm == "l2":
        w = _max_margin_l2(Z, scale)
        w = w / np.linalg.norm(w)
    else:
        w = _max_margin_lp(Z, norm)
        size = float(np.max(np.abs(w))) if norm == "linf" else float(np.sum(np.abs(w)))
        if size > 0:
            w = w / size
    margin = float(np.min(Z @ w))
    if not margin > _SEP_TOL * scale:
        raise _not_separable(norm, margin)
    return MaxMargin(w=w, margin=margin)


def diagonal_max_margin(X: np.ndarray, y: np.ndarray, norm: str = "l1") -> DiagonalMaxMargin:
    """Predictor-level max-margin LPs for the diagonal network ``<u^2 - v^2, x>``.

    The model is 2-homogeneous in ``theta = (u, v)`` and linear in the
    predictor ``beta = u^2 - v^2``; with ``q_i = y_i <beta, x_i>`` the margin
    of steepest descent in the norm ``||.||`` is
    ``gamma(theta) = min_i q_i / ||theta||^2`` (SCIENCE.md, section 2).
    Coordinatewise ``u_j^2 + v_j^2 >= |u_j^2 - v_j^2|`` and
    ``max(u_j^2, v_j^2) >= |u_j^2 - v_j^2|``, both with equality iff
    ``u_j v_j = 0``. Hence, whenever ``min_i q_i > 0``:

    - ``norm="l1"`` (the limit for l2 steepest descent = gradient descent):
      ``gamma_2(theta) = min_i q_i / ||theta||_2^2 <= min_i q_i / ||beta||_1
      <= max_{||b||_1 <= 1} min_i y_i <b, x_i>`` (the l1 max-margin of beta).
    - ``norm="linf"`` (the limit for l_inf steepest descent = sign descent):
      ``gamma_inf(theta) = min_i q_i / ||theta||_inf^2 <= min_i q_i /
      ||beta||_inf <= max_{||b||_inf <= 1} min_i y_i <b, x_i>``.

    Both bounds are attained: the returned ``beta`` is the maximizer of
    :func:`max_margin` in that norm (``||beta|| = 1``), and
    ``u = sqrt(max(beta, 0))``, ``v = sqrt(max(-beta, 0))`` have ``u_j v_j = 0``,
    so ``||theta||_2^2 = ||beta||_1 = 1`` (l1) or ``||theta||_inf^2 =
    ||beta||_inf = 1`` (linf), and ``gamma(theta) = margin`` in the
    corresponding parameter norm: the returned ``margin`` is
    ``sup_theta min_i q_i / ||theta||_2^2`` for ``norm="l1"`` and
    ``sup_theta min_i q_i / ||theta||_inf^2`` for ``norm="linf"``.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array, shape (n,)
        Labels, each exactly -1 or +1.
    norm : {"l1", "linf"}
        The norm of the predictor LP (l1 for gradient descent on (u, v),
        linf for sign descent).

    Returns
    -------
    DiagonalMaxMargin
        ``(beta, margin, u, v)``.

    Raises
    ------
    ValueError
        Bad input (names the argument) or X, y not linearly separable.
    """
    check_choice(norm, "norm", ("l1", "linf"))
    beta, margin = max_margin(X, y, norm=norm)
    u = np.sqrt(np.maximum(beta, 0.0))
    v = np.sqrt(np.maximum(-beta, 0.0))
    return DiagonalMaxMargin(beta=beta, margin=margin, u=u, v=v)


# --------------------------------------------------------------------------
# minimum nuclear norm interpolation (matrix sensing / completion)
# --------------------------------------------------------------------------
def min_nuclear_norm(A, y, shape=None, *, solver: str | None = None, eps: float = 1e-8):
    """The minimum nuclear-norm matrix ``X`` with ``<A_i, X> = y_i`` for all i.

    ``A``: float array (n, d_out, d_in) of sensing matrices, or int array
    (n, 2) of (row, column) pairs (matrix completion; then ``shape`` is
    required). Solved as the semidefinite program
    ``min ||X||_*  s.t.  <A_i, X> = y_i`` by cvxpy with a bundled conic solver
    (``solver``: "CLARABEL" by default, "SCS" as fallback) to tolerance
    ``eps``. Returns ``X`` (d_out, d_in). Requires cvxpy (the ``nuclear`` and
    ``test`` extras install it).
    """
    try:
        import cvxpy as cp
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "min_nuclear_norm needs cvxpy: pip install 'implicitbias[nuclear]' (or pip install cvxpy)"
        ) from None
    arr = np.asarray(A)
    if arr.ndim == 3 and np.issubdtype(arr.dtype, np.number):
        arr = np.asarray(arr, dtype=np.float64)
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError("A must be a non-empty finite array (n, d_out, d_in)")
        n, d_out, d_in = arr.shape
        if shape is not None and tuple(shape) != (d_out, d_in):
            raise ValueError(f"shape {tuple(shape)} does not match A's matrices {(d_out, d_in)}")
        yv = check_vector(y, "y", n)
        X = cp.Variable((d_out, d_in))
        Amat = arr.reshape(n, d_out * d_in)  # row i = A_i flattened row-major
        constraints = [Amat @ cp.vec(X, order="C") == yv]
    elif arr.ndim == 2 and arr.shape[1] == 2 and np.issubdtype(arr.dtype, np.integer):
        if shape is None or len(shape) != 2:
            raise ValueError("shape (d_out, d_in) is required with entry sampling (index pairs)")
        d_out = check_positive_int(shape[0], "shape")
        d_in = check_positive_int(shape[1], "shape")
        n = arr.shape[0]
        if n == 0 or arr.min() < 0 or arr[:, 0].max() >= d_out or arr[:, 1].max() >= d_in:
            raise ValueError(f"A: index pairs must be non-empty and within shape {(d_out, d_in)}")
        yv = check_vector(y, "y", n)
        X = cp.Variable((d_out, d_in))
        constraints = [X[arr[:, 0], arr[:, 1]] == yv]
    else:
        raise ValueError("A must be a float array (n, d_out, d_in) or an int array (n, 2) of index pairs")
    prob = cp.Problem(cp.Minimize(cp.normNuc(X)), constraints)
    solvers = [solver] if solver is not None else ["CLARABEL", "SCS"]
    last_error, fallback = None, None
    for name in solvers:
        if name not in cp.installed_solvers():
            continue
        try:
            with warnings.catch_warnings():  # "inaccurate" is reported through prob.status below
                warnings.simplefilter("ignore")
                if name == "CLARABEL":
                    prob.solve(solver=name, tol_gap_abs=eps, tol_gap_rel=eps, tol_feas=eps)
                elif name == "SCS":
                    prob.solve(solver=name, eps=max(eps, 1e-8), max_iters=200_000)
                else:
                    prob.solve(solver=name)
        except cp.error.SolverError as exc:
            last_error = exc
            continue
        if X.value is None:
            continue
        if prob.status == "optimal":
            return np.array(X.value, dtype=np.float64)
        if prob.status == "optimal_inaccurate" and fallback is None:
            fallback = np.array(X.value, dtype=np.float64)
    if fallback is not None:
        return fallback
    raise RuntimeError(f"min_nuclear_norm: no solver succeeded (status {prob.status!r}; {last_error})")
