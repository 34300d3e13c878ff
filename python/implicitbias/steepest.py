"""Steepest descent in several geometries on homogeneous classifiers (docs/science.md, section 2).

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

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _batch
from ._batch import RunResult
from ._family import Adapter, Family, Problems, choice_param, core_names, param
from ._native import core
from ._validation import (
    check_choice,
    check_labels,
    check_matrix,
    check_positive,
    check_positive_int,
    check_seed,
    check_vector,
    finite_result,
    unique_problems,
)

__all__ = ["FAMILY", "MODELS", "NORMS", "SteepestResult", "direction", "fit", "fit_many", "init_params", "param_norm"]

MODELS = ("linear", "diagonal", "relu2", "mlp")  # relu2 and mlp are the core's mlp kind
NORMS = core_names(core.NormKind, drop=("lp",))  # and a float p > 1 (the core's lp)
_OPTIMIZERS = core_names(core.Optimizer)
_SCHEDULES = core_names(core.Schedule)
_LOSSES = core_names(core.LossKind)
_METHODS = ("descent", "flow")  # SteepestRun.flow False / True


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


def _core_norm(norm: Any) -> Any:
    """A norm as the core's NormSpec."""
    code, p = _parse_norm(norm)
    return _batch.make(core.NormSpec, kind=_batch.enum(core.NormKind, code), p=p)


def _core_model(kind: str, depth: int, width: int) -> Any:
    """A model as the core's HomogeneousSpec (kind 'linear', 'diagonal' or 'mlp')."""
    return _batch.make(core.HomogeneousSpec, kind=_batch.enum(core.ModelKind, kind), depth=depth, width=width)


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
    dim = check_positive_int(dim, "dim")
    shapes = _model_spec(model, dim, width, depth)[4]
    seed = check_seed(seed)
    default = {"linear": 0.0, "diagonal": 0.1}.get(model, 1.0)
    scale = default if init_scale is None else check_positive(init_scale, "init_scale", allow_zero=(model == "linear"))
    rng = np.random.default_rng(seed)
    if model == "diagonal":
        return np.full(2 * dim, scale)
    with np.errstate(over="ignore"):
        if model == "linear":
            theta = scale * rng.standard_normal(dim) / np.sqrt(dim)
        else:
            theta = np.concatenate([(scale * rng.standard_normal((rows, cols)) / np.sqrt(cols)).reshape(-1, order="F")
                                    for rows, cols in shapes])
    return finite_result(theta, "init_scale", "initial parameter vector")


def _initial_draw(model: str, dim: int, width: Any, depth: Any, init_scale: Any, seed: Any) -> np.ndarray:
    """:func:`init_params`, memoized (read-only) for a given seed: runs and calls that share a model and
    seed share the draw."""
    if seed is None:
        return init_params(model, dim, width=width, depth=depth, init_scale=init_scale, seed=seed)
    try:
        return _initial_draw_cached(model, dim, width, depth, init_scale, seed)
    except TypeError:  # an unhashable argument: checked (and refused) by init_params
        return init_params(model, dim, width=width, depth=depth, init_scale=init_scale, seed=seed)


@functools.lru_cache(maxsize=256, typed=True)
def _initial_draw_cached(model: str, dim: int, width: Any, depth: Any, init_scale: Any, seed: Any) -> np.ndarray:
    theta = init_params(model, dim, width=width, depth=depth, init_scale=init_scale, seed=seed)
    theta.flags.writeable = False
    return theta


def direction(g: Any, norm: Any = "l2", shapes: Sequence[tuple[int, int]] | None = None) -> tuple[np.ndarray, float]:
    """The steepest direction ``g#`` of a gradient and its dual norm ``||g||_*``.

    ``shapes`` lists the (rows, cols) weight blocks of ``g`` (column-major),
    needed by ``"spectral"`` only. See the module docstring for the maps.
    """
    g = check_vector(g, "g")
    out, dual = core.steepest_direction(g, _core_norm(norm), [tuple(map(int, s)) for s in (shapes or [])])
    return np.asarray(out), float(dual)


def param_norm(theta: Any, norm: Any = "l2", shapes: Sequence[tuple[int, int]] | None = None) -> float:
    """``||theta||`` in the given norm (``"spectral"``: largest spectral norm over the blocks)."""
    theta = check_vector(theta, "theta")
    return float(core.param_norm(theta, _core_norm(norm), [tuple(map(int, s)) for s in (shapes or [])]))


@dataclass(repr=False)
class SteepestResult(RunResult):
    """Outcome of one run (the fields of :class:`~implicitbias._batch.RunResult` and these).

    Attributes
    ----------
    theta : ndarray
        Final parameters, flattened (see :func:`init_params` for the layout).
    log_loss : float
        Natural log of the final loss (finite far below 1e-300). ``status``
        is ``"converged"`` once ``log_loss <= target_log_loss``.
    t_final : float
        Sum of the step sizes (flow: the flow time).
    history : dict of ndarrays
        Recorded points: ``step`` (descent), ``t``, ``log_loss``,
        ``n_grad_evals``, ``wall_time``, ``accuracy``, ``margin_l2``,
        ``margin_linf``, ``margin_l1`` (``margin_spectral`` for relu2/mlp),
        ``smoothed_margin`` and ``alignment`` (in the algorithm's norm; l_inf
        for Adam and Signum), ``param_norm`` (algorithm's norm). The margin in
        norm p is ``min_i q_i / ||theta||_p^L``; the smoothed margin
        ``log(1/Loss) / ||theta||^L`` (exp) or ``log(1/(exp(Loss)-1)) /
        ||theta||^L`` (logistic); the alignment
        ``1 - <theta, -g> / (||theta|| ||g||_*)`` (docs/science.md, section 2.7).
        Margins are NaN at ``theta = 0`` (0/0).
    """

    log_loss: float
    theta: np.ndarray
    model: str
    norm: Any
    optimizer: str
    degree: int
    shapes: list[tuple[int, int]]
    X: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    _model_spec: Any = field(repr=False, default=None)

    def _history_from(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hist = dict(raw)
        if "loss" in hist:  # the flow's loss channel carries the log-loss
            hist["log_loss"] = hist.pop("loss")
        return hist

    def decision_function(self, X: Any | None = None) -> np.ndarray:
        """``f(x_i; theta)`` for the rows of X (default: the training data)."""
        X = self.X if X is None else check_matrix(X, "X")
        if X.shape[1] != self.X.shape[1]:
            raise ValueError(f"X must have {self.X.shape[1]} columns, got {X.shape[1]}")
        return np.asarray(core.homogeneous_outputs(self._model_spec, X, self.theta))

    def margin(self, norm: Any = "l2") -> float:
        """``min_i y_i f(x_i) / ||theta||^L`` in the given norm."""
        q = self.y * self.decision_function()
        return float(q.min() / param_norm(self.theta, norm, self.shapes) ** self.degree)

    def smoothed_margin(self) -> float:
        """The last recorded smoothed margin (algorithm's norm)."""
        return float(self.history["smoothed_margin"][-1])

    def to_row(self) -> dict[str, Any]:
        """:meth:`RunResult.to_row` and the settings (``model``, ``norm`` as a string,
        ``optimizer``, ``degree``) and ``log_loss``, ``accuracy``, ``margin_l2``, ``margin_linf``,
        ``margin_l1`` and ``margin_spectral`` (:meth:`margin`; NaN at ``theta = 0``)."""
        with np.errstate(all="ignore"):
            margins = {f"margin_{n}": self.margin(n) for n in ("l2", "linf", "l1", "spectral")}
        return {**super().to_row(), "model": self.model, "norm": str(self.norm), "optimizer": self.optimizer,
                "degree": self.degree, "log_loss": self.log_loss, "accuracy": self.accuracy, **margins}

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


@functools.lru_cache(maxsize=64)
def _record_steps(steps: int, n_record: int) -> tuple[int, ...]:
    """About ``n_record`` log-spaced steps in [1, steps] (distinct)."""
    if steps <= 0:
        return ()
    pts = np.unique(np.round(np.geomspace(1, steps, num=max(n_record, 2))).astype(np.int64))
    return tuple(int(p) for p in pts)


def fit(
    X: Any,
    y: Any,
    model: str = "linear",
    *,
    norm: str | float = "l2",
    normalized: bool = True,
    lr: float = 0.1,
    schedule: str = "constant",
    loss: str = "exp",
    optimizer: str = "steepest",
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    width: int | None = None,
    depth: int | None = None,
    init_scale: float | None = None,
    seed: int | None = 0,
    init: np.ndarray | None = None,
    method: str = "descent",
    decay_k0: float = 100.0,
    decay_power: float = 0.5,
    lr_growth: float = 1.1,
    lr_backoff: float = 0.5,
    steps: int = 1000,
    t_max: float = 100.0,
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 1_000_000,
    target_loss: float | None = None,
    target_log_loss: float | None = None,
    record_every: int | None = None,
    n_record: int = 200,
    num_threads: int | None = None,
) -> SteepestResult:
    """Train one homogeneous classifier (steepest descent, Adam, Signum, flow).

    Parameters
    ----------
    X : array (n, d); y : array (n,) of labels in {-1, +1}
    model : ``"linear"``, ``"diagonal"``, ``"relu2"`` (needs ``width``) or ``"mlp"`` (``width``, ``depth``)
    norm : ``"l2"``, ``"linf"``, ``"l1"``, a float ``p`` > 1, or ``"spectral"``
        The geometry (docs/science.md, section 2.3).
    normalized : take unit steps ``lr g# / ||g||_*`` (True) or ``lr g#`` (False)
    lr : step size (``lr0`` of the schedule), > 0
    schedule : ``"constant"``, ``"power"`` (``decay_k0``, ``decay_power``) or ``"loss"``
        (``lr_growth``, ``lr_backoff``); docs/science.md, section 2.5.
    loss : ``"exp"`` or ``"logistic"``
    optimizer : ``"steepest"``, ``"signum"`` or ``"adam"`` (``beta1``, ``beta2``, ``eps``)
    width, depth, init_scale, seed, init : the model's size and initialization (:func:`init_params`)
    method : ``"descent"`` (``steps`` steps) or ``"flow"`` (``t_max``, ``rtol``, ``atol``, ``max_steps``)
    target_loss : stop as converged once ``Loss <= target_loss`` (>= 0; default: never)
    target_log_loss : the same target as ``log(Loss) <= target_log_loss`` (instead of ``target_loss``)
    record_every, n_record : history points (see :func:`fit_many`)
    num_threads : OpenMP threads (results do not depend on it)

    Returns
    -------
    SteepestResult
    """
    return FAMILY.run_one(locals())


def fit_many(
    X: Any,
    y: Any,
    model: str | Sequence[str] = "linear",
    *,
    norm: str | float | Sequence[str | float] = "l2",
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
    seed: int | Sequence[int | None] | None = 0,
    init: np.ndarray | Sequence[np.ndarray | None] | None = None,
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
    target_loss: float | None = None,
    target_log_loss: float | None = None,
    record_every: int | None = None,
    n_record: int = 200,
    num_threads: int | None = None,
) -> list[SteepestResult]:
    """Many runs (algorithms x seeds x problems) in one C++ call over OpenMP threads.

    ``X``/``y`` may be one data set or lists of them. The per-run arguments
    (``model`` to ``method`` in the signature) may be scalars or lists; lists
    broadcast like 1-D numpy arrays (all of one length K, or length 1) and run
    k takes the k-th entry of each (build grids with ``itertools.product``).
    A float ``p`` is a norm, so ``norm=[2.5, 3.0]`` is two runs. Each run is
    computed on its own, so the numbers are bitwise the same for any
    ``num_threads`` and identical to separate :func:`fit` calls.

    ``init`` (an explicit initial parameter vector, or a list of them)
    overrides ``init_scale``/``seed``, see :func:`init_params`.
    ``method="flow"`` integrates ``d theta/dt = -Loss g~#`` (or the
    normalized direction) with Dormand-Prince 5(4) up to ``t_max`` (l2 and
    lp geometries, steepest descent only), with ``rtol``/``atol``.
    ``target_loss`` stops a run once the loss falls to it (``target_log_loss``:
    the same in the log domain, for targets below 1e-308; give one of the
    two); asking for it on data that no model of the kind can fit (zero rows, conflicting
    duplicates, or for linear/diagonal models no separating hyperplane)
    raises ValueError. History points: every ``record_every`` steps, or
    ``n_record`` log-spaced steps (descent) / times (flow). Other
    parameters: see :func:`fit`.
    """
    return FAMILY.run(locals())


@dataclass(slots=True)
class _Batch:
    options: Any
    schedule_constants: dict[str, float]
    reachable: set | None  # the (problem, model kind) pairs checked for a reachable target (None: no target)
    has_target: bool
    num_threads: int
    runs: dict[str, list]
    shapes: list = field(default_factory=list)  # each run's (degree, weight shapes), filled by core_runs
    core_runs: list = field(default_factory=list)


class _Adapter(Adapter):
    """steepest_batch: ClassificationProblem, SteepestRun, SteepestOptions (the target), num_threads; each
    run is its own block in the core, so there is nothing to group."""

    overflow_ok = False  # the decoder computes nothing from the state

    def problems(self, args: dict[str, Any]) -> Problems:
        X_list, y_list, run_problem = unique_problems(args["X"], args["y"], "X", "y")
        X_arrs = [check_matrix(x, "X") for x in X_list]
        data = [(Xa, check_labels(ya, Xa.shape[0])) for Xa, ya in zip(X_arrs, y_list)]
        return Problems([core.ClassificationProblem(Xa, ya) for Xa, ya in data], data, run_problem)

    def batch(self, opts: dict[str, Any], runs: dict[str, list], problems: Problems) -> _Batch:
        if opts["target_loss"] is not None and opts["target_log_loss"] is not None:
            raise ValueError("give target_loss or target_log_loss, not both")
        target = opts["target_log_loss"]
        if opts["target_loss"] is not None:
            target = math.log(opts["target_loss"]) if opts["target_loss"] > 0 else -np.inf
        options = _options(opts["steps"], opts["t_max"], opts["rtol"], opts["atol"], opts["max_steps"],
                           -np.inf if target is None else target, opts["record_every"], opts["n_record"],
                           any(m == "flow" for m in runs["method"]))
        constants = {n: opts[n] for n in ("decay_k0", "decay_power", "lr_growth", "lr_backoff")}
        return _Batch(options, constants, set() if options.target_log_loss > -np.inf else None,
                      opts["target_loss"] is not None or options.target_log_loss > -np.inf, opts["num_threads"],
                      runs)

    def core_runs(self, K: int, runs: dict[str, list], problems: Problems, batch: _Batch) -> Any:
        memo: dict = {}
        built = [_run_spec(k, runs, problems.data, batch.schedule_constants, batch.reachable, memo) for k in range(K)]
        batch.shapes = [(degree, shapes) for _, degree, shapes in built]
        return [run for run, _, _ in built]

    def call(self, problems: Problems, core_runs: Any, batch: _Batch) -> Any:
        batch.core_runs = core_runs
        return core.steepest_batch(problems.core, core_runs, batch.options, batch.num_threads)

    def decode(self, records: _batch.Decoded, runs: dict[str, list], problems: Problems,
               batch: _Batch) -> list[SteepestResult]:
        base = records.base(batch.has_target, [m != "flow" for m in runs["method"]])
        log_losses = records.loss_final
        out = []
        for k, ((degree, shapes), run) in enumerate(zip(batch.shapes, batch.core_runs)):
            X, y = problems.data[runs["problem"][k]]
            out.append(SteepestResult(
                **base[k], log_loss=log_losses[k], theta=records.state(k).copy(), model=runs["model"][k],
                norm=runs["norm"][k], optimizer=runs["optimizer"][k], degree=degree, shapes=shapes, X=X, y=y,
                _model_spec=run.model))
        return out


@_batch.memoized
def _options(steps: int, t_max: float, rtol: float, atol: float, max_steps: int, target: float,
             record_every: int | None, n_record: int, any_flow: bool) -> Any:
    """The core options shared by a batch, from the checked batch-wide arguments."""
    every = 0 if record_every is None else record_every
    times = list(np.geomspace(t_max * 1e-4, t_max, n_record)) if (any_flow and every == 0) else []
    # the log-loss is negative: the relative stall rule does not apply to the flow
    adaptive = _batch.adaptive_options(rtol=rtol, atol=atol, t_max=t_max, max_steps=max_steps, stall_steps=0,
                                       record_times=times, record_every=every)
    return _batch.make(core.SteepestOptions, steps=steps, target_log_loss=target, record_every=every,
                       record_steps=list(_record_steps(steps, n_record)) if every == 0 else [], adaptive=adaptive)


def _beta(value: Any, name: str) -> float:
    b = check_positive(value, name, allow_zero=True)
    if b >= 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {b}")
    return b


def _log_target(value: Any, name: str) -> float:
    if not _batch.is_real(value) or math.isnan(float(value)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _norm(value: Any, name: str) -> Any:
    """A norm: one of NORMS or a float p > 1 (returned as given)."""
    _parse_norm(value, name)
    return value


def _at_least_one(value: Any, name: str) -> float:
    v = check_positive(value, name)
    if v < 1.0:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return v


def _run_spec(k: int, runs: dict[str, list], data: list[tuple[np.ndarray, np.ndarray]],
              schedule_constants: dict[str, float], reachable: set | None,
              memo: dict) -> tuple[Any, int, list[tuple[int, int]]]:
    """Run k as the core's SteepestRun, with its degree and weight shapes.

    ``reachable``: the (problem, model kind) pairs already checked for a
    reachable ``target_log_loss`` (None: no target, no check); ``memo``:
    initial draws and core structs shared by the runs of one call."""
    p = runs["problem"][k]
    Xp, yp = data[p]
    mdl, opt, sched, meth = runs["model"][k], runs["optimizer"][k], runs["schedule"][k], runs["method"][k]
    kind, dep, wid, degree, shapes = _model_spec(mdl, Xp.shape[1], runs["width"][k], runs["depth"][k])
    code, pval = _parse_norm(runs["norm"][k])
    if sched == "loss" and (opt != "steepest" or runs["normalized"][k]):
        raise ValueError("schedule='loss' is for unnormalized steepest descent: set normalized=False "
                         "and optimizer='steepest'")
    if meth == "flow" and opt != "steepest":
        raise ValueError(f"method='flow' is defined for optimizer='steepest' only, got {opt!r}")
    if meth == "flow" and code not in ("l2", "lp"):
        raise ValueError("method='flow' needs a smooth direction map (norm 'l2' or a float p), "
                         f"got norm {runs['norm'][k]!r}")
    if runs["init"][k] is not None:
        theta0 = check_vector(runs["init"][k], "init", sum(r * c for r, c in shapes))
    else:
        theta0 = _initial_draw(mdl, Xp.shape[1], wid or None, dep if kind == "mlp" else None,
                               runs["init_scale"][k], runs["seed"][k])
    if reachable is not None and (p, kind) not in reachable:
        _check_reachable(Xp, yp, mdl)
        reachable.add((p, kind))
    key = ("algorithm", opt, code, pval, runs["normalized"][k], sched, runs["beta1"][k], runs["beta2"][k],
           runs["eps"][k])  # the run's lr is set on its own copy below
    if key not in memo:
        memo[key] = _batch.make(
            core.AlgorithmSpec, optimizer=_batch.enum(core.Optimizer, opt),
            norm=_batch.make(core.NormSpec, kind=_batch.enum(core.NormKind, code), p=pval),
            normalized=runs["normalized"][k], lr=runs["lr"][k], schedule=_batch.enum(core.Schedule, sched),
            beta1=runs["beta1"][k], beta2=runs["beta2"][k], eps=runs["eps"][k], **schedule_constants)
    if ("model", kind, dep, wid) not in memo:
        memo[("model", kind, dep, wid)] = _core_model(kind, dep, wid)
    run = core.SteepestRun(problem=p, model=memo[("model", kind, dep, wid)],
                           loss=_batch.enum(core.LossKind, runs["loss"][k]), algorithm=memo[key], theta0=theta0,
                           flow=meth == "flow")
    run.algorithm.lr = runs["lr"][k]  # the run's copy of the shared algorithm
    return run, degree, shapes


_B = _batch
FAMILY = Family.declare("steepest", fit, fit_many, ("X", "y"), [
    choice_param("model", MODELS, per_run=True),
    param("norm", _norm, str, float, per_run=True),  # one of NORMS or a float p > 1
    param("normalized", _B.boolean, bool, per_run=True),
    param("lr", _B.positive, float, per_run=True),
    choice_param("schedule", _SCHEDULES, per_run=True),
    choice_param("loss", _LOSSES, per_run=True),
    choice_param("optimizer", _OPTIMIZERS, per_run=True),
    param("beta1", _beta, float, per_run=True),
    param("beta2", _beta, float, per_run=True),
    param("eps", _B.nonnegative, float, per_run=True),
    param("width", None, int, type(None), per_run=True),
    param("depth", None, int, type(None), per_run=True),
    param("init_scale", None, float, type(None), per_run=True),
    param("seed", None, int, type(None), per_run=True),
    param("init", None, np.ndarray, type(None), per_run=True, vector=True, one_array=True),
    choice_param("method", _METHODS, per_run=True),
    param("decay_k0", _B.positive, float),
    param("decay_power", _B.nonnegative, float),
    param("lr_growth", _at_least_one, float),
    param("lr_backoff", _B.below_one, float),
    param("steps", _B.integer(0), int),
    param("t_max", _B.positive, float),
    param("rtol", _B.below_one, float),
    param("atol", _B.nonnegative, float),
    param("max_steps", _B.integer(1), int),
    param("target_loss", _B.optional(_B.nonnegative), float, type(None)),
    param("target_log_loss", _B.optional(_log_target), float, type(None)),
    param("record_every", _B.optional(_B.integer(1)), int, type(None)),
    param("n_record", _B.integer(2), int),
    param("num_threads", _B.num_threads, int, type(None)),
], _Adapter())
"""The steepest family's declaration (:class:`implicitbias._family.Family`)."""
