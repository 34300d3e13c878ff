"""Max-margin references for classification (docs/science.md, section 2).

* :func:`max_margin` -- the l2 / l_inf / l1 max-margin of a bias-free linear
  classifier (SVM by least-distance programming, LPs by HiGHS), result
  :class:`MaxMargin`.
* :func:`diagonal_max_margin` -- the predictor-level max-margin LPs for the
  diagonal network ``<u^2 - v^2, x>``, result :class:`DiagonalMaxMargin`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.optimize

from .._validation import check_choice, check_labels, check_matrix


# --------------------------------------------------------------------------
# max-margin linear classifiers (docs/science.md, section 2)
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
        bounds: list[tuple[float | None, float | None]] = [(-1.0, 1.0)] * d + [(None, None)]
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
    n, _d = Z.shape
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
    best: tuple[np.ndarray, float, float] | None = None
    for w, a in candidates:
        lower, upper = _l2_certificate(Z, w, a)
        if best is None or lower > best[1]:
            best = (w, lower, upper)
    assert best is not None  # candidates is never empty
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
    or l1 norm (docs/science.md, section 2). With ``z_i = y_i x_i``:

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
    ``gamma(theta) = min_i q_i / ||theta||^2`` (docs/science.md, section 2).
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

