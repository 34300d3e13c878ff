"""Diagonal linear networks, plain and weight-normalized (docs/science.md, section 1).

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

``method="sgd"``, ``"label_noise_sgd"`` and ``"sam"`` train the plain model on
batches of rows (summed batch loss), with momentum and step-size schedules, and
keep the exact effective-initialization bookkeeping (``alpha_eff()``,
``log_alpha_ratio()``, ``step_sum``) that predicts their limits (docs/dynamics.md);
:func:`batch_draws` returns the random draws of any step. ``method="sgf"`` integrates the stochastic
gradient flow (the SDE of SGD's noise) by a strong-order-1 Milstein scheme in ``log u``, ``log v``, with the
same bookkeeping; :func:`sgf_draws` returns its Brownian increments and Levy areas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _batch
from ._batch import RunResult
from ._family import Adapter, Family, Problems, choice_param, core_names, param
from ._native import core
from ._validation import check_matrix, check_positive, check_vector, unique_problems

__all__ = ["FAMILY", "DiagonalResult", "batch_draws", "fit", "fit_many", "sgf_draws"]


@dataclass(repr=False)
class DiagonalResult(RunResult):
    """Outcome of one run (the fields of :class:`~implicitbias._batch.RunResult` and these).

    Attributes
    ----------
    x : ndarray (N,)
        Final predictor ``u**L - v**L`` (or ``u**L``).
    u, v : ndarray (N,) or None
        Final factors (``v`` is None for the nonnegative model).
    radius : float, tuple of two floats, or None
        Final radius (joint / nonnegative WN), radii ``(rho_u, rho_v)``
        (separate WN), or None (plain).
    direction : ndarray or None
        Final unit direction(s) ``w`` of the polar form, concatenated as in z.
    loss : float
        Final loss ``0.5 ||A x - y||^2``.
    n_rejected : int
        Rejected adaptive steps.
    history : dict of ndarrays
        ``t``, ``loss``, ``n_grad_evals``, ``wall_time``, ``error``
        (``||x - x_star||_2`` when ``x_star`` was given), ``radius`` or
        ``radius_u``/``radius_v`` (WN); with ``record_state=True`` also ``x``,
        ``u`` and ``v`` (``v`` for the signed model), arrays of shape
        ``(n_records, N)``: the predictor and the factors at each record point
        (for a flow, the state of the same dense output as the recorded loss).
        With ``record_sharpness=True`` also ``sharpness``,
        ``sharpness_residual`` and ``sharpness_matvecs`` (see :func:`fit`).
        Time is in units of the loss (docs/science.md, section 1.1); descent
        after k steps is at ``k * lr`` (the stochastic methods: at
        ``sum_{j<k} lr_j``, docs/dynamics.md).
    step_sum : ndarray (N,) or None
        ``sum_k lr_k c_k``, the accumulated range(A^T) direction of a stochastic-method run
        (``c_k`` its momentum-filtered batch gradient, docs/dynamics.md); None for the other methods.
        :meth:`alpha_eff` and :meth:`log_alpha_ratio` give the rest of the bookkeeping.
    """

    loss: float
    x: np.ndarray
    u: np.ndarray
    v: np.ndarray | None
    radius: Any
    direction: np.ndarray | None
    n_rejected: int
    depth: int
    init_scale: np.ndarray
    lr_ratio: float
    weight_norm: str | None
    nonnegative: bool
    method: str
    lr: float | None
    A: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    step_sum: np.ndarray | None = field(default=None, repr=False)
    _log_a2: np.ndarray | None = field(default=None, repr=False)
    _log_alpha_ratio: np.ndarray | None = field(default=None, repr=False)

    def to_row(self) -> dict[str, Any]:
        """:meth:`RunResult.to_row` and the settings (``depth``, ``init_scale``: NaN when it differs
        between coordinates, ``lr_ratio``, ``weight_norm``: ``"none"`` for plain, ``nonnegative``,
        ``method``, ``lr``: NaN for a flow) and ``loss``, ``n_rejected``, ``radius`` (joint WN and
        nonnegative WN), ``radius_u``/``radius_v`` (separate WN) and ``alpha_eff`` (NaN where it is
        not defined), NaN where a value does not apply."""
        nan = float("nan")
        scale = self.init_scale
        one_radius = isinstance(self.radius, float)
        return {**super().to_row(), "depth": self.depth,
                "init_scale": float(scale[0]) if np.all(scale == scale[0]) else nan,
                "lr_ratio": self.lr_ratio, "weight_norm": self.weight_norm or "none",
                "nonnegative": self.nonnegative, "method": self.method, "lr": nan if self.lr is None else self.lr,
                "loss": self.loss, "n_rejected": self.n_rejected, "radius": self.radius if one_radius else nan,
                "radius_u": self.radius[0] if isinstance(self.radius, tuple) else nan,
                "radius_v": self.radius[1] if isinstance(self.radius, tuple) else nan,
                "alpha_eff": float(self.alpha_eff()[0]) if self._has_alpha_eff() else nan}

    def _has_alpha_eff(self) -> bool:
        if self.weight_norm is not None:
            return self.weight_norm != "separate" or self.nonnegative
        return self.method == "flow" or (self._log_a2 is not None and self.depth == 2)

    def _history_from(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The core's channels, with the per-coordinate state channels ``x[i]``, ``u[i]``, ``v[i]``
        (``record_state``) stacked into ``(n_records, N)`` arrays ``x``, ``u``, ``v``."""
        out: dict[str, np.ndarray] = {}
        parts: dict[str, list[np.ndarray]] = {}
        for name, values in raw.items():
            bracket = name.find("[")
            if bracket > 0 and name.endswith("]"):
                parts.setdefault(name[:bracket], []).append(values)
            else:
                out[name] = values
        for name, cols in parts.items():
            out[name] = np.column_stack(cols)
        return out

    # ------------------------------------------------------------------ diagnostics
    def invariants(self) -> tuple[np.ndarray, np.ndarray]:
        """Conserved quantities of the flow: (value at t = 0, value at the end).

        Per coordinate i (docs/science.md, section 1.7), for the signed model:

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
        assert self.v is not None  # the signed model
        if self.weight_norm is None:
            if L == 2:
                return alpha * alpha, self.u * self.v
            return 2.0 * alpha ** (2.0 - L), self.u ** (2.0 - L) + self.v ** (2.0 - L)
        assert self.direction is not None  # weight-normalized
        n = alpha.size
        rho0 = np.sqrt(2.0) * np.linalg.norm(alpha)
        w0 = alpha / rho0
        wu, wv = self.direction[:n], self.direction[n:]
        rho = float(self.radius)
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
        """Effective initialization: the per-coordinate init at which the plain flow's limit (with the
        linear term :meth:`log_alpha_ratio`) is this run's limit.

        - plain flow: ``init_scale`` itself;
        - weight normalization (flow or descent):
          ``alpha_eff = alpha * (rho_T / rho_0) * exp(-kappa (rho_T^2 - rho_0^2) / 2)``
          (docs/science.md, section 1.7; joint WN and the nonnegative WN model);
        - ``method="sgd"``, ``"label_noise_sgd"``, ``"sam"`` at depth 2: the exact bookkeeping of the
          compiled loop, ``a_k = alpha prod_j |(1 + du_j)(1 + dv_j)|^(1/2)`` (signed) or
          ``alpha_+ = alpha prod_j |1 + du_j| exp(2 eta_j c_j)`` (nonnegative), accumulated from each
          step's own multipliers (docs/dynamics.md); then
          ``x = 2 a^2 sinh(log_alpha_ratio - 4 step_sum)`` (signed) or ``alpha_+^2 exp(-4 step_sum)``.

        Raises ValueError where it is not defined: separate WN, the plain ``method="descent"`` (its
        loop keeps no bookkeeping: ``method="sgd"`` with ``batch_size=None`` takes the same steps and
        keeps it), and the stochastic methods at depth > 2 (no multiplicative identity there).
        """
        if self.weight_norm is None:
            if self.method == "flow":
                return self.init_scale.copy()
            if self.method == "descent":
                raise ValueError("method='descent' keeps no effective-initialization bookkeeping: use "
                                 "method='sgd' with batch_size=None (the same gradient steps, with the bookkeeping)")
            if self.depth != 2 or self._log_a2 is None:
                raise ValueError("the effective initialization of a descent run is defined at depth 2 only")
            return np.exp(0.5 * self._log_a2)
        if self.weight_norm == "separate" and not self.nonnegative:
            raise ValueError("alpha_eff is defined for weight_norm='joint' (one radius) only")
        parts = 1 if self.nonnegative else 2
        rho0 = np.sqrt(parts) * np.linalg.norm(self.init_scale)
        rho = float(self.radius)
        return self.init_scale * (rho / rho0) * np.exp(-self.lr_ratio * (rho**2 - rho0**2) / 2.0)


    def log_alpha_ratio(self) -> np.ndarray:
        """The linear term ``log(alpha_+ / alpha_-)`` of the run's limit (per coordinate).

        With ``a = alpha_eff()`` and ``c = log_alpha_ratio()``, a run that interpolates ends at
        ``argmin_{Ax=y} Phi_a(x) - <c, x>`` (``Phi_a`` the flow's hyperbolic-entropy potential at
        init ``a``): ``reference.diagonal_flow_limit(A, y, a, log_alpha_ratio=c)``. Zero for the
        flow, weight normalization and the nonnegative model (whose linear term is in ``alpha_eff``);
        accumulated by the compiled loop of ``method="sgd"``, ``"label_noise_sgd"``, ``"sam"``:
        ``sum_j [log|1 + du_j| - log|1 + dv_j| + 4 eta_j c_j]`` (docs/dynamics.md). Defined where
        :meth:`alpha_eff` is (ValueError otherwise).
        """
        a = self.alpha_eff()
        if self._log_alpha_ratio is None or self.nonnegative:
            return np.zeros_like(a)
        return self._log_alpha_ratio.copy()


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
_GD_KERNELS = ("lanes", "generic")  # DiagonalBatchOptions.gd_lanes True / False


def fit(
    A: Any,
    y: Any,
    *,
    depth: int = 2,
    init_scale: float | np.ndarray = 0.1,
    method: str = "flow",
    solver: str | None = None,
    weight_norm: str | None = None,
    lr_ratio: float = 1.0,
    nonnegative: bool = False,
    x_star: Any = None,
    lr: float | None = None,
    steps: int = 10_000,
    t_max: float = 1e8,
    target_loss: float | None = None,
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
    record_state: bool = False,
    record_sharpness: bool = False,
    batch_size: int | None = None,
    sampling: str = "replacement",
    momentum: float = 0.0,
    nesterov: bool = False,
    schedule: str = "constant",
    decay_k0: float = 100.0,
    decay_power: float = 0.5,
    warmup_steps: int = 0,
    sam_radius: float = 0.0,
    sam_per_example: bool = False,
    label_noise_std: float = 0.0,
    seed: int = 0,
    sde_step: float | None = None,
) -> DiagonalResult:
    """Train one diagonal linear network by gradient flow, gradient descent, or stochastic / accelerated
    descent (SGD, label-noise SGD, SAM, with momentum and schedules: docs/dynamics.md).

    Parameters
    ----------
    A : array (M, N), y : array (M,)
        Sensing matrix and measurements; loss ``0.5 ||A x - y||^2``.
    depth : int >= 2
        L in ``x = u**L - v**L``.
    init_scale : float > 0 or array (N,) of positive floats
        alpha: the initialization ``u = v = alpha``.
    method : "flow", "descent", "sgd", "label_noise_sgd", "sam" or "sgf"
        ``"flow"``: gradient flow by an adaptive integrator (``solver``; the
        coordinates follow from it, docs/numerics.md says which to use when:
        ``"bdf"``, the default, the M-dimensional ODE
        ``ds/dt = A x(A^T s) - y`` in dual coordinates (docs/science.md,
        section 1.9) with a variable-order (1-5) BDF that reuses its Jacobian
        and factorization across steps (section 4.9; under weight
        normalization the BDF on the polar system in log-polar coordinates,
        docs/numerics.md, 10-100x fewer gradient evaluations than
        ``"rosw"``); ``"rodas5"``, the same
        dual flow with Rodas5 and its exact Jacobian (section 4.8; plain
        flows only: the exact Jacobian exists in dual coordinates only);
        ``"rosw"``, the L-stable Rosenbrock-W method ROS34PW2 on the
        2N-dimensional (or polar) system with a Gauss-Newton Jacobian; or
        ``"dopri5"``, Dormand-Prince 5(4)) with error control ``rtol``/``atol``, until ``loss <= target_loss``
        (converged), time ``t_max`` (max_time), ``max_steps`` step attempts
        (max_steps), or when over ``stall_steps`` accepted steps the loss has
        not fallen by 1% and no coordinate moved by more than 1e-3 relative
        (stalled; 0 disables this rule). docs/science.md, sections 4.3-4.5.
        ``"descent"``: ``steps`` gradient-descent steps of size ``lr`` (stops
        early if ``loss <= target_loss``). ``"sgd"``, ``"label_noise_sgd"``
        and ``"sam"``: ``steps`` steps of stochastic / accelerated descent on
        the plain model (docs/dynamics.md): batches of ``batch_size`` rows
        (None: the full batch, which makes ``"sgd"`` gradient descent), the
        step-size ``schedule``, ``momentum`` and, for ``"sam"`` and
        ``"label_noise_sgd"``, ``sam_radius`` / ``label_noise_std``; these
        runs keep the exact effective-initialization bookkeeping
        (:meth:`DiagonalResult.alpha_eff`, :meth:`DiagonalResult.log_alpha_ratio`).
        ``"sgf"``: the stochastic gradient flow of Pesme et al. 2021 on the plain
        depth-2 model, the Ito SDE ``dz = -grad L dt + sqrt(lr) sum_i r_i grad r_i dW~_i``
        (SGD's noise covariance at step ``lr``), ``steps`` Milstein steps of
        size ``sde_step`` in ``(log u, log v)`` with Levy areas (strong order 1,
        docs/dynamics.md), with the same bookkeeping.
    weight_norm : None, "joint" or "separate"
        Train in polar coordinates ``z = rho w`` (docs/science.md, section 1.6).
        ``"separate"`` needs the signed model (ValueError with ``nonnegative=True``).
    lr_ratio : float > 0
        kappa, the angular / radial learning-rate ratio (weight norm only).
    nonnegative : bool
        Use ``x = u**L`` (for nonnegative targets).
    x_star : array (N,), optional
        Ground truth; records ``history["error"] = ||x - x_star||_2``.
    target_loss : float >= 0, optional
        Loss at which a run stops as converged. Default for the flow:
        ``50 * (rtol * ||y||)^2``, i.e. a relative residual of ``10 * rtol``;
        for descent: never stop early.
    record_times : increasing array of times, optional
        Flow: times taken from each method's dense output (the steps do not
        land on them, so they never change a trajectory; docs/science.md, 4.9).
        Default: ``n_record`` log-spaced times from ``1e-3`` to ``t_max``.
    record_every : int, optional
        Record every k steps (descent; default ``max(1, steps // n_record)``)
        or every k accepted steps (flow; default off).
    num_threads : int, optional
        OpenMP threads (results do not depend on it).
    block_size, jac_every, gd_kernel
        See :func:`fit_many`.
    record_state : bool
        Also record the trajectory: ``history["x"]``, ``history["u"]`` and
        (signed model) ``history["v"]``, shape ``(n_records, N)``, at the same
        record points as the loss (flows: from the integrator's dense output at
        ``record_times``, the same state as the recorded loss; descent: every
        ``record_every`` steps). Off by default; it never changes a trajectory.
    record_sharpness : bool
        Also record the sharpness at every record point: the top eigenvalue of
        the exact Hessian of ``0.5 ||A x - y||^2`` in the factors ``(u, v)``
        (``u`` alone for the nonnegative model; under weight normalization the
        Hessian in the factors, not in the polar coordinates; for ``"sam"`` and
        ``"label_noise_sgd"`` that of the plain loss, the quantity compared with
        ``2 / lr``), by Lanczos on its Hessian-vector product in C++,
        warm-started from the previous record point's top eigenvector, to the
        relative residual ``1e-8``. Channels ``history["sharpness"]``,
        ``history["sharpness_residual"]`` (``||H v - s v||``, a bound on the
        error) and ``history["sharpness_matvecs"]`` (products used at that
        point); NaN where the state is not finite. Every method (flows: at the
        dense output's record states). Off by default; it never changes a
        trajectory. See docs/science.md, section 3.9 ("Sharpness during training").
    batch_size : int in [1, M] or None
        Rows per step of ``"sgd"``, ``"label_noise_sgd"``, ``"sam"`` (None: all
        M rows in order). The batch loss is the sum ``0.5 sum_{i in B} r_i^2``,
        so its gradient is ``A_B^T r_B`` (not a mean).
    sampling : "replacement" or "epochs"
        Batches drawn uniformly with replacement, keyed by ``seed`` and the step;
        or ``"epochs"``: one random permutation per epoch (keyed by ``seed`` and
        the epoch), cut into consecutive batches, the last one of an epoch holding
        the ``M mod batch_size`` remaining rows. :func:`batch_draws` returns the draws.
    momentum : float in [0, 1)
        beta of heavy-ball momentum ``z <- z - lr_k grad + beta (z - z_prev)``.
    nesterov : bool
        Nesterov's variant: the gradient step is taken from the look-ahead point
        ``z + beta (z - z_prev)``.
    schedule : "constant" or "power"
        Step sizes ``lr_k = lr`` or ``lr (1 + k / decay_k0)^(-decay_power)`` (as in
        :mod:`implicitbias.steepest`), times ``min(1, (k + 1) / warmup_steps)``
        during a linear warm-up of ``warmup_steps`` steps (0: none). The
        history's time is ``sum_k lr_k``.
    decay_k0, decay_power : float
        Constants of the ``"power"`` schedule.
    warmup_steps : int >= 0
        Length of the linear warm-up.
    sam_radius : float >= 0
        rho, the SAM perturbation radius in parameter norm (``method="sam"``).
    sam_per_example : bool
        ``method="sam"``: one perturbation per example of the batch (1-SAM)
        instead of one for the batch loss (n-SAM).
    label_noise_std : float >= 0
        sigma: fresh labels ``y_i + sigma xi_i`` every step (``method="label_noise_sgd"``).
    seed : int >= 0
        Seed of the run's draws (batches, label noise, the Brownian path of ``"sgf"``); the flow and
        ``"descent"`` draw nothing and ignore it.
    sde_step : float > 0, optional
        ``method="sgf"`` only (required there): the integration step ``h`` of the stochastic gradient
        flow, in the flow's time units; ``steps`` steps reach ``t = steps * sde_step``. The flow's noise
        is that of SGD with batch 1 and step ``lr`` on ``0.5 r_i^2`` (docs/dynamics.md, "The stochastic
        gradient flow"); :func:`sgf_draws` returns the draws of any step.

    Returns
    -------
    DiagonalResult
    """
    return FAMILY.run_one(locals())


def fit_many(
    A: Any,
    y: Any,
    *,
    depth: int | Sequence[int] = 2,
    init_scale: float | np.ndarray | Sequence[float | np.ndarray] = 0.1,
    method: str = "flow",
    solver: str | None = None,
    weight_norm: str | Sequence[str | None] | None = None,
    lr_ratio: float | Sequence[float] = 1.0,
    nonnegative: bool = False,
    x_star: Any = None,
    lr: float | Sequence[float] | None = None,
    steps: int = 10_000,
    t_max: float = 1e8,
    target_loss: float | None = None,
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
    record_state: bool = False,
    record_sharpness: bool = False,
    batch_size: int | Sequence[int | None] | None = None,
    sampling: str = "replacement",
    momentum: float | Sequence[float] = 0.0,
    nesterov: bool = False,
    schedule: str | Sequence[str] = "constant",
    decay_k0: float = 100.0,
    decay_power: float = 0.5,
    warmup_steps: int = 0,
    sam_radius: float | Sequence[float] = 0.0,
    sam_per_example: bool = False,
    label_noise_std: float | Sequence[float] = 0.0,
    seed: int | Sequence[int] = 0,
    sde_step: float | Sequence[float] | None = None,
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
    to threads. The BDF (``solver="bdf"``) integrates a block's runs one after
    another, so ``block_size`` does not change its results. The block layout
    depends only on the batch, so the numbers
    are bitwise the same for any ``num_threads``, and agree with separate
    :func:`fit` calls to rounding. ``jac_every``: the Rosenbrock-W flow
    rebuilds its Gauss-Newton Jacobian every this many step attempts (and
    after a rejection). ``gd_kernel``: plain descent blocks of up to 8 runs
    keep the runs as SIMD lanes with A pre-padded (``"lanes"``, default) or
    use the generic per-column loop with Eigen products (``"generic"``); both
    give the same numbers to rounding. Other parameters: see :func:`fit`.
    """
    return FAMILY.run(locals())


@dataclass(slots=True)
class _Batch:
    options: Any
    method: str
    nonnegative: bool
    runs: dict[str, list]
    opts: dict[str, Any]
    init_scale: np.ndarray  # alpha of each run (NaN where the run has a vector in init_vectors)
    init_vectors: dict[int, np.ndarray]


_STOCHASTIC = ("sgd", "label_noise_sgd", "sam")  # diagonal_sgd.hpp
_SGF = "sgf"  # diagonal_sgf.hpp: the stochastic gradient flow
_FIXED_STEP = ("descent", *_STOCHASTIC, _SGF)
_SAMPLINGS = ("replacement", "epochs")
_DIAGONAL_SCHEDULES = ("constant", "power")  # the steepest family's names (schedule.hpp)
# per-run arguments of the stochastic methods and the value that leaves them off (seed: ignored where
# nothing is drawn)
_STOCHASTIC_PER_RUN = {"batch_size": None, "momentum": 0.0, "schedule": "constant"}
_STOCHASTIC_OPTIONS = {"sampling": "replacement", "nesterov": False, "warmup_steps": 0, "sam_per_example": False}


def _check_stochastic(method: str, opts: dict[str, Any], runs: dict[str, list], problems: Problems) -> None:
    """The arguments of the stochastic methods: only with them, and consistent with each run's problem."""
    if method not in _STOCHASTIC:
        for name, off in _STOCHASTIC_PER_RUN.items():
            if runs[name].count(off) != len(runs[name]):
                raise ValueError(f"{name} applies to method='sgd', 'label_noise_sgd' or 'sam' (got method={method!r})")
        for name, default in _STOCHASTIC_OPTIONS.items():
            if opts[name] != default:
                raise ValueError(f"{name} applies to method='sgd', 'label_noise_sgd' or 'sam' (got method={method!r})")
    for name, meth in (("sam_radius", "sam"), ("label_noise_std", "label_noise_sgd")):
        if method != meth and runs[name].count(0.0) != len(runs[name]):
            raise ValueError(f"{name} applies to method={meth!r} (got method={method!r})")
    if opts["sam_per_example"] and method != "sam":
        raise ValueError(f"sam_per_example applies to method='sam' (got method={method!r})")
    _check_sgf(method, runs)
    if method not in _STOCHASTIC:
        return
    if any(wn is not None for wn in runs["weight_norm"]):
        raise ValueError(f"method={method!r} trains the plain model: weight_norm must be None (weight-normalized "
                         "descent is method='descent')")
    for k, b in enumerate(runs["batch_size"]):
        m = problems.data[runs["problem"][k]][0].shape[0]
        if b is not None and b > m:
            raise ValueError(f"batch_size must be at most the number of rows of A ({m}), got {b}")


def _check_sgf(method: str, runs: dict[str, list]) -> None:
    """sde_step: with method="sgf" only, and required there; "sgf" integrates the plain depth-2 model."""
    if method != _SGF:
        if any(h is not None for h in runs["sde_step"]):
            raise ValueError(f"sde_step applies to method='sgf' (got method={method!r})")
        return
    if any(h is None for h in runs["sde_step"]):
        raise ValueError("sde_step is required for method='sgf' (the integration step of the SDE)")
    if any(d != 2 for d in runs["depth"]):
        raise ValueError("method='sgf' integrates the depth-2 model: depth must be 2")
    if any(wn is not None for wn in runs["weight_norm"]):
        raise ValueError("method='sgf' integrates the plain model: weight_norm must be None")


def _stochastic_spec(k: int, runs: dict[str, list], opts: dict[str, Any]) -> Any:
    """Run k's core settings of a stochastic method."""
    b = runs["batch_size"][k]
    return _batch.make(
        core.DiagonalStochastic, lr=runs["lr"][k], schedule=_batch.enum(core.Schedule, runs["schedule"][k]),
        decay_k0=opts["decay_k0"], decay_power=opts["decay_power"], warmup_steps=opts["warmup_steps"],
        batch_size=0 if b is None else b, epochs=opts["sampling"] == "epochs", momentum=runs["momentum"][k],
        nesterov=opts["nesterov"], strength=runs["sam_radius"][k] + runs["label_noise_std"][k],
        sam_per_example=opts["sam_per_example"], seed=runs["seed"][k], sde_step=runs["sde_step"][k] or 0.0)


def batch_draws(seed: int, step: int, n_measurements: int, batch_size: int | None = None,
                sampling: str = "replacement") -> tuple[np.ndarray, np.ndarray]:
    """The random draws of step ``step`` of a stochastic run (``method="sgd"``, ``"label_noise_sgd"``,
    ``"sam"``) with this ``seed``, exactly as the compiled loop makes them.

    Returns ``(indices, xi)``: the batch's row indices into ``A`` (int64, in the order the loop sums
    them; all rows in order for ``batch_size=None``) and one standard normal per batch position, the
    label noise ``xi`` of ``"label_noise_sgd"`` (labels ``y[indices] + label_noise_std * xi``).
    ``sampling`` as in :func:`fit`. A NumPy reimplementation of a run replays its draws with this.
    """
    seed = _B.integer(0)(seed, "seed")
    step = _B.integer(0)(step, "step")
    m = _B.integer(1)(n_measurements, "n_measurements")
    b = 0 if batch_size is None else _B.integer(1)(batch_size, "batch_size")
    if b > m:
        raise ValueError(f"batch_size must be at most n_measurements ({m}), got {b}")
    sampling = _B.choice(*_SAMPLINGS)(sampling, "sampling")
    idx, xi = core.diagonal_draws(seed, step, m, b, sampling == "epochs")
    return np.asarray(idx, dtype=np.int64), np.asarray(xi)


def sgf_draws(seed: int, step: int, n_measurements: int, sde_step: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The draws of step ``step`` of a ``method="sgf"`` run with this ``seed``, exactly as the compiled
    integrator makes them.

    Returns ``(dW, area, p)``: the increments ``dW`` (``n_measurements``) of the M-dimensional Brownian
    motion over the step ``sde_step``, its Levy areas ``area`` (M x M, antisymmetric,
    ``area[j, k] = (int W_j dW_k - int W_k dW_j) / 2`` over the step, from the Kloeden-Platen-Wright
    series truncated at ``p`` terms plus Wiktorsson's approximation of the tail; docs/dynamics.md), and
    ``p``. A NumPy reimplementation of the Milstein step replays a run with this.
    """
    seed = _seed(seed, "seed")
    step = _B.integer(0)(step, "step")
    m = _B.integer(1)(n_measurements, "n_measurements")
    h = _B.positive(sde_step, "sde_step")
    dW, area, p = core.diagonal_sgf_draws(seed, step, m, h)
    return np.asarray(dW), np.asarray(area), int(p)


class _Adapter(Adapter):
    """diagonal_batch: SensingProblem (the target on the problem), DiagonalRun, DiagonalBatchOptions."""

    def problems(self, args: dict[str, Any]) -> Problems:
        return _problems(args["A"], args["y"], args["x_star"])

    def batch(self, opts: dict[str, Any], runs: dict[str, list], problems: Problems) -> _Batch:
        method = opts["method"]
        descent = method in _FIXED_STEP
        _check_solver(method, opts["solver"], any(wn is not None for wn in runs["weight_norm"]), opts["atol"])
        _check_stochastic(method, opts, runs, problems)
        if opts["nonnegative"] and "separate" in runs["weight_norm"]:
            raise ValueError("weight_norm='separate' needs the signed model (one radius for u, one for v); the "
                             "nonnegative model has the single vector u: use weight_norm='joint'")
        if descent and any(lr is None for lr in runs["lr"]):
            raise ValueError(f"lr is required for method={method!r}")
        options = _options(tuple(opts[n] for n in _OPTION_ARGS))
        tol = _batch.target_loss(opts["target_loss"])
        for prob, (_, yv) in zip(problems.core, problems.data):  # default for the flow: a relative residual of 10 rtol
            prob.tol = tol if tol >= 0 or descent else 50.0 * (options.adaptive.rtol * math.sqrt(yv.dot(yv))) ** 2
        init_scale, init_vectors = _init_scales(runs["init_scale"], runs["problem"], problems)
        return _Batch(options, method, opts["nonnegative"], runs, opts, init_scale, init_vectors)

    def core_runs(self, K: int, runs: dict[str, list], problems: Problems, batch: _Batch) -> Any:
        # the core's DiagonalRuns: one column per per-run setting (the core groups them into blocks)
        return core.DiagonalRuns(
            problem=np.asarray(runs["problem"], dtype=np.int32), depth=np.asarray(runs["depth"], dtype=np.int32),
            weight_norm=np.array([_WEIGHT_NORM_CODES[w] for w in runs["weight_norm"]], dtype=np.int32),
            nonnegative=batch.nonnegative, init_scale=batch.init_scale, init_vectors=batch.init_vectors,
            lr_ratio=np.asarray(runs["lr_ratio"], dtype=np.float64),
            lr=np.array([lr or 0.0 for lr in runs["lr"]], dtype=np.float64),
            stochastic=[_stochastic_spec(k, runs, batch.opts) for k in range(K)]
            if batch.method in _STOCHASTIC or batch.method == _SGF else [])

    def call(self, problems: Problems, core_runs: Any, batch: _Batch) -> Any:
        return core.diagonal_batch(problems.core, core_runs, batch.options)

    def decode(self, records: _batch.Decoded, runs: dict[str, list], problems: Problems,
               batch: _Batch) -> list[DiagonalResult]:
        targets = [p.tol >= 0 for p in problems.core]
        return _decode(records, runs, problems, batch, [targets[p] for p in runs["problem"]])


@_batch.memoized
def _check_solver(method: str, solver: str | None, normalized: bool, atol: float) -> None:
    """The solver that does not apply: "rodas5" under weight normalization."""
    if solver == "rodas5" and method == "flow" and normalized:
        raise ValueError("solver='rodas5' integrates the plain flow in dual coordinates, where its exact Jacobian "
                         "exists; with weight normalization use solver='bdf' (the default) or 'rosw'")


_SHARPNESS_TOL = 1e-8  # relative residual of the recorded sharpness (record_sharpness)
_OPTION_ARGS = ("method", "solver", "steps", "n_record", "record_times", "record_every", "t_max", "rtol", "atol",
                "max_steps", "stall_steps", "jac_every", "block_size", "num_threads", "gd_kernel", "record_state",
                "record_sharpness")


@_batch.memoized
def _options(values: tuple) -> Any:
    """The core options shared by a batch, from the checked batch-wide arguments (read-only, memoized)."""
    (method, solver, steps, n_record, record_times, record_every, t_max, rtol, atol, max_steps, stall_steps,
     jac_every, block_size, num_threads, gd_kernel, record_state, record_sharpness) = values
    descent = method in _FIXED_STEP
    steps = steps if descent else 0
    rec_times = [] if descent else _batch.record_times(record_times, t_max, n_record)
    return _batch.make(
        core.DiagonalBatchOptions, method=_batch.enum(core.Method, method),
        solver=_batch.enum(core.Solver, solver or "automatic"), block_size=block_size, num_threads=num_threads,
        gd_lanes=gd_kernel == "lanes", record_state=record_state,
        sharpness=_batch.make(core.SharpnessOptions, record=record_sharpness, tol=_SHARPNESS_TOL),
        fixed=_batch.make(core.FixedStepOptions, steps=steps,
                          record_every=_batch.record_every_steps(record_every, steps, n_record) if descent else 0),
        adaptive=_batch.adaptive_options(
            rtol=rtol, atol=atol, t_max=t_max, max_steps=max_steps, stall_steps=stall_steps, record_times=rec_times,
            record_every=0 if record_every is None or descent else record_every, jac_every=jac_every))


def _problems(A: Any, y: Any, x_star: Any) -> Problems:
    """The distinct problems as core structs and as checked (A, y) arrays, and
    each listing's problem index."""
    uniq_A, uniq_y, run_problem = unique_problems(A, y, "A", "y")
    problems, data = [], []
    for a, v in zip(uniq_A, uniq_y):
        a = check_matrix(a, "A")
        v = check_vector(v, "y", a.shape[0])
        data.append((a, v))
        problems.append(core.SensingProblem(A=a, y=v, x_star=_EMPTY))
    if x_star is not None:
        # a list of vectors (or None) is one per listing; a list of numbers is one vector
        per_listing = isinstance(x_star, (list, tuple)) and any(v is None or np.ndim(v) > 0 for v in x_star)
        xs_list = x_star if per_listing else [x_star]
        if len(xs_list) != len(run_problem):
            raise ValueError(f"x_star must be one array per problem ({len(run_problem)}), got {len(xs_list)}")
        given: dict[int, Any] = {}
        for v, p in zip(xs_list, run_problem):
            xs = None if v is None else check_vector(v, "x_star", data[p][0].shape[1])
            if p in given and (xs is None or given[p] is None or not np.array_equal(xs, given[p])):
                raise ValueError("x_star must be the same for every listing of the same problem")
            given[p] = xs
            if xs is not None:
                problems[p].x_star = xs
    return Problems(problems, data, run_problem)


_EMPTY = np.empty(0)
_WEIGHT_NORM_CODES = {None: int(core.WeightNorm.none), **{n: int(v) for n, v in core.WeightNorm.__members__.items()}}
_FAST_REALS = (float, np.float64)


def _init_scales(values: list, run_problem: list[int], problems: Problems) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Each run's ``init_scale``, checked: the scalars as one array (NaN where a run gives a vector) and the
    vectors by run."""
    if all(type(a) in _FAST_REALS for a in values):  # the common case, checked at once
        for a in values:
            if not 0.0 < a < math.inf:
                check_positive(a, "init_scale")  # raises
        return np.array(values, dtype=np.float64), {}
    alpha = np.full(len(values), np.nan)
    vectors: dict[int, np.ndarray] = {}
    for k, a in enumerate(values):
        if _batch.is_real(a):
            alpha[k] = check_positive(a, "init_scale")
        else:
            vectors[k] = _init_vector(a, problems.data[run_problem[k]][0].shape[1])
    return alpha, vectors


def _init_vector(a: Any, n: int) -> np.ndarray:
    if _batch.is_real(a):
        return np.full(n, check_positive(a, "init_scale"))
    alpha = check_vector(a, "init_scale", n)
    if np.any(alpha <= 0):
        raise ValueError("init_scale must be positive")
    return alpha


def _decode(records: _batch.Decoded, runs: dict[str, list], problems: Problems, batch: _Batch,
            has_target: list[bool]) -> list[DiagonalResult]:
    """The results of a batch, decoded group by group (runs of one problem, depth and weight_norm share
    the layout of their state: ``[u; v]`` (plain; then ``log a^2``, ``log_alpha_ratio``, ``step_sum``
    for the stochastic methods and the SGF, diagonal_sgd.hpp, diagonal_sgf.hpp) or ``[radii; w]``
    (weight-normalized))."""
    method, nonnegative = batch.method, batch.nonnegative
    base = records.base(has_target, method == "descent")
    losses, rejected = records.loss_final, records.n_rejected
    groups: dict[tuple, list[int]] = {}
    for k, key in enumerate(zip(runs["problem"], runs["depth"], runs["weight_norm"])):
        groups.setdefault(key, []).append(k)
    out: list[Any] = [None] * len(base)
    for (p, depth, wn), ks in groups.items():
        A, y = problems.data[p]
        n = A.shape[1]
        alphas = _group_alphas(batch, ks, n)
        n_radii = 0 if wn is None else (2 if wn == "separate" and not nonnegative else 1)
        parts = 1 if nonnegative else 2
        if n_radii == 0:
            U = records.rows(ks, n)
            V = None if nonnegative else records.rows(ks, n, n)
            X = U**depth if V is None else U**depth - V**depth
            book = {} if method not in _STOCHASTIC and method != _SGF else {
                name: records.rows(ks, n, (parts + i) * n)
                for i, name in enumerate(("log_a2", "log_alpha_ratio", "step_sum"))}
        for i, k in enumerate(ks):
            radius: Any = None
            w = None
            extra: dict[str, Any] = {}
            if n_radii == 0:
                x, u, v = X[i], U[i], None if V is None else V[i]
                extra = {"step_sum": book["step_sum"][i], "_log_a2": book["log_a2"][i],
                         "_log_alpha_ratio": book["log_alpha_ratio"][i]} if book else {}
            else:
                z = records.state(k)
                w = z[n_radii:].copy()
                if n_radii == 1:
                    w = _unit(w)
                    radius = float(z[0])
                    u = radius * w[:n]
                    v = None if nonnegative else radius * w[n:]
                else:
                    w[:n] = _unit(w[:n])
                    w[n:] = _unit(w[n:])
                    radius = (float(z[0]), float(z[1]))
                    u = radius[0] * w[:n]
                    v = radius[1] * w[n:]
                x = u**depth if v is None else u**depth - v**depth
            out[k] = DiagonalResult(
                **base[k], loss=losses[k], x=x, u=u, v=v, radius=radius, direction=w, n_rejected=rejected[k],
                depth=depth, init_scale=alphas[i], lr_ratio=runs["lr_ratio"][k], weight_norm=wn,
                nonnegative=nonnegative, method=method, lr=runs["lr"][k] if method in _FIXED_STEP else None,
                A=A, y=y, **extra)
    return out


def _group_alphas(batch: _Batch, ks: list[int], n: int) -> Any:
    """The initialization vectors of the runs ks (rows of one read-only array, or the given vectors)."""
    if not batch.init_vectors:
        alphas = np.full((1, n), batch.init_scale[ks[0]]) if len(ks) == 1 else \
            np.repeat(batch.init_scale[ks][:, None], n, axis=1)
        alphas.flags.writeable = False
        return alphas
    return [batch.init_vectors[k] if k in batch.init_vectors else np.full(n, batch.init_scale[k]) for k in ks]


_B = _batch


def _momentum(value: Any, name: str) -> float:
    """beta in [0, 1)."""
    v = _B.nonnegative(value, name)
    if v >= 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def _seed(value: Any, name: str) -> int:
    """An integer in [0, 2**64)."""
    v = _B.integer(0)(value, name)
    if v >= 2**64:
        raise ValueError(f"{name} must be below 2**64, got {value!r}")
    return v


FAMILY = Family.declare("diagonal", fit, fit_many, ("A", "y", "x_star"), [
    param("depth", _B.integer(2), int, per_run=True),
    param("init_scale", None, float, np.ndarray, per_run=True, vector=True),
    choice_param("method", core_names(core.Method)),
    choice_param("solver", (None, *core_names(core.Solver, drop=("automatic",)))),  # None: the core's choice
    choice_param("weight_norm", (None, *core_names(core.WeightNorm, drop=("none",))), per_run=True),
    param("lr_ratio", _B.positive, float, per_run=True),
    param("nonnegative", _B.boolean, bool),
    param("lr", _B.optional_positive, float, type(None), per_run=True),
    param("steps", _B.integer(0), int),
    param("t_max", _B.positive, float),
    param("target_loss", _B.optional(_B.nonnegative), float, type(None)),
    param("rtol", _B.below_one, float),
    param("atol", _B.nonnegative, float),
    param("max_steps", _B.integer(1), int),
    param("stall_steps", _B.integer(0), int),
    param("record_times", _B.times, tuple, type(None)),
    param("record_every", _B.optional(_B.integer(1)), int, type(None)),
    param("n_record", _B.integer(1), int),
    param("num_threads", _B.num_threads, int, type(None)),
    param("block_size", _B.integer(1), int),
    param("jac_every", _B.integer(1), int),
    choice_param("gd_kernel", _GD_KERNELS),
    param("record_state", _B.boolean, bool),
    param("record_sharpness", _B.boolean, bool),
    param("batch_size", _B.optional(_B.integer(1)), int, type(None), per_run=True),
    choice_param("sampling", _SAMPLINGS),
    param("momentum", _momentum, float, per_run=True),
    param("nesterov", _B.boolean, bool),
    choice_param("schedule", _DIAGONAL_SCHEDULES, per_run=True),
    param("decay_k0", _B.positive, float),
    param("decay_power", _B.nonnegative, float),
    param("warmup_steps", _B.integer(0), int),
    param("sam_radius", _B.nonnegative, float, per_run=True),
    param("sam_per_example", _B.boolean, bool),
    param("label_noise_std", _B.nonnegative, float, per_run=True),
    param("seed", _seed, int, per_run=True),
    param("sde_step", _B.optional_positive, float, type(None), per_run=True),
], _Adapter())
"""The diagonal family's declaration (:class:`implicitbias._family.Family`): its parameters, checks and
choices, for sweeps and other callers."""
