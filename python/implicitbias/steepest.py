"""Steepest descent in several geometries on homogeneous classifiers (SCIENCE.md section 2).

Tsilivis, Vardi & Kempe, "Flavors of Margin" (arXiv 2410.22069): once a
homogeneous network of degree ``L`` separates the data, steepest descent for a
norm ``||.||`` increases the margin measured in that norm,
``gamma(theta) = min_i y_i f(x_i; theta) / ||theta||^L``.

Direction maps (``g`` the gradient, ``||.||_*`` the dual norm), with
``g# = argmax_u <u, g> - ||u||^2 / 2`` so ``||g#|| = ||g||_*`` and
``<g#, g> = ||g||_*^2``:

* ``"l2"`` (gradient descent): ``g# = g``
* ``"linf"`` (sign descent): ``g# = ||g||_1 sign(g)``
* ``"l1"`` (coordinate descent): ``g# = g_j e_j`` for the FIRST index ``j``
  with ``|g_j| = ||g||_inf`` (tie rule)
* a float ``p`` in (1, inf): ``g# = ||g||_q^(2-q) sign(g) |g|^(q-1)``, ``q = p/(p-1)``
* ``"spectral"``: per weight matrix ``G_k = U_k S_k V_k^T``,
  ``g#_k = (sum_j ||G_j||_nuclear) U_k V_k^T``; the norm of the parameters is
  the largest spectral norm over the weight matrices (vectors count as 1 x n
  matrices, for which it is the l2 norm).

Steps: unnormalized ``theta <- theta - lr_k g#``, normalized
``theta <- theta - lr_k g# / ||g||_*``. Schedules: ``"constant"``,
``"power"`` ``lr_k = lr (1 + k / decay_k0)^(-decay_power)``, and ``"loss"``
(unnormalized steepest descent only): ``lr_k = lr c_k / Loss_k`` where
``c_0 = 1``, an accepted step multiplies ``c`` by ``lr_growth`` and a step that
does not decrease the loss is retried from the same point with ``c``
multiplied by ``lr_backoff`` (after Lyu & Li 2020, who scale the step by the
inverse loss so that the margin grows at a useful rate late in training).
Adam: ``m = beta1 m + (1-beta1) g``, ``v = beta2 v + (1-beta2) g^2``,
``theta <- theta - lr_k m_hat / (sqrt(v_hat) + eps)`` with bias corrections
(``eps = 0`` allowed). Signum: ``theta <- theta - lr_k sign(m)``.

Losses (labels in {-1, +1}, ``q_i = y_i f(x_i)``): ``"exp"`` ``sum exp(-q_i)``
and ``"logistic"`` ``sum log(1 + exp(-q_i))``, computed in the log domain, so
a run can continue far below loss 1e-300: the history holds ``log_loss``,
the natural log of the loss.

Models (no biases): ``"linear"`` ``<w, x>`` (degree 1); ``"diagonal"``
``<u^2 - v^2, x>`` (degree 2); ``"relu2"`` ``sum_k a_k relu(<w_k, x>)``
(degree 2, ``width`` units); ``"mlp"`` ``a^T relu(W_{L-1} ... relu(W_1 x))``
(degree ``depth``).
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
    check_choice,
    check_labels,
    check_matrix,
    check_positive,
    check_positive_int,
    check_seed,
    check_vector,
    unique_problems,
)

__all__ = ["SteepestResult", "fit", "fit_many", "direction", "param_norm", "init_params", "MODELS", "NORMS"]

MODELS = ("linear", "diagonal", "relu2", "mlp")
NORMS = ("l2", "linf", "l1", "spectral")
_OPTIMIZERS = ("steepest", "signum", "adam")
_SCHEDULES = ("constant", "power", "loss")
_LOSSES = ("exp", "logistic")
_METHODS = ("descent", "flow")


def _parse_norm(norm: Any, name: str = "norm") -> tuple[str, float]:
    """'l2' | 'linf' | 'l1' | 'spectral' | float p in (1, inf) -> (code, p)."""
    if isinstance(norm, str):
        if norm not in NORMS:
            raise ValueError(f"{name} must be one of {NORMS} or a float p > 1, got {norm!r}")
        return norm, 2.0
    if isinstance(norm, bool) or not isinstance(norm, numbers.Real):
        raise ValueError(f"{name} must be one of {NORMS} or a float p > 1, got {norm!r}")
    p = float(norm)
    if np.isnan(p) or p <= 1.0:
        raise ValueError(f"{name}: p must be > 1 (use 'l1' for coordinate descent), got {norm!r}")
    if np.isinf(p):
        return "linf", 2.0
    if p == 2.0:
        return "l2", 2.0
    return "lp", p


def _model_spec(model: str, dim: int, width: Any, depth: Any) -> tuple[str, int, int, int, list[tuple[int, int]]]:
    """(core kind, depth, width, degree, weight block shapes)."""
    check_choice(model, "model", MODELS)
    if model == "linear":
        return "linear", 2, 0, 1, [(1, dim)]
    if model == "diagonal":
        return "diagonal", 2, 0, 2, [(1, dim), (1, dim)]
    if width is None:
        raise ValueError(f"width is required for model={model!r}")
    width = check_positive_int(width, "width")
    if model == "relu2":
        if depth not in (None, 2):
            raise ValueError(f"depth must be 2 (or None) for model='relu2', got {depth!r}")
        depth = 2
    else:
        if depth is None:
            raise ValueError("depth is required for model='mlp'")
        depth = check_positive_int(depth, "depth", minimum=2)
    shapes = [(width, dim)] + [(width, width)] * (depth - 2) + [(1, width)]
    return "mlp", depth, width, depth, shapes


def init_params(model: str, dim: int, *, width: int | None = None, depth: int | None = None,
                init_scale: float | None = None, seed: int | None = 0) -> np.ndarray:
    """The initial parameter vector of a model, flattened as the core expects.

    ``linear``: ``w ~ init_scale * N(0, I/dim)`` (default ``init_scale = 0``,
    i.e. ``w = 0``); ``diagonal``: ``u = v = init_scale`` (default 0.1, the
    zero predictor); ``relu2``/``mlp``: every weight matrix (fan-in ``n``)
    with i.i.d. ``N(0, init_scale^2 / n)`` entries (default ``init_scale = 1``),
    stored column-major ``(W_1, ..., W_{L-1}, a)``. Draws use
    ``numpy.random.default_rng(seed)``.
    """
    kind, depth_, width_, _, shapes = _model_spec(model, dim, width, depth)
    seed = check_seed(seed)
    default = {"linear": 0.0, "diagonal": 0.1}.get(model, 1.0)
    scale = default if init_scale is None else check_positive(init_scale, "init_scale", allow_zero=(model == "linear"))
    rng = np.random.default_rng(seed)
    if model == "linear":
        return scale * rng.standard_normal(dim) / np.sqrt(dim)
    if model == "diagonal":
        return np.full(2 * dim, scale)
    parts = []
    for rows, cols in shapes:
        W = scale * rng.standard_normal((rows, cols)) / np.sqrt(cols)
        parts.append(W.reshape(-1, order="F"))
    return np.concatenate(parts)


def direction(g: Any, norm: Any = "l2", shapes: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, float]:
    """The steepest direction ``g#`` of a gradient and its dual norm ``||g||_*``.

    ``shapes`` lists the (rows, cols) weight blocks of ``g`` (column-major),
    needed by ``"spectral"`` only. See the module docstring for the maps.
    """
    g = check_vector(g, "g")
    code, p = _parse_norm(norm)
    out, dual = core.steepest_direction(g, code, p, [tuple(map(int, s)) for s in (shapes or [])])
    return np.asarray(out), float(dual)


def param_norm(theta: Any, norm: Any = "l2", shapes: Sequence[tuple[int, int]] | None = None) -> float:
    """``||theta||`` in the given norm (``"spectral"``: largest spectral norm over the blocks)."""
    theta = check_vector(theta, "theta")
    code, p = _parse_norm(norm)
    return float(core.param_norm(theta, code, p, [tuple(map(int, s)) for s in (shapes or [])]))


@dataclass
class SteepestResult:
    """Outcome of one run.

    Attributes
    ----------
    theta : ndarray
        Final parameters, flattened (see :func:`init_params` for the layout).
    status : str
        ``"max_steps"`` (ran its steps), ``"converged"`` (reached
        ``target_log_loss``), ``"max_time"`` (flow reached ``t_max``) or
        ``"diverged"`` (non-finite values; the last finite state is kept).
    log_loss : float
        Natural log of the final loss (finite far below 1e-300).
    n_steps, n_grad_evals : int
        Steps taken (accepted steps of the flow) and gradient evaluations
        (the loss-based schedule counts its retries).
    t_final : float
        Sum of the step sizes (flow: the flow time).
    wall_time : float
        Seconds in C++ for this run.
    history : dict of ndarrays
        Recorded points: ``step`` (descent), ``t``, ``log_loss``,
        ``n_grad_evals``, ``wall_time``, ``accuracy``, ``margin_l2``,
        ``margin_linf``, ``margin_l1`` (``margin_spectral`` for relu2/mlp),
        ``smoothed_margin`` and ``alignment`` (in the algorithm's norm; l_inf
        for Adam and Signum), ``param_norm`` (algorithm's norm). The margin in
        norm p is ``min_i q_i / ||theta||_p^L``; the smoothed margin
        ``log(1/Loss) / ||theta||^L`` (exp) or ``log(1/(exp(Loss)-1)) /
        ||theta||^L`` (logistic); the alignment
        ``1 - <theta, -g> / (||theta|| ||g||_*)`` (0 when theta points along
        the steepest direction; for l2 it is ``1 - cos``). Margins are
        NaN at ``theta = 0`` (0/0).
    """

    theta: np.ndarray
    status: str
    log_loss: float
    n_steps: int
    n_grad_evals: int
    t_final: float
    wall_time: float
    history: dict[str, np.ndarray]
    model: str
    norm: Any
    optimizer: str
    degree: int
    shapes: list[tuple[int, int]]
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    _core_model: tuple = field(repr=False, default=("linear", 2, 0))

    def decision_function(self, X: Any | None = None) -> np.ndarray:
        """``f(x_i; theta)`` for the rows of X (default: the training data)."""
        X = self.X if X is None else check_matrix(X, "X")
        if X.shape[1] != self.X.shape[1]:
            raise ValueError(f"X must have {self.X.shape[1]} columns, got {X.shape[1]}")
        kind, depth, width = self._core_model
        return np.asarray(core.homogeneous_outputs(kind, depth, width, X, self.theta))

    def margin(self, norm: Any = "l2") -> float:
        """``min_i y_i f(x_i) / ||theta||^L`` in the given norm."""
        q = self.y * self.decision_function()
        return float(q.min() / param_norm(self.theta, norm, self.shapes) ** self.degree)

    def smoothed_margin(self) -> float:
        """The last recorded smoothed margin (algorithm's norm)."""
        return float(self.history["smoothed_margin"][-1])

    @property
    def accuracy(self) -> float:
        """Training accuracy of the final parameters."""
        return float(np.mean(self.y * self.decision_function() > 0))

    @property
    def params(self) -> dict[str, Any]:
        """The parameters by name: ``w``; ``u``, ``v``; or ``layers`` (list of matrices, last is ``a`` as 1 x width)."""
        d = self.X.shape[1]
        if self.model == "linear":
            return {"w": self.theta.copy()}
        if self.model == "diagonal":
            return {"u": self.theta[:d].copy(), "v": self.theta[d:].copy()}
        layers, off = [], 0
        for r, c in self.shapes:
            layers.append(self.theta[off:off + r * c].reshape((r, c), order="F").copy())
            off += r * c
        return {"layers": layers}

    @property
    def predictor(self) -> np.ndarray:
        """Linear and diagonal models: the linear predictor (``w`` or ``u^2 - v^2``)."""
        if self.model == "linear":
            return self.theta.copy()
        if self.model == "diagonal":
            d = self.X.shape[1]
            return self.theta[:d] ** 2 - self.theta[d:] ** 2
        raise ValueError("predictor is defined for the linear and diagonal models")


def _check_reachable(X: np.ndarray, y: np.ndarray, model: str) -> None:
    """Raise when zero loss is unreachable: zero rows (f(0) = 0 for homogeneous
    models), identical inputs with different labels, and, for the linear and
    diagonal models (whose predictors are linear), no separating hyperplane
    through the origin (an LP)."""
    zero = np.flatnonzero(np.all(X == 0.0, axis=1))
    if zero.size:
        raise ValueError(f"X has all-zero rows (e.g. {zero[:3].tolist()}): a homogeneous model gives them "
                         "output 0, so the loss cannot reach 0 (target_log_loss)")
    _, inv = np.unique(X, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    for g in np.unique(inv):
        labels = y[inv == g]
        if labels.min() != labels.max():
            raise ValueError("X, y are not separable: identical inputs carry different labels, so the loss "
                             "cannot reach 0 (target_log_loss)")
    if model in ("linear", "diagonal"):
        from .reference import max_margin

        try:  # the l_inf max-margin LP: positive exactly when a separating hyperplane exists
            max_margin(X, y, "linf")
        except ValueError:
            raise ValueError("X, y are not linearly separable through the origin, so a "
                             f"{model} model cannot reach zero loss (target_log_loss)") from None


def _record_steps(steps: int, n_record: int) -> list[int]:
    if steps <= 0:
        return []
    pts = np.unique(np.round(np.geomspace(1, steps, num=max(n_record, 2))).astype(np.int64))
    return [int(p) for p in pts]


def fit(
    X: Any,
    y: Any,
    model: str = "linear",
    norm: Any = "l2",
    normalized: bool = True,
    lr: float = 0.1,
    schedule: str = "constant",
    loss: str = "exp",
    steps: int = 1000,
    **kwargs: Any,
) -> SteepestResult:
    """Train one homogeneous classifier by steepest descent (or Adam, Signum, the flow).

    Parameters
    ----------
    X : array (n, d); y : array (n,) of labels in {-1, +1}
    model : ``"linear"``, ``"diagonal"``, ``"relu2"`` (needs ``width``) or ``"mlp"`` (``width``, ``depth``)
    norm : ``"l2"``, ``"linf"``, ``"l1"``, a float ``p`` > 1, or ``"spectral"``
    normalized : take unit steps ``lr g# / ||g||_*`` (True) or ``lr g#`` (False)
    lr : step size (``lr0`` of the schedule), > 0
    schedule : ``"constant"``, ``"power"`` (``decay_k0``, ``decay_power``) or ``"loss"``
    loss : ``"exp"`` or ``"logistic"``
    steps : number of steps (descent)

    Keyword arguments (see :func:`fit_many`): ``optimizer`` (``"steepest"``,
    ``"signum"``, ``"adam"``), ``beta1``, ``beta2``, ``eps``, ``width``,
    ``depth``, ``init_scale``, ``seed``, ``init``, ``method`` (``"descent"`` or
    ``"flow"``), ``t_max``, ``rtol``, ``target_log_loss``, ``record_every``,
    ``n_record``, ``num_threads``, ``decay_k0``, ``decay_power``,
    ``lr_growth``, ``lr_backoff``.
    """
    for k, v in kwargs.items():
        if isinstance(v, list):
            raise ValueError(f"{k} must be a single value in fit (use fit_many for lists)")
    return fit_many(X, y, model=model, norm=[norm], normalized=normalized, lr=lr, schedule=schedule, loss=loss,
                    steps=steps, **kwargs)[0]


def fit_many(
    X: Any,
    y: Any,
    *,
    model: str | Sequence[str] = "linear",
    norm: Any = "l2",
    normalized: bool | Sequence[bool] = True,
    lr: float | Sequence[float] = 0.1,
    schedule: str | Sequence[str] = "constant",
    loss: str | Sequence[str] = "exp",
    optimizer: str | Sequence[str] = "steepest",
    beta1: float | Sequence[float] = 0.9,
    beta2: float | Sequence[float] = 0.999,
    eps: float | Sequence[float] = 1e-8,
    width: int | Sequence[int] | None = None,
    depth: int | Sequence[int] | None = None,
    init_scale: float | Sequence[float] | None = None,
    seed: int | Sequence[int] = 0,
    init: Any = None,
    method: str | Sequence[str] = "descent",
    decay_k0: float = 100.0,
    decay_power: float = 0.5,
    lr_growth: float = 1.1,
    lr_backoff: float = 0.5,
    steps: int = 1000,
    t_max: float = 100.0,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 1_000_000,
    target_log_loss: float | None = None,
    record_every: int | None = None,
    n_record: int = 200,
    num_threads: int | None = None,
) -> list[SteepestResult]:
    """Many runs (algorithms x seeds x problems) in one C++ call over OpenMP threads.

    ``X``/``y`` may be one data set or lists of them. Every argument in the
    first group may be a scalar or a list; lists broadcast like 1-D numpy
    arrays (all of one length K, or length 1) and run k takes the k-th entry
    of each (build grids with ``itertools.product``). ``norm`` as a list is
    per run; note that a float ``p`` is a norm, so pass ``[p]`` in ``fit``.
    Each run is computed on its own, so the numbers are bitwise the same for
    any ``num_threads`` and identical to separate :func:`fit` calls.

    ``init`` (an explicit initial parameter vector, or a list of them)
    overrides ``init_scale``/``seed``, see :func:`init_params`. ``beta1``,
    ``beta2``, ``eps`` apply to Adam (``beta1`` to Signum); ``eps = 0`` is
    exact. ``method="flow"`` integrates ``d theta/dt = -Loss g~#`` (or the
    normalized direction) with the Dormand-Prince integrator up to ``t_max``
    (l2 and lp geometries, steepest descent only), with ``rtol``/``atol``.
    ``target_log_loss`` stops a run once ``log(Loss)`` falls to it; asking for
    it on data that no model of the kind can fit (zero rows, conflicting
    duplicates, or for linear/diagonal models no separating hyperplane)
    raises ValueError. History points: every ``record_every`` steps, or
    ``n_record`` log-spaced steps (descent) / times (flow).
    """
    # Data sets (the same (X, y) objects listed several times are one data set).
    X_list, y_list, run_problem = unique_problems(X, y, "X", "y")
    X_arrs = [check_matrix(x, "X") for x in X_list]
    y_arrs = []
    for xa, ya in zip(X_arrs, y_list):
        y_arrs.append(check_labels(ya, xa.shape[0]))

    per_run: dict[str, list] = {
        "problem": run_problem,
        "model": as_run_list(model, "model"),
        "norm": as_run_list(norm, "norm"),
        "normalized": as_run_list(normalized, "normalized"),
        "lr": as_run_list(lr, "lr"),
        "schedule": as_run_list(schedule, "schedule"),
        "loss": as_run_list(loss, "loss"),
        "optimizer": as_run_list(optimizer, "optimizer"),
        "beta1": as_run_list(beta1, "beta1"),
        "beta2": as_run_list(beta2, "beta2"),
        "eps": as_run_list(eps, "eps"),
        "width": as_run_list(width, "width"),
        "depth": as_run_list(depth, "depth"),
        "init_scale": as_run_list(init_scale, "init_scale"),
        "seed": as_run_list(seed, "seed"),
        "init": init if isinstance(init, list) else [init],
        "method": as_run_list(method, "method"),
    }
    K = broadcast_runs(per_run)

    steps = check_positive_int(steps, "steps", minimum=0)
    decay_k0 = check_positive(decay_k0, "decay_k0")
    decay_power = check_positive(decay_power, "decay_power", allow_zero=True)
    lr_growth = check_positive(lr_growth, "lr_growth")
    lr_backoff = check_positive(lr_backoff, "lr_backoff")
    if lr_growth < 1.0:
        raise ValueError(f"lr_growth must be >= 1, got {lr_growth}")
    if lr_backoff >= 1.0:
        raise ValueError(f"lr_backoff must be < 1, got {lr_backoff}")
    t_max = check_positive(t_max, "t_max")
    rtol = check_positive(rtol, "rtol")
    atol = check_positive(atol, "atol", allow_zero=True)
    max_steps = check_positive_int(max_steps, "max_steps")
    n_record = check_positive_int(n_record, "n_record", minimum=2)
    if target_log_loss is None:
        target = -np.inf
    else:
        if isinstance(target_log_loss, bool) or not isinstance(target_log_loss, numbers.Real) or np.isnan(target_log_loss):
            raise ValueError(f"target_log_loss must be a real number, got {target_log_loss!r}")
        target = float(target_log_loss)
    rec_every = 0 if record_every is None else check_positive_int(record_every, "record_every")
    threads = 0 if num_threads is None else check_positive_int(num_threads, "num_threads")

    runs, meta = [], []
    checked: set[tuple[int, str]] = set()
    for k in range(K):
        p = per_run["problem"][k]
        Xp = X_arrs[p]
        d = Xp.shape[1]
        mdl = per_run["model"][k]
        kind, dep, wid, degree, shapes = _model_spec(mdl, d, per_run["width"][k], per_run["depth"][k])
        code, pval = _parse_norm(per_run["norm"][k])
        opt = check_choice(per_run["optimizer"][k], "optimizer", _OPTIMIZERS)
        sched = check_choice(per_run["schedule"][k], "schedule", _SCHEDULES)
        lossk = check_choice(per_run["loss"][k], "loss", _LOSSES)
        meth = check_choice(per_run["method"][k], "method", _METHODS)
        nrm = per_run["normalized"][k]
        if not isinstance(nrm, (bool, np.bool_)):
            raise ValueError(f"normalized must be a bool, got {nrm!r}")
        lr_k = check_positive(per_run["lr"][k], "lr")
        b1 = check_positive(per_run["beta1"][k], "beta1", allow_zero=True)
        b2 = check_positive(per_run["beta2"][k], "beta2", allow_zero=True)
        if b1 >= 1.0:
            raise ValueError(f"beta1 must be in [0, 1), got {b1}")
        if b2 >= 1.0:
            raise ValueError(f"beta2 must be in [0, 1), got {b2}")
        e = check_positive(per_run["eps"][k], "eps", allow_zero=True)
        if sched == "loss" and (opt != "steepest" or nrm):
            raise ValueError("schedule='loss' is for unnormalized steepest descent: set normalized=False "
                             "and optimizer='steepest'")
        if meth == "flow":
            if opt != "steepest":
                raise ValueError(f"method='flow' is defined for optimizer='steepest' only, got {opt!r}")
            if code not in ("l2", "lp"):
                raise ValueError(f"method='flow' needs a smooth direction map (norm 'l2' or a float p), got norm {per_run['norm'][k]!r}")
        if mdl == "diagonal" and code == "spectral":
            pass  # vectors: the spectral norm is the l2 norm of each block
        if per_run["init"][k] is not None:
            theta0 = check_vector(per_run["init"][k], "init", sum(r * c for r, c in shapes))
        else:
            theta0 = init_params(mdl, d, width=wid or None, depth=dep if kind == "mlp" else None,
                                 init_scale=per_run["init_scale"][k], seed=per_run["seed"][k])
        if target > -np.inf and (p, kind) not in checked:
            _check_reachable(Xp, y_arrs[p], mdl)
            checked.add((p, kind))
        runs.append({
            "problem": p, "model": kind, "depth": dep, "width": wid, "loss": lossk, "optimizer": opt,
            "norm": code, "p": pval, "normalized": bool(nrm), "lr": lr_k, "schedule": sched,
            "decay_k0": decay_k0, "decay_power": decay_power, "lr_growth": lr_growth, "lr_backoff": lr_backoff,
            "beta1": b1, "beta2": b2, "eps": e, "theta0": theta0, "flow": meth == "flow",
        })
        meta.append((mdl, per_run["norm"][k], opt, degree, shapes, (kind, dep, wid), p))

    any_flow = any(r["flow"] for r in runs)
    record_times = list(np.geomspace(t_max * 1e-4, t_max, n_record)) if (any_flow and rec_every == 0) else []
    raw = core.steepest_batch(X_arrs, y_arrs, runs, steps, target, _record_steps(steps, n_record) if rec_every == 0 else [],
                              rec_every, rtol, atol, t_max, max_steps, record_times, threads)
    out = []
    for r, (mdl, nm, opt, degree, shapes, cm, p) in zip(raw, meta):
        hist = {k: np.asarray(v) for k, v in r["history"].items()}
        if "loss" in hist:  # the flow's loss channel carries the log-loss
            hist["log_loss"] = hist.pop("loss")
        out.append(SteepestResult(
            theta=np.asarray(r["state"]), status=r["status"], log_loss=float(r["loss_final"]),
            n_steps=int(r["n_steps"]), n_grad_evals=int(r["n_grad_evals"]), t_final=float(r["t_final"]),
            wall_time=float(r["wall_time"]), history=hist, model=mdl, norm=nm, optimizer=opt, degree=degree,
            shapes=shapes, X=X_arrs[p], y=y_arrs[p], _core_model=cm,
        ))
    return out
