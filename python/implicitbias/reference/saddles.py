"""The saddle-to-saddle limit of the depth-2 diagonal flow as the initialization vanishes.

Model and units (docs/science.md, section 1.10): ``x = u^2 - v^2`` from
``u = v = alpha``, loss ``L(x) = 0.5 ||A x - y||^2``, ``g(x) = A^T (A x - y)``.
With ``S(t) = int_0^t (A x - y) dt`` the flow is ``x = 2 alpha^2 sinh(-4 A^T S)``.
In the rescaled time ``tau = 2 t / log(1/alpha)`` and with
``nu = -2 A^T S / log(1/alpha)``,

    x_i = alpha^(2 - 2 nu_i) - alpha^(2 + 2 nu_i),      d nu / d tau = -g(x),

so ``x_i`` is negligible while ``|nu_i| < 1`` and becomes of order one when
``|nu_i|`` reaches 1. As ``alpha -> 0`` (Pesme & Flammarion 2023, arXiv
2304.00488) the trajectory ``x(tau)`` becomes a staircase: it sits at a saddle
``beta_k`` of the loss on the plateau ``[tau_k, tau_(k+1))`` while ``nu`` moves
linearly, and jumps to the next saddle when another coordinate of ``nu``
reaches the boundary of ``[-1, 1]``. :func:`saddle_sequence` computes this
limit exactly (up to the rounding of its least-squares solves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from .._validation import check_matrix, check_positive, check_vector

__all__ = ["SaddleSequence", "saddle_sequence"]


@dataclass(frozen=True)
class SaddleSequence:
    """The saddle-to-saddle limit process of :func:`saddle_sequence` (K jumps, K + 1 saddles).

    Attributes
    ----------
    times : ndarray (K + 1,)
        ``tau_0 = 0 < tau_1 < ... < tau_K``: the rescaled times ``tau = 2 t / log(1/alpha)``
        at which the limit process arrives at each saddle (``tau_k``, k >= 1, is the k-th jump).
    saddles : ndarray (K + 1, N)
        ``beta_0 = 0, beta_1, ..., beta_K``; ``beta_k`` is the limit of ``x(tau)`` on the
        plateau ``(tau_k, tau_(k+1))`` (the last one: ``(tau_K, inf)``). ``beta_K`` minimizes
        the loss and, among its minimizers, the l1 norm (basis pursuit when ``y`` is in the
        range of ``A``).
    nu : ndarray (K + 1, N)
        ``nu(tau_k)`` (``nu(0) = 0``); ``|nu_i| <= 1`` throughout.
    active : list of K + 1 int arrays
        The boundary set ``{i : |nu_i(tau_k)| = 1}`` (sorted) on which ``beta_k`` is solved;
        ``sign(nu_i)`` is the sign ``beta_k`` may take there.
    losses : ndarray (K + 1,)
        ``L(beta_k)``, strictly decreasing.
    """

    times: np.ndarray
    saddles: np.ndarray
    nu: np.ndarray
    active: list[np.ndarray] = field(repr=False)
    losses: np.ndarray

    @property
    def n_jumps(self) -> int:
        """K, the number of jumps."""
        return int(self.times.size - 1)

    def plateaus(self) -> np.ndarray:
        """``(K + 1, 2)``: the plateau ``[tau_k, tau_(k+1)]`` of each saddle (the last ends at inf)."""
        return np.column_stack([self.times, np.append(self.times[1:], np.inf)])

    def x_at(self, tau: float | np.ndarray) -> np.ndarray:
        """The limiting staircase: ``beta_k`` for ``tau`` in ``[tau_k, tau_(k+1))`` (shape ``tau.shape + (N,)``)."""
        tau = np.asarray(tau, dtype=np.float64)
        k = np.searchsorted(self.times, tau, side="right") - 1
        return self.saddles[np.clip(k, 0, None)]

    def nu_at(self, tau: float | np.ndarray) -> np.ndarray:
        """The limit of ``nu(tau)``: ``nu_k - (tau - tau_k) g(beta_k)`` on plateau k (piecewise linear)."""
        tau = np.asarray(tau, dtype=np.float64)
        k = np.clip(np.searchsorted(self.times, tau, side="right") - 1, 0, None)
        velocity = np.diff(np.vstack([self.nu, self.nu[-1]]), axis=0)
        span = np.diff(np.append(self.times, np.inf))
        rate = np.where(np.isfinite(span)[:, None], velocity / np.where(np.isfinite(span), span, 1.0)[:, None], 0.0)
        return self.nu[k] + (tau - self.times[k])[..., None] * rate[k]


def saddle_sequence(A: np.ndarray, y: np.ndarray, *, tol: float = 1e-10, max_jumps: int | None = None
                    ) -> SaddleSequence:
    """The saddle-to-saddle limit (``alpha -> 0``) of the depth-2 diagonal flow.

    Units as in the package's flow: ``x = u^2 - v^2``, ``u = v = alpha`` at ``t = 0``,
    loss ``0.5 ||A x - y||^2``, ``g(b) = A^T (A b - y)``, rescaled time
    ``tau = 2 t / log(1/alpha)`` and ``nu = -2 A^T int_0^t (A x - y) / log(1/alpha)``, so that
    ``x_i = alpha^(2 - 2 nu_i) - alpha^(2 + 2 nu_i)`` and ``d nu / d tau = -g(x)``
    (module docstring; docs/science.md, section 1.10).

    The process, from ``tau_0 = 0``, ``beta_0 = 0``, ``nu_0 = 0``, for k = 0, 1, ...:

    1. On plateau k, ``nu(tau) = nu_k - (tau - tau_k) g(beta_k)``; a boundary coordinate
       (``|nu_i| = 1``) with ``beta_k,i != 0`` has ``g_i = 0`` and stays.
    2. The next jump is the first time another coordinate reaches the boundary:
       ``tau_(k+1) = tau_k + min_i (1 - sign(v_i) nu_k,i) / |v_i|`` over the coordinates with
       velocity ``v_i = -g_i(beta_k) != 0`` (a boundary coordinate with ``beta_k,i = 0`` and
       ``sign(nu_i) g_i > 0`` leaves the boundary inwards and may reach the other side).
       If ``g(beta_k) = 0`` there is no further jump: ``beta_k`` is the last saddle.
    3. The next saddle is the sign-constrained least squares on the boundary set
       ``B = {i : |nu_i(tau_(k+1))| = 1}``:
       ``beta_(k+1) = argmin L(b)`` s.t. ``b_i = 0`` off ``B`` and ``nu_i b_i >= 0`` on ``B``
       (solved as non-negative least squares in ``c_i = sign(nu_i) b_i``, then re-solved by
       least squares on its support).

    Its KKT conditions are what the process keeps: ``g_i = 0`` where ``beta_i != 0`` and
    ``sign(nu_i) g_i >= 0`` on the rest of ``B``. The loss falls strictly at every jump, and
    the last saddle has ``g = 0`` and the certificate ``|nu| <= 1``, ``nu`` in ``range(A^T)``,
    ``nu_i = sign(beta_i)`` on its support: it is the minimum-l1-norm minimizer of the loss,
    i.e. basis pursuit ``min ||b||_1 s.t. A b = y`` when ``y`` is in the range of ``A``.

    Ties and degenerate cases (documented behavior):

    - coordinates whose hitting times agree to ``tol`` relative join the boundary together
      (one jump; a plateau shorter than that is not resolved);
    - "``g_i = 0``" means ``|g_i| <= tol * ||A^T y||_inf``;
    - ``A^T y = 0``: ``x = 0`` is stationary, the sequence is the single saddle 0 (no jump);
    - a saddle that is not unique raises ``ValueError`` (detected as linearly dependent
      columns of ``A`` on its support and on the boundary coordinates with zero gradient, e.g.
      two equal columns): the limit process is then not determined by this rule (non-generic
      ``A``);
    - a boundary coordinate at zero with zero gradient (no strict complementarity, e.g. an
      exactly sparse ``y`` whose path passes through another coordinate) is kept on the
      boundary; the limit is right, but the flow then approaches that saddle algebraically in
      ``t``, not exponentially, so finite-``alpha`` runs reach it late;
    - more than ``max_jumps`` jumps (default ``10 N + 10``) raises ``RuntimeError``.

    Parameters
    ----------
    A : array (M, N), y : array (M,)
        Sensing matrix and measurements (finite).
    tol : float > 0
        Relative tolerance of the tie and zero-gradient tests above.
    max_jumps : int, optional
        The most jumps allowed.

    Returns
    -------
    SaddleSequence
        Jump times, saddles, ``nu`` at each jump, boundary sets and losses.
    """
    A = check_matrix(A, "A")
    M, N = A.shape
    y = check_vector(y, "y", size=M)
    tol = check_positive(tol, "tol")
    if max_jumps is None:
        max_jumps = 10 * N + 10
    elif isinstance(max_jumps, bool) or not isinstance(max_jumps, (int, np.integer)) or max_jumps < 0:
        raise ValueError(f"max_jumps must be an int >= 0, got {max_jumps!r}")
    gscale = float(np.max(np.abs(A.T @ y), initial=0.0))
    gtol = tol * gscale

    tau = 0.0
    nu = np.zeros(N)
    beta = np.zeros(N)
    boundary = np.zeros(N, dtype=bool)
    times, saddles, nus, losses = [0.0], [beta], [nu.copy()], [_loss(A, y, beta)]
    actives = [np.zeros(0, dtype=np.int64)]
    while True:
        g = A.T @ (A @ beta - y)
        velocity = -g
        # boundary coordinates held there: on the support (g_i = 0 by the KKT conditions), or at
        # zero with sign(nu_i) g_i <= 0 (to tol); the others move
        held = boundary & ((beta != 0) | (np.sign(nu) * g <= gtol))
        velocity[held] = 0.0
        moving = np.abs(velocity) > gtol
        if not np.any(moving) or gscale == 0.0:
            break
        if len(times) > max_jumps:
            raise RuntimeError(f"saddle_sequence: more than max_jumps={max_jumps} jumps")
        direction = np.sign(velocity)
        hit = np.full(N, np.inf)
        hit[moving] = (1.0 - direction[moving] * nu[moving]) / np.abs(velocity[moving])
        dt = float(np.min(hit))
        hitters = hit <= dt * (1.0 + tol) + tol * max(tau, 1.0 / gscale)
        tau += dt
        nu = nu + dt * velocity
        nu[held] = np.sign(nu[held])
        nu[hitters] = direction[hitters]
        boundary = held | hitters
        beta = _sign_constrained_lsq(A, y, np.flatnonzero(boundary), nu, gtol)
        times.append(tau)
        saddles.append(beta)
        nus.append(nu.copy())
        actives.append(np.flatnonzero(boundary))
        losses.append(_loss(A, y, beta))
    return SaddleSequence(np.array(times), np.array(saddles).reshape(-1, N), np.array(nus).reshape(-1, N), actives,
                          np.array(losses))


def _loss(A: np.ndarray, y: np.ndarray, b: np.ndarray) -> float:
    r = A @ b - y
    return 0.5 * float(r @ r)


def _sign_constrained_lsq(A: np.ndarray, y: np.ndarray, idx: np.ndarray, nu: np.ndarray, gtol: float) -> np.ndarray:
    """``argmin 0.5 ||A b - y||^2`` s.t. ``b = 0`` off ``idx``, ``sign(nu_i) b_i >= 0`` on ``idx``.

    Unique unless a direction ``d != 0`` with ``A d = 0`` stays feasible and keeps the loss: ``d`` lives on
    the support and on the boundary coordinates at zero with zero gradient (``F`` below); a rank-deficient
    ``A_F`` raises (this may also refuse a unique saddle whose sign constraints exclude every such ``d``)."""
    N = A.shape[1]
    s = np.sign(nu[idx])
    B = A[:, idx] * s
    c, _ = scipy.optimize.nnls(B, y, maxiter=50 * max(idx.size, 1))
    support = c > 0
    if np.any(support):
        polished, *_ = np.linalg.lstsq(B[:, support], y, rcond=None)
        if np.all(polished > 0):  # the least squares on the support, without the NNLS iteration's rounding
            c[support] = polished
    b = np.zeros(N)
    b[idx] = s * c
    g = A.T @ (A @ b - y)
    free = support | (np.abs(g[idx]) <= gtol)
    if np.any(free) and np.linalg.matrix_rank(A[:, idx[free]]) < int(np.sum(free)):
        raise ValueError("saddle_sequence: a saddle is not unique (the columns of A on its support and on the "
                         f"boundary coordinates with zero gradient, {idx[free].tolist()}, are linearly dependent); "
                         "the limit process is not determined for this A")
    return b
