"""Diagonal linear networks, plain and weight-normalized (SCIENCE.md section 1).

Models (elementwise powers, depth ``L >= 2``)::

    signed:       x = u**L - v**L      parameters z = (u, v)
    nonnegative:  x = u**L             parameters z = u

trained on ``L(x) = 0.5 * ||A x - y||^2`` from ``u = v = init_scale``. With
``r = A x - y`` and ``g = A.T @ r`` the gradients are ``dL/du = L u**(L-1) g``
and ``dL/dv = -L v**(L-1) g``.

Weight normalization writes ``z = rho * w`` with ``||w||_2 = 1`` (``"joint"``:
one radius for all of z; ``"separate"``: one for u and one for v; the
nonnegative model always has a single vector) and runs the flow
``d rho/dt = -<w, grad_z L>``, ``dw/dt = -lr_ratio * rho * (I - w w^T) grad_z L``
(Chou, Rauhut & Ward, arXiv 2305.05448). The descent variant takes the same
step with step size ``lr`` and renormalizes ``w``.

Time is measured in units of the loss above (no 1/M factor); gradient descent
with step ``lr`` after ``k`` steps is reported at time ``k * lr``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ._native import core
from ._validation import (
    as_run_list,
    broadcast_runs,
    unique_problems,
    check_choice,
    check_matrix,
    check_positive,
    check_positive_int,
    check_vector,
)

__all__ = ["DiagonalResult", "fit", "fit_many"]

_WEIGHT_NORMS = (None, "joint", "separate")
_WN_CODE = {None: 0, "joint": 1, "separate": 2}
_METHODS = ("flow", "gd")


@dataclass
class DiagonalResult:
    """Outcome of one run.

    Attributes
    ----------
    x : ndarray (N,)
        Final predictor ``u**L - v**L`` (or ``u**L``).
    u, v : ndarray (N,) or None
        Final factors (``v`` is None for the nonnegative model).
    rho : float, tuple of two floats, or None
        Final radius (joint / nonnegative WN), radii ``(rho_u, rho_v)``
        (separate WN), or None (plain).
    w : ndarray or None
        Final unit direction(s) of the polar form, concatenated as in z.
    status : str
        ``"converged"`` (loss <= tol), ``"max_steps"``, ``"max_time"`` or
        ``"diverged"`` (non-finite values or step-size underflow; the last
        finite state is kept).
    loss : float
        Final loss ``0.5 ||A x - y||^2``.
    t_final : float
        Final time (flow) or ``steps * lr`` (descent).
    n_steps, n_rejected, n_grad_evals : int
        Accepted steps, rejected adaptive steps, gradient evaluations.
    wall_time : float
        Seconds spent by the C++ block that held this run (batched runs share
        their block's time).
    history : dict of ndarrays
        Equal-length arrays recorded at the requested points: ``t``, ``loss``,
        ``n_grad_evals``, ``wall_time``, ``error`` (``||x - x_star||_2`` when
        ``x_star`` was given), ``radius`` or ``radius_u``/``radius_v`` (WN).
    """

    x: np.ndarray
    u: np.ndarray
    v: np.ndarray | None
    rho: Any
    w: np.ndarray | None
    status: str
    loss: float
    t_final: float
    n_steps: int
    n_rejected: int
    n_grad_evals: int
    wall_time: float
    history: dict[str, np.ndarray]
    depth: int
    init_scale: np.ndarray
    lr_ratio: float
    weight_norm: str | None
    nonnegative: bool
    method: str
    lr: float | None
    A: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)

    # ------------------------------------------------------------------ diagnostics
    def invariants(self) -> tuple[np.ndarray, np.ndarray]:
        """Conserved quantities of the flow: (value at t = 0, value at the end).

        Per coordinate i (SCIENCE.md section 1), for the signed model:

        - plain, L = 2: ``u_i v_i``;  L > 2: ``u_i^(2-L) + v_i^(2-L)``
        - joint WN, L = 2: ``w_{u,i} w_{v,i} exp(kappa rho^2)``;
          L > 2: ``(w_{u,i}^(2-L) + w_{v,i}^(2-L)) exp(-(L-2) kappa rho^2 / 2)``

        For the plain nonnegative model the conserved quantity is the
        projection onto null(A) of ``log u`` (L = 2) or ``u^(2-L)`` (L > 2),
        because ``d log u/dt = -2 A^T r`` (resp. ``d u^(2-L)/dt = L (L-2) A^T r``)
        stays in range(A^T). Descent conserves none of these exactly.
        """
        L = self.depth
        alpha = self.init_scale
        kappa = self.lr_ratio
        if self.weight_norm == "separate" and not self.nonnegative:
            raise ValueError("weight_norm='separate' has no per-coordinate invariant (the radii differ)")
        if self.nonnegative:
            if self.weight_norm is not None:
                raise ValueError("the weight-normalized nonnegative model has no closed-form invariant")
            q0 = np.log(alpha) if L == 2 else alpha ** (2.0 - L)
            q1 = np.log(self.u) if L == 2 else self.u ** (2.0 - L)
            return _null_projection(self.A, q0), _null_projection(self.A, q1)
        if self.weight_norm is None:
            if L == 2:
                return alpha * alpha, self.u * self.v
            return 2.0 * alpha ** (2.0 - L), self.u ** (2.0 - L) + self.v ** (2.0 - L)
        n = alpha.size
        rho0 = np.sqrt(2.0) * np.linalg.norm(alpha)
        w0 = alpha / rho0
        wu, wv = self.w[:n], self.w[n:]
        rho = float(self.rho)
        if L == 2:
            return w0 * w0 * np.exp(kappa * rho0**2), wu * wv * np.exp(kappa * rho**2)
        c = -(L - 2) * kappa / 2.0
        return (2.0 * w0 ** (2.0 - L) * np.exp(c * rho0**2),
                (wu ** (2.0 - L) + wv ** (2.0 - L)) * np.exp(c * rho**2))

    def invariant_drift(self) -> float:
        """Largest relative change ``max_i |q_i(T) - q_i(0)| / max_i |q_i(0)|``."""
        q0, q1 = self.invariants()
        return float(np.max(np.abs(q1 - q0)) / max(np.max(np.abs(q0)), np.finfo(float).tiny))

    def alpha_eff(self) -> np.ndarray:
        """Effective initialization of a weight-normalized run.

        ``alpha_eff = alpha * (rho_T / rho_0) * exp(-kappa (rho_T^2 - rho_0^2) / 2)``
        (SCIENCE.md section 1): the WN flow's limit is the plain flow's limit at
        ``alpha_eff``. Defined for joint WN and the nonnegative WN model; for a
        plain run it is ``init_scale`` itself.
        """
        if self.weight_norm is None:
            return self.init_scale.copy()
        if self.weight_norm == "separate" and not self.nonnegative:
            raise ValueError("alpha_eff is defined for weight_norm='joint' (one radius) only")
        parts = 1 if self.nonnegative else 2
        rho0 = np.sqrt(parts) * np.linalg.norm(self.init_scale)
        rho = float(self.rho)
        return self.init_scale * (rho / rho0) * np.exp(-self.lr_ratio * (rho**2 - rho0**2) / 2.0)


def _unit(w: np.ndarray) -> np.ndarray:
    """w / ||w||, computed without overflow for huge entries."""
    scale = np.max(np.abs(w))
    if not np.isfinite(scale) or scale == 0:
        return w.copy()
    w = w / scale
    return w / np.linalg.norm(w)


def _null_projection(A: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Component of q orthogonal to range(A^T)."""
    coef, *_ = np.linalg.lstsq(A.T, q, rcond=None)
    return q - A.T @ coef


# ---------------------------------------------------------------------------- API
def fit(
    A: Any,
    y: Any,
    *,
    depth: int = 2,
    init_scale: float | Sequence[float] | np.ndarray = 0.1,
    method: str = "flow",
    solver: str = "rosw",
    weight_norm: str | None = None,
    lr_ratio: float = 1.0,
    nonnegative: bool = False,
    x_star: Any = None,
    lr: float | None = None,
    steps: int = 10_000,
    t_max: float = 1e8,
    tol: float | None = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    max_steps: int = 1_000_000,
    stall_steps: int = 5000,
    record_times: Any = None,
    record_every: int | None = None,
    n_record: int = 200,
    num_threads: int | None = None,
) -> DiagonalResult:
    """Train one diagonal linear network by gradient flow or gradient descent.

    Parameters
    ----------
    A : array (M, N), y : array (M,)
        Sensing matrix and measurements; loss ``0.5 ||A x - y||^2``.
    depth : int >= 2
        L in ``x = u**L - v**L``.
    init_scale : float > 0 or array (N,) of positive floats
        alpha: the initialization ``u = v = alpha``.
    method : "flow" or "gd"
        ``"flow"``: gradient flow by adaptive Dormand-Prince 5(4) with error
        control ``rtol``/``atol``, until ``loss <= tol`` (status converged), time
        ``t_max`` (max_time), ``max_steps`` step attempts (max_steps), or when
        over ``stall_steps`` accepted steps the loss has not fallen by 1% and
        no coordinate moved by more than 1e-3 relative (stalled: a stationary
        point that does not interpolate, or an explicit solver at its accuracy
        floor; a plateau between saddles keeps moving and is not stopped;
        0 disables this rule).
        ``"gd"``: ``steps`` gradient-descent steps of size ``lr`` (stops early
        if ``loss <= tol``).
    weight_norm : None, "joint" or "separate"
        Train in polar coordinates ``z = rho w`` (see the module docstring).
    lr_ratio : float > 0
        kappa, the angular / radial learning-rate ratio (weight norm only).
    nonnegative : bool
        Use ``x = u**L`` (for nonnegative targets).
    x_star : array (N,), optional
        Ground truth; records ``history["error"] = ||x - x_star||_2``.
    tol : float >= 0, optional
        Loss at which a run stops as converged. Default for the flow:
        ``50 * (rtol * ||y||)^2``, i.e. a relative residual ``||Ax - y|| / ||y||``
        of ``10 * rtol``: an explicit method cannot take a stiff problem's
        loss much below ``(rtol |z|)^2``, because its step size then sits at
        the stability boundary. Default for descent: never stop early.
    record_times : increasing array of times, optional
        Flow: the integrator lands on each of these times and records there.
        Default: ``n_record`` log-spaced times from ``1e-3`` to ``t_max``.
    record_every : int, optional
        Record every k steps (descent; default ``max(1, steps // n_record)``)
        or every k accepted steps (flow; default off).
    num_threads : int, optional
        OpenMP threads (results do not depend on it).

    Returns
    -------
    DiagonalResult
    """
    return fit_many(
        A, y, depth=[depth], init_scale=[_as_init(init_scale)], method=method, solver=solver,
        weight_norm=[weight_norm], lr_ratio=[lr_ratio], nonnegative=nonnegative, x_star=x_star,
        lr=None if lr is None else [lr], steps=steps, t_max=t_max, tol=tol, rtol=rtol, atol=atol,
        max_steps=max_steps, stall_steps=stall_steps, record_times=record_times, record_every=record_every,
        n_record=n_record, num_threads=num_threads,
    )[0]


def _as_init(init_scale: Any) -> Any:
    if isinstance(init_scale, numbers.Real) and not isinstance(init_scale, bool):
        return float(init_scale)
    return np.asarray(init_scale, dtype=np.float64) if not isinstance(init_scale, bool) else init_scale


def fit_many(
    A: Any,
    y: Any,
    *,
    depth: int | Sequence[int] = 2,
    init_scale: Any = 0.1,
    method: str = "flow",
    solver: str = "rosw",
    weight_norm: str | None | Sequence[str | None] = None,
    lr_ratio: float | Sequence[float] = 1.0,
    nonnegative: bool = False,
    x_star: Any = None,
    lr: float | Sequence[float] | None = None,
    steps: int = 10_000,
    t_max: float = 1e8,
    tol: float | None = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    max_steps: int = 1_000_000,
    stall_steps: int = 5000,
    record_times: Any = None,
    record_every: int | None = None,
    n_record: int = 200,
    num_threads: int | None = None,
    block_size: int = 8,
    jac_every: int = 4,
    gd_kernel: str = "lanes",
) -> list[DiagonalResult]:
    """Many runs in one C++ call, spread over OpenMP threads.

    ``A``/``y`` (and ``x_star``) may be one problem or lists of problems;
    ``depth``, ``init_scale``, ``weight_norm``, ``lr_ratio`` and ``lr`` may be
    scalars or lists. Lists broadcast like 1-D numpy arrays: every list has
    the same length K or length 1, and run k takes the k-th entry of each
    (use ``itertools.product`` to build a grid). ``init_scale`` entries may be
    scalars or length-N arrays; a 2-D array (K, N) gives one vector per run.

    Runs that share a problem and a model (depth, weight_norm) advance
    together, ``block_size`` at a time, as matrix-matrix products; blocks go
    to threads. The block layout depends only on the batch, so the numbers
    are bitwise the same for any ``num_threads``, and agree with separate
    :func:`fit` calls to rounding. ``jac_every``: the Rosenbrock-W flow
    rebuilds its Gauss-Newton Jacobian every this many step attempts (and
    after a rejection). ``gd_kernel``: plain GD blocks of up to 8 runs use
    a kernel that keeps the runs as SIMD lanes and A pre-padded
    (``"lanes"``, default; about 1.5x faster at M = 40, N = 100) or the
    generic per-column loop with Eigen products (``"generic"``); both give
    the same numbers to rounding, and each is bitwise thread-independent.
    Other parameters: see :func:`fit`.
    """
    check_choice(method, "method", _METHODS)
    check_choice(gd_kernel, "gd_kernel", ("lanes", "generic"))
    check_choice(solver, "solver", ("rosw", "dopri5"))
    if not isinstance(nonnegative, (bool, np.bool_)):
        raise ValueError(f"nonnegative must be a bool, got {nonnegative!r}")

    # Problems (the same (A, y) objects listed several times are one problem,
    # so that their runs can share blocks: matrix-matrix products).
    uniq_A, uniq_y, run_problem = unique_problems(A, y, "A", "y")
    A_arrs = [check_matrix(a, "A") for a in uniq_A]
    y_arrs = [check_vector(v, "y", a.shape[0]) for v, a in zip(uniq_y, A_arrs)]
    if x_star is None:
        xs_arrs = [None] * len(A_arrs)
    else:
        xs_list = x_star if isinstance(x_star, (list, tuple)) else [x_star]
        if len(xs_list) != len(run_problem):
            raise ValueError(f"x_star must be one array per problem ({len(run_problem)}), got {len(xs_list)}")
        xs_arrs = [None] * len(A_arrs)
        for k, v in enumerate(xs_list):
            p = run_problem[k]
            xs = None if v is None else check_vector(v, "x_star", A_arrs[p].shape[1])
            if xs_arrs[p] is not None and (xs is None or not np.array_equal(xs, xs_arrs[p])):
                raise ValueError("x_star must be the same for every listing of the same problem")
            xs_arrs[p] = xs

    # Per-run arguments, broadcast together.
    if isinstance(init_scale, np.ndarray) and init_scale.ndim == 2:
        inits = list(init_scale)
    else:
        inits = as_run_list(init_scale, "init_scale", (numbers.Real,))
    per_run = {
        "problem": run_problem,
        "depth": as_run_list(depth, "depth", (numbers.Integral,)),
        "init_scale": inits,
        "weight_norm": as_run_list(weight_norm, "weight_norm", (str,)),
        "lr_ratio": as_run_list(lr_ratio, "lr_ratio", (numbers.Real,)),
        "lr": as_run_list(lr, "lr", (numbers.Real,)),
    }
    K = broadcast_runs(per_run)

    depths = [check_positive_int(d, "depth", minimum=2) for d in per_run["depth"]]
    wns = [check_choice(w, "weight_norm", _WEIGHT_NORMS) for w in per_run["weight_norm"]]
    kappas = [check_positive(k, "lr_ratio") for k in per_run["lr_ratio"]]
    if method == "gd":
        if per_run["lr"][0] is None:
            raise ValueError("lr is required for method='gd'")
        lrs = [check_positive(v, "lr") for v in per_run["lr"]]
        steps = check_positive_int(steps, "steps", minimum=0)
    else:
        lrs = [0.0] * K
        steps = 0
    alphas = []
    for a, p in zip(per_run["init_scale"], per_run["problem"]):
        n = A_arrs[p].shape[1]
        if isinstance(a, numbers.Real) and not isinstance(a, bool):
            alpha = np.full(n, check_positive(a, "init_scale"))
        else:
            alpha = check_vector(a, "init_scale", n)
            if np.any(alpha <= 0):
                raise ValueError("init_scale must be positive")
        alphas.append(alpha)

    t_max = check_positive(t_max, "t_max")
    rtol = check_positive(rtol, "rtol")
    atol = check_positive(atol, "atol", allow_zero=True)
    max_steps = check_positive_int(max_steps, "max_steps")
    n_record = check_positive_int(n_record, "n_record")
    stall_steps = check_positive_int(stall_steps, "stall_steps", minimum=0)
    if tol is None:
        tol = -1.0  # per problem below (flow), never (descent)
    else:
        tol = check_positive(tol, "tol", allow_zero=True)
    if record_every is None:
        record_every = max(1, steps // n_record) if method == "gd" else 0
    else:
        record_every = check_positive_int(record_every, "record_every")
    if method == "flow":
        if record_times is None:
            rec = np.logspace(-3, np.log10(t_max), n_record) if t_max > 1e-3 else np.array([t_max])
        else:
            rec = check_vector(record_times, "record_times")
            if np.any(np.diff(rec) <= 0) or np.any(rec < 0):
                raise ValueError("record_times must be non-negative and strictly increasing")
    else:
        rec = np.empty(0)
    if num_threads is None:
        num_threads = 0
    else:
        num_threads = check_positive_int(num_threads, "num_threads")
    block_size = check_positive_int(block_size, "block_size")
    jac_every = check_positive_int(jac_every, "jac_every")

    if tol >= 0:
        tols = [float(tol)] * len(A_arrs)
    elif method == "flow":
        tols = [50.0 * (rtol * float(np.linalg.norm(v))) ** 2 for v in y_arrs]
    else:
        tols = [-1.0] * len(A_arrs)

    # Sort runs so that runs sharing (problem, model) are adjacent; run order
    # within a group is kept, so the blocks depend only on the batch.
    keys = [(p, d, _WN_CODE[w]) for p, d, w in zip(per_run["problem"], depths, wns)]
    order = sorted(range(K), key=lambda k: keys[k])
    raw = core.diagonal_batch(
        A=A_arrs, y=y_arrs,
        x_star=[np.empty(0) if v is None else v for v in xs_arrs],
        problem=[per_run["problem"][k] for k in order],
        depth=[depths[k] for k in order],
        nonnegative=[bool(nonnegative)] * K,
        weight_norm=[_WN_CODE[wns[k]] for k in order],
        init_scale=[alphas[k] for k in order],
        lr_ratio=[kappas[k] for k in order],
        lr=[lrs[k] for k in order],
        method=method, solver=solver, steps=int(steps), record_every=int(record_every), tol=tols,
        rtol=rtol, atol=atol, t_max=t_max, max_steps=int(max_steps), record_times=list(rec),
        h0=0.0, stall_steps=int(stall_steps), jac_every=int(jac_every), block_size=int(block_size), num_threads=int(num_threads),
        gd_lanes=gd_kernel == "lanes",
    )
    results: list[DiagonalResult | None] = [None] * K
    for pos, k in enumerate(order):
        p = per_run["problem"][k]
        results[k] = _decode(
            raw[pos], A=A_arrs[p], y=y_arrs[p], depth=depths[k], alpha=alphas[k], kappa=kappas[k],
            weight_norm=wns[k], nonnegative=bool(nonnegative), method=method,
            lr=lrs[k] if method == "gd" else None,
        )
    return results  # type: ignore[return-value]


def _decode(raw: dict, *, A: np.ndarray, y: np.ndarray, depth: int, alpha: np.ndarray, kappa: float,
            weight_norm: str | None, nonnegative: bool, method: str, lr: float | None) -> DiagonalResult:
    z = raw["state"]
    n = alpha.size
    n_radii = 0 if weight_norm is None else (2 if weight_norm == "separate" and not nonnegative else 1)
    rho: Any = None
    w = None
    if n_radii == 0:
        u = z[:n].copy()
        v = None if nonnegative else z[n:2 * n].copy()
    else:
        w = z[n_radii:].copy()
        if n_radii == 1:
            w = _unit(w)
            rho = float(z[0])
            u = rho * w[:n]
            v = None if nonnegative else rho * w[n:]
        else:
            w[:n] = _unit(w[:n])
            w[n:] = _unit(w[n:])
            rho = (float(z[0]), float(z[1]))
            u = rho[0] * w[:n]
            v = rho[1] * w[n:]
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged run may hold huge values
        x = u**depth if v is None else u**depth - v**depth
    return DiagonalResult(
        x=x, u=u, v=v, rho=rho, w=w, status=raw["status"], loss=float(raw["loss_final"]),
        t_final=float(raw["t_final"]), n_steps=int(raw["n_steps"]), n_rejected=int(raw["n_rejected"]),
        n_grad_evals=int(raw["n_grad_evals"]), wall_time=float(raw["wall_time"]),
        history=dict(raw["history"]), depth=depth, init_scale=alpha, lr_ratio=kappa,
        weight_norm=weight_norm, nonnegative=nonnegative, method=method, lr=lr, A=A, y=y,
    )
