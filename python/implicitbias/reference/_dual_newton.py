"""Damped Newton on the dual of the diagonal-network flow limit (see :mod:`.sparse`).

The limit ``x = grad psi(A^T lam)`` of :func:`~implicitbias.reference.diagonal_flow_limit`
is found by minimizing the smooth strictly convex dual
``D(lam) = sum_i psi_i((A^T lam)_i) - <lam, y>`` (gradient ``A x(lam) - y``,
Hessian ``A diag(psi''(s)) A^T``), with ``psi`` one of the potentials of
:mod:`._potentials`.

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
beyond ~1e30 Newton fails. The Newton
system is solved by a row-sorted pivoted QR, checked with a double-double
residual and iteratively refined; when the Hessian is too ill-conditioned
for that (coordinates with tiny curvature and tiny x) a small, adaptive
Levenberg-Marquardt term is added. Stops when ``||A x - y|| <= target``
(``tol * max(1, ||y||)``) or, if larger, when the residual
reaches the rounding level of the arithmetic (about
``eps * || |A| |x| + |y| ||``, which matters only when x is large, e.g.
the nonnegative model at large alpha where ``x ~ alpha^L``, plus the
double-double term above).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

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
# Newton direction and step acceptance
# --------------------------------------------------------------------------
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
# the Newton loop
# --------------------------------------------------------------------------
_C_ARMIJO = 1e-4  # sufficient-decrease constant of the line search
_MAX_HALVINGS = 200  # backtracking steps per line search


def _line_search(pot, state, d, ds, r, rnorm, A, y, lam_hi, lam_lo, dual_map):
    """Backtracking (Armijo) line search from ``lam`` along the Newton direction ``d``.

    Starts at ``t = min(1, frac * t_bound)`` (inside the potential's domain)
    and halves ``t`` until :func:`_accept_step` accepts it and the state
    recomputed exactly from ``lam + t d`` (double-double) is in the domain.
    Returns ``(lam_hi, lam_lo, state)`` at the accepted step, or None (no
    descent direction, or no acceptable step).
    """
    gd = float(r @ d)
    if not gd < 0:
        return None
    dy = float(d @ y)
    dy_abs = float(np.abs(d) @ np.abs(y))
    t_bound, frac = pot.max_step(state, ds)
    t = min(1.0, frac * t_bound)
    for _ in range(_MAX_HALVINGS):
        if t <= 0:
            break
        if _accept_step(pot, state, ds, t, gd, dy, dy_abs, rnorm, A, y, _C_ARMIJO):
            lam_t_hi, e = _two_sum(lam_hi, t * d)
            lam_t_hi, lam_t_lo = _two_sum(lam_t_hi, lam_lo + e)
            candidate = pot.state(*dual_map(lam_t_hi, lam_t_lo))
            if pot.in_domain(candidate):  # exact recomputation agrees
                return lam_t_hi, lam_t_lo, candidate
        t *= 0.5
    return None


def _minimize_dual(A, y, pot, target, max_iter):
    """Damped Newton on ``D(lam) = sum_i psi_i((A^T lam)_i) - <lam, y>`` from ``lam = 0``.

    ``pot`` is one of the potentials of :mod:`._potentials`; stops when
    ``||A x - y|| <= target`` or at the rounding floor (module docstring).
    Returns ``(x, rnorm, it)``: ``x = grad psi(A^T lam)`` at convergence, or
    None if Newton stopped first (then ``rnorm`` is the residual reached
    after ``it`` iterations).
    """
    m = A.shape[0]
    dual_map = _DualMap(A)
    lam_hi = np.zeros(m)
    lam_lo = np.zeros(m)
    state = pot.state(*dual_map(lam_hi, lam_lo))
    col_sq = np.einsum("ij,ij->j", A, A)
    abs_a = np.abs(A)
    mu_rel = 0.0
    rnorm = np.inf
    for it in range(max_iter + 1):
        x = pot.x(state)
        r = A @ x - y
        rnorm = _safe_norm(r)
        if not np.isfinite(rnorm):
            break
        if rnorm <= target:
            return x, rnorm, it
        h = pot.hess(state)
        if rnorm <= _rounding_floor(A, y, x, h, lam_hi, abs_a):
            return x, rnorm, it
        if it == max_iter:
            break
        scale = float(np.sum(h * col_sq))
        if not (np.isfinite(scale) and scale > 0):
            break
        d, ds, mu = _newton_step(A, h, r, rnorm, scale, col_sq, mu_rel, dual_map)
        if d is None:
            break
        mu_rel = mu / scale
        step = _line_search(pot, state, d, ds, r, rnorm, A, y, lam_hi, lam_lo, dual_map)
        if step is None:
            break
        lam_hi, lam_lo, state = step
    return None, rnorm, it
