"""Deep matrix factorization: deep linear networks on matrix sensing (docs/science.md, section 3).

Model: layers ``W_j`` of shape ``(d_j, d_{j-1})``, ``j = 1..L``, end-to-end
``E = W_L ... W_1`` of shape ``(d_L, d_0)``; measurements ``f_i = <A_i, E>``
with dense sensing matrices (``A`` a float array (n, d_L, d_0)) or entry
sampling (``A`` an int array (n, 2) of (row, column) pairs: matrix
completion, never densified); loss

    Loss(W) = (1/n) sum_i (<A_i, E> - y_i)^2        (dimensionless, mean square).

Regression data (deep linear regression, docs/families/factorization.md,
"Deep linear regression"): inputs ``X`` (n, d_0) and targets ``Y`` (n, d_L),
given as ``A = X, y = Y`` (a 2-D ``y`` means regression data) or as one
:func:`regression_operator`, with the same convention

    Loss(W) = (1/n) ||E X^T - Y^T||_F^2 = (1/n) sum_s ||E x_s - y_s||^2     (units of Y squared),

twice the ``0.5 * mean over samples`` loss of many deep-learning codes: a step
``lr`` here is a step ``2 lr`` there, flow time ``t`` here is ``2 t`` there, and
curvatures (Hessian, its trace) are twice theirs.

Training (:func:`fit`, :func:`fit_many`) runs in C++ through the package's
generic integrator; ``method``:

* ``"descent"``: ``W <- W - lr * grad Loss(W)``.
* ``"flow"``: gradient flow ``dW/dt = -grad Loss`` by adaptive Dormand-Prince 5(4).
* ``"trace_penalty"``: gradient descent on ``Loss + lam_k * tr Hess Loss`` (``lam = trace_weight``) with the
  exact trace and its exact gradient (:mod:`implicitbias.hessian`).
* ``"label_noise_sgd"``: full-batch descent on fresh noisy labels
  ``y_i + sigma_k xi_i`` (``sigma = label_noise_std``, ``xi_i ~ N(0, 1)`` drawn anew every step from the
  run's seed and the step number).
* ``"sam"``: sharpness-aware minimization
  ``W <- W - lr * grad Loss(W + rho_k g / ||g||)``, ``g = grad Loss(W)``, ``rho = sam_radius``
  (two gradient evaluations per step; ``n_grad_evals`` counts steps).

Annealing schedule of the strengths ``s_k`` in {lam, sigma, rho} (step k,
``K_a = round(anneal_frac * steps)``): ``s_k = s * final_ratio**(k / K_a)`` for
``k < K_a`` (geometric decay from ``s`` to ``s * final_ratio``), then
``s_k = 0``: the last ``steps - K_a`` steps are plain gradient descent, which
refines the solution to zero loss.

The state is the stack of ``vec(W_1), ..., vec(W_L)`` (column-major); gradients
and Hessian-vector products use the same stacking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _batch
from ._batch import RunResult
from ._family import Adapter, Family, Problems, choice_param, core_names, param
from ._native import core
from ._sensing import parse_sensing
from ._validation import (
    check_choice,
    check_matrix,
    check_positive,
    check_positive_int,
    check_seed,
    check_vector,
    finite_result,
)

__all__ = [
    "FAMILY", "FactorizationResult", "RegressionOperator", "SensingOperator", "balanced_factorization", "fit",
    "fit_many", "gradient", "initial_layers", "jacobian", "loss", "pack", "product", "regression_operator",
    "sensing_operator", "unpack",
]

_METHODS = core_names(core.FactorizationMethod)
_INITS = core_names(core.FactorizationInit)  # drawn by the core (initial_layers, and in fit_many's blocks)


# --------------------------------------------------------------------------- measurement operators
class SensingOperator:
    """A measurement operator ``E -> (<A_i, E>)_i`` prepared once for the C++ core.

    Build it with :func:`sensing_operator` and pass it wherever ``A`` is
    accepted to avoid re-preparing the same measurements (for dense sensing
    the preparation forms ``sum_i A_i (x) A_i`` when that is small, which makes
    every trace and trace gradient cost O(d^4) instead of O(n d^3)).
    """

    def __init__(self, A: Any, shape: Any = None, *, prepare: bool = True, name: str = "A") -> None:
        self.kind, arr, self.shape = parse_sensing(A, shape, name)
        if self.kind == "gaussian":
            n, d_out, d_in = arr.shape
            self._core = core.FactorizationMeasurements.gaussian(d_out, d_in, arr.reshape(n * d_out, d_in),
                                                                 prepare=bool(prepare))
        else:
            d_out, d_in = self.shape
            rows, cols = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
            self._core = core.FactorizationMeasurements.completion(d_out, d_in, rows.tolist(), cols.tolist())
        self.A = arr
        self.n = int(self._core.n)

    def __repr__(self) -> str:
        return f"SensingOperator(kind={self.kind!r}, shape={self.shape}, n={self.n})"


def sensing_operator(A: Any, shape: Any = None) -> SensingOperator:
    """Prepare measurements once: ``A`` (n, d_out, d_in) floats or (n, 2) index pairs (then ``shape``)."""
    if isinstance(A, SensingOperator):
        return A
    return SensingOperator(A, shape)


class RegressionOperator(SensingOperator):
    """Regression data ``X`` (n, d_in), ``Y`` (n, d_out) prepared once for the C++ core.

    The loss ``(1/n) ||E X^T - Y^T||_F^2`` depends on the data only through
    ``X^T X / n``, ``Y^T X / n`` and ``||Y||_F^2 / n``; when ``n > d_in + d_out``
    the core keeps the triangular factor of a QR of ``[X Y]`` instead of the
    samples (same Gram matrix, so the same loss, gradient, Hessian and trace,
    at a cost independent of n). Pass it as ``A`` with ``y=None`` (it holds
    the targets). Attributes: ``X``, ``Y``, ``n`` (samples), ``shape`` =
    ``(d_out, d_in)``, ``kind = "regression"``.
    """

    def __init__(self, X: Any, Y: Any, *, x_name: str = "X", y_name: str = "Y") -> None:
        X = check_matrix(X, x_name)
        Y = check_matrix(Y, y_name)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"{y_name} must have one row per sample of {x_name} ({X.shape[0]}), "
                             f"got shape {Y.shape}")
        self.kind = "regression"
        self.shape = (int(Y.shape[1]), int(X.shape[1]))
        self.X, self.Y = X, Y
        self.A = X
        self._core = core.FactorizationMeasurements.regression(np.asfortranarray(X), np.asfortranarray(Y))
        self.n = int(X.shape[0])
        self._targets = np.asarray(self._core.targets)

    @property
    def zero_loss(self) -> float:
        """The loss at ``E = 0``: ``||Y||_F^2 / n``."""
        return float(np.sum(self.Y**2)) / self.n

    def __repr__(self) -> str:
        return f"RegressionOperator(shape={self.shape}, n={self.n})"


def regression_operator(X: Any, Y: Any) -> RegressionOperator:
    """Prepare regression data once: inputs ``X`` (n, d_in), targets ``Y`` (n, d_out), finite."""
    if isinstance(X, RegressionOperator):
        if Y is not None:
            raise ValueError("Y must be None when X is already a RegressionOperator")
        return X
    return RegressionOperator(X, Y)


def _operator(A: Any, shape: Any = None, *, prepare: bool = True) -> SensingOperator:
    if isinstance(A, SensingOperator):
        if shape is not None and tuple(shape) != A.shape:
            raise ValueError(f"shape {tuple(shape)} does not match the operator's shape {A.shape}")
        return A
    return SensingOperator(A, shape, prepare=prepare)


def _is_regression(A: Any, y: Any) -> bool:
    """Regression data: a :class:`RegressionOperator`, or a 2-D ``y`` with a 2-D ``A`` (the inputs X)."""
    if isinstance(A, RegressionOperator):
        return True
    try:
        return y is not None and not isinstance(A, SensingOperator) and np.ndim(y) == 2 and np.ndim(A) == 2
    except ValueError:  # ragged A or y: SensingOperator or check_vector names it
        return False


def _data(A: Any, y: Any, shape: Any = None, *, prepare: bool = True,
          need_y: bool = True) -> tuple[SensingOperator, np.ndarray | None]:
    """The operator and the targets in its residual space (checked; y may be None if not need_y)."""
    if _is_regression(A, y):
        if isinstance(A, RegressionOperator):
            if y is not None:
                raise ValueError("y must be None with a RegressionOperator (it holds the targets Y)")
            reg = A
        else:
            reg = RegressionOperator(A, y, x_name="A", y_name="y")
        if shape is not None and tuple(shape) != reg.shape:
            raise ValueError(f"shape {tuple(shape)} does not match the regression data's shape {reg.shape}")
        return reg, reg._targets
    op = _operator(A, shape, prepare=prepare)
    if y is None and need_y:
        raise ValueError("y is required (a vector of n measurements, or the (n, d_out) targets with inputs A)")
    return op, None if y is None else check_vector(y, "y", op.n)


# --------------------------------------------------------------------------- layers
def pack(layers: Any, name: str = "layers") -> tuple[list[int], np.ndarray]:
    """Validate a list of layers and stack them: returns ``(dims, z)``.

    ``dims = [d_0, d_1, ..., d_L]``; ``z`` stacks ``vec(W_j)`` column-major.
    """
    if isinstance(layers, np.ndarray) and layers.ndim == 2:
        layers = [layers]
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise ValueError(f"{name} must be a non-empty list of 2-D arrays (depth >= 1)")
    mats: list[np.ndarray] = []
    for j, W in enumerate(layers):
        arr = check_matrix(W, f"{name}[{j}]")  # real, 2-D, non-empty, finite
        if j > 0 and arr.shape[1] != mats[-1].shape[0]:
            raise ValueError(f"{name}[{j}] has {arr.shape[1]} columns but {name}[{j - 1}] has {mats[-1].shape[0]} rows")
        mats.append(arr)
    dims = [mats[0].shape[1]] + [W.shape[0] for W in mats]
    z = np.concatenate([W.ravel(order="F") for W in mats])
    return [int(d) for d in dims], z


def unpack(dims: Sequence[int], z: np.ndarray) -> list[np.ndarray]:
    """Inverse of :func:`pack`: the list of layers stacked in ``z``."""
    out, off = [], 0
    for j in range(1, len(dims)):
        size = dims[j] * dims[j - 1]
        out.append(np.array(z[off:off + size]).reshape((dims[j], dims[j - 1]), order="F"))
        off += size
    return out


def product(layers: Sequence[np.ndarray]) -> np.ndarray:
    """End-to-end matrix ``E = W_L...W_1`` (layers checked as in :func:`pack`)."""
    dims, z = pack(layers)
    return _product(unpack(dims, z))


def _product(layers: Sequence[np.ndarray]) -> np.ndarray:
    """``W_L...W_1`` of float64 layers known to chain (no checks: a diverged run's layers may be huge)."""
    E = layers[0]
    for W in layers[1:]:
        E = W @ E
    return E


def _checked(layers: Any, A: Any, y: Any = None, *, prepare: bool = True):
    dims, z = pack(layers)
    try:
        is_pairs = not _is_regression(A, y) and not isinstance(A, SensingOperator) and np.ndim(A) == 2
    except ValueError:  # a ragged nested list: SensingOperator names A
        is_pairs = False
    op, yv = _data(A, y, (dims[-1], dims[0]) if is_pairs else None, prepare=prepare, need_y=False)
    if (dims[-1], dims[0]) != op.shape:
        raise ValueError(f"layers: the product's shape {(dims[-1], dims[0])} must equal the measurement shape "
                         f"{op.shape}")
    return dims, z, op, yv


def loss(layers: Any, A: Any, y: Any) -> float:
    """``Loss = (1/n) sum_i (<A_i, W_L...W_1> - y_i)^2``; regression data (``A = X``, 2-D ``y = Y``, or a
    :class:`RegressionOperator` with ``y=None``): ``(1/n) ||W_L...W_1 X^T - Y^T||_F^2``."""
    dims, z, op, yv = _checked(layers, A, y, prepare=False)
    return finite_result(float(core.factorization_eval(op._core, dims, z, yv)["loss"]), "layers", "loss")


def gradient(layers: Any, A: Any, y: Any) -> list[np.ndarray]:
    """Gradient of :func:`loss` per layer: ``(2/n) S_j^T (sum_i r_i A_i) P_{j-1}^T``."""
    dims, z, op, yv = _checked(layers, A, y, prepare=False)
    return unpack(dims, finite_result(core.factorization_eval(op._core, dims, z, yv)["gradient"], "layers", "gradient"))


def jacobian(layers: Any, A: Any) -> np.ndarray:
    """Per-measurement gradients: ``(n, n_params)``, row i = ``grad f_i`` stacked like :func:`pack`.

    Regression data (a :class:`RegressionOperator`): one row per output and kept row, ``f_{sa} = (E x_s)_a``
    in order ``a + d_out s`` (the kept rows are the samples, or the QR factor's rows when
    ``n > d_in + d_out``: ``J^T J`` is the data's either way)."""
    dims, z, op, _ = _checked(layers, A, prepare=False)
    return finite_result(np.asarray(core.factorization_jacobian(op._core, dims, z)), "layers", "Jacobian")


def balanced_factorization(M: Any, depth: int, width: int | None = None) -> list[np.ndarray]:
    """A balanced factorization ``M = W_L...W_1`` (``W_{j+1}^T W_{j+1} = W_j W_j^T``).

    With ``M = U diag(s) V^T`` (rank r, ``width >= r``, default ``min(M.shape)``):
    ``W_1 = [diag(s^(1/L)) V^T; 0]``, ``W_j = diag(s^(1/L), 0)``,
    ``W_L = [U diag(s^(1/L)), 0]``.
    """
    M = check_matrix(M, "M")
    L = check_positive_int(depth, "depth")
    d_out, d_in = M.shape
    U, s, Vt = np.linalg.svd(M, full_matrices=False)
    w = min(d_out, d_in) if width is None else check_positive_int(width, "width")
    r = int(np.sum(s > s[0] * 1e-14)) if s[0] > 0 else 0
    if w < r:
        raise ValueError(f"width must be >= rank(M) = {r}, got {w}")
    root = s[:r] ** (1.0 / L)
    if L == 1:
        return [M.copy()]
    W1 = np.zeros((w, d_in))
    W1[:r] = root[:, None] * Vt[:r]
    WL = np.zeros((d_out, w))
    WL[:, :r] = U[:, :r] * root[None, :]
    mids = []
    for _ in range(L - 2):
        Wm = np.zeros((w, w))
        Wm[np.arange(r), np.arange(r)] = root
        mids.append(Wm)
    return [W1] + mids + [WL]


def initial_layers(shape: Sequence[int], depth: int, width: int | None = None, init_scale: float = 0.1,
                init: str = "gaussian", seed: int | None = 0) -> list[np.ndarray]:
    """Initial layers for ``E`` of ``shape = (d_out, d_in)``, hidden widths ``width``.

    ``"gaussian"``: ``W_j = init_scale * G_j / sqrt(d_{j-1})``, ``G_j`` i.i.d.
    N(0, 1) (``init_scale = 1`` is the usual fan-in scaling, "large"; small
    ``init_scale`` gives ``E ~ init_scale^L``). ``"balanced"``:
    ``W_j = init_scale * O_j O_{j-1}^T`` with ``O_j`` random ``d_j x m``
    matrices with orthonormal columns (``m = min`` of all widths), so every
    ``W_j`` has ``m`` singular values ``init_scale`` and
    ``W_{j+1}^T W_{j+1} = W_j W_j^T`` (``O_j`` the Q factor of a Gaussian matrix with the signs fixed
    so that ``diag(R) > 0``). The compiled core draws them from ``seed`` (a counter-based generator, the
    same draw ``fit`` and ``fit_many`` make for a run with this seed; ``seed=None``: a fresh seed).
    """
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a pair (d_out, d_in), got {shape!r}")
    d_out, d_in = check_positive_int(shape[0], "shape"), check_positive_int(shape[1], "shape")
    L = check_positive_int(depth, "depth")
    w = max(d_out, d_in) if width is None else check_positive_int(width, "width")
    a = check_positive(init_scale, "init_scale")
    check_choice(init, "init", _INITS)
    sd = check_seed(seed)
    if sd is None:  # fresh randomness
        sd = int(np.random.default_rng().integers(2**63))
    dims = [d_in] + [w] * (L - 1) + [d_out]
    return unpack(dims, core.factorization_initial_layers(dims, a, _batch.enum(core.FactorizationInit, init), sd))


# --------------------------------------------------------------------------- training
@dataclass(repr=False)
class FactorizationResult(RunResult):
    """Outcome of one training run (the fields of :class:`~implicitbias._batch.RunResult` and these).

    Attributes
    ----------
    loss : float
        Final ``(1/n) sum_i (<A_i, E> - y_i)^2`` (clean labels).
    layers : list of ndarray
        Final ``W_1 .. W_L`` (the last finite state if the run diverged).
    product : ndarray (d_out, d_in)
        ``E = W_L ... W_1``.
    trace, nuclear_norm, effective_rank : float
        At the end: exact ``tr Hess Loss`` (docs/science.md, section 3.2),
        ``||E||_*`` and ``exp(entropy(sigma / sum sigma))`` of the singular
        values of E.
    error : float or None
        ``||E - M*||_F / ||M*||_F`` when ``M_star`` was given.
    strength : float
        The run's initial regularizer strength (``trace_weight``,
        ``label_noise_std`` or ``sam_radius`` by method; 0 otherwise).
    history : dict of ndarrays
        ``t`` (steps * lr, or flow time), ``loss``, ``n_grad_evals``,
        ``wall_time``, ``trace``, ``nuclear_norm``, ``effective_rank``,
        ``error`` when ``M_star`` was given, and ``sharpness``,
        ``sharpness_residual``, ``sharpness_matvecs`` with ``record_sharpness``.
    """

    loss: float
    layers: list
    product: np.ndarray
    trace: float
    nuclear_norm: float
    effective_rank: float
    error: float | None
    method: str
    depth: int
    width: int
    init_scale: float
    init: str
    lr: float | None
    strength: float
    seed: int

    def to_row(self) -> dict[str, Any]:
        """:meth:`RunResult.to_row` and the settings (``method``, ``depth``, ``width``,
        ``init_scale``, ``init``, ``lr``: NaN for a flow, ``strength``, ``seed``) and ``loss``,
        ``trace``, ``nuclear_norm``, ``effective_rank`` and ``error`` (NaN without ``M_star``)."""
        nan = float("nan")
        return {**super().to_row(), "method": self.method, "depth": self.depth, "width": self.width,
                "init_scale": self.init_scale, "init": self.init, "lr": nan if self.lr is None else self.lr,
                "strength": self.strength, "seed": self.seed, "loss": self.loss, "trace": self.trace,
                "nuclear_norm": self.nuclear_norm, "effective_rank": self.effective_rank,
                "error": nan if self.error is None else self.error}


_SHARPNESS_TOL = 1e-8  # relative residual of the recorded sharpness (record_sharpness)
_STRENGTH = {"trace_penalty": "trace_weight", "label_noise_sgd": "label_noise_std", "sam": "sam_radius"}


def fit(
    A: Any,
    y: Any,
    *,
    depth: int = 3,
    width: int | None = None,
    init_scale: float = 0.1,
    init: str = "gaussian",
    method: str = "descent",
    lr: float | None = None,
    steps: int = 10_000,
    trace_weight: float = 0.0,
    label_noise_std: float = 0.0,
    sam_radius: float = 0.0,
    anneal_frac: float = 0.8,
    final_ratio: float = 1e-3,
    shape: tuple[int, int] | None = None,
    M_star: Any = None,
    init_layers: Sequence[np.ndarray] | None = None,
    seed: int | None = 0,
    target_loss: float | None = None,
    t_max: float = 1e4,
    rtol: float = 1e-7,
    max_steps: int = 1_000_000,
    record_every: int | None = None,
    n_record: int = 100,
    num_threads: int | None = None,
    block_size: int = 1,
    record_sharpness: bool = False,
) -> FactorizationResult:
    """Train one deep linear network ``E = W_L...W_1`` on ``y_i ~ <A_i, E>``.

    Parameters
    ----------
    A : float array (n, d_out, d_in), int array (n, 2) of index pairs, or a
        :class:`SensingOperator`; ``y`` : array (n,). Regression data: ``A`` the
        inputs X (n, d_in) and ``y`` the targets Y (n, d_out), or ``A`` a
        :class:`RegressionOperator` and ``y=None`` (module docstring).
    depth : int >= 1
        L, the number of layers.
    width : int, optional
        Hidden widths ``d_1 = ... = d_{L-1}`` (default ``max(d_out, d_in)``).
    init_scale, init : float > 0, "gaussian" or "balanced"
        See :func:`initial_layers`; ``seed`` draws the initialization (and the
        label noise). ``init_layers`` (list of arrays) overrides all three.
    method : "descent", "flow", "trace_penalty", "label_noise_sgd", "sam"
        See the module docstring and docs/science.md, section 3.6.
    lr : float > 0
        Step size (every method but "flow"). Required.
    steps : int
        Number of steps (fixed-step methods).
    trace_weight, label_noise_std, sam_radius : float >= 0
        Initial strengths of the trace penalty, of the label noise (standard
        deviation, in units of y) and of the SAM radius (in parameter norm);
        annealed as in the module docstring by ``anneal_frac`` in [0, 1] and
        ``final_ratio`` in (0, 1].
    shape : (d_out, d_in)
        Required with index pairs (matrix completion).
    M_star : array (d_out, d_in), optional
        Ground truth; records ``history["error"]`` and ``result.error``.
    target_loss : float >= 0, optional
        Stop as converged when the loss is <= target_loss (default: never for
        the fixed-step methods; ``1e-12 * mean(y^2)`` for the flow, ``1e-12 ||Y||_F^2 / n``
        with regression data).
    t_max, rtol, max_steps : flow only (time horizon, relative tolerance,
        step attempts).
    record_every : int, optional
        Record the history every k steps (default ``max(1, steps // n_record)``).
    num_threads : int, optional
        OpenMP threads (results do not depend on it).
    record_sharpness : bool
        Also record, at every record point, the sharpness: the top eigenvalue
        of the Hessian of the data loss ``(1/n) sum_i (<A_i, E> - y_i)^2``
        (clean labels, no trace penalty, no SAM perturbation, whatever the
        method: the quantity compared with ``2 / lr``), by Lanczos on the exact
        Hessian-vector product in C++, warm-started from the previous record
        point's top eigenvector, to the relative residual ``1e-8``. Adds the
        history channels ``sharpness``, ``sharpness_residual`` (``||H v - s v||``,
        a bound on the error of ``sharpness``) and ``sharpness_matvecs`` (the
        products used at that point); NaN where the state is not finite. See
        docs/science.md, section 3.9 ("Sharpness during training").

    Returns
    -------
    FactorizationResult
    """
    return FAMILY.run_one(locals())


def fit_many(
    A: Any,
    y: Any,
    *,
    depth: int | Sequence[int] = 3,
    width: int | Sequence[int | None] | None = None,
    init_scale: float | Sequence[float] = 0.1,
    init: str | Sequence[str] = "gaussian",
    method: str | Sequence[str] = "descent",
    lr: float | Sequence[float | None] | None = None,
    steps: int = 10_000,
    trace_weight: float | Sequence[float] = 0.0,
    label_noise_std: float | Sequence[float] = 0.0,
    sam_radius: float | Sequence[float] = 0.0,
    anneal_frac: float = 0.8,
    final_ratio: float = 1e-3,
    shape: tuple[int, int] | None = None,
    M_star: Any = None,
    init_layers: Sequence[Sequence[np.ndarray]] | None = None,
    seed: int | Sequence[int | None] | None = 0,
    target_loss: float | None = None,
    t_max: float = 1e4,
    rtol: float = 1e-7,
    max_steps: int = 1_000_000,
    record_every: int | None = None,
    n_record: int = 100,
    num_threads: int | None = None,
    block_size: int = 1,
    record_sharpness: bool = False,
) -> list[FactorizationResult]:
    """Many runs on one problem in one C++ call, spread over OpenMP threads.

    ``depth``, ``width``, ``init_scale``, ``init``, ``method``, ``lr``,
    ``trace_weight``, ``label_noise_std``, ``sam_radius``, ``seed`` and
    ``init_layers`` (a list of layer lists) may be scalars or lists; lists
    broadcast (equal length K, or length 1) and run k takes the k-th entry of
    each. Runs sharing a method and layer shapes advance ``block_size`` at a
    time; the results are bitwise the same for any ``num_threads``. Other
    parameters: :func:`fit`.
    """
    return FAMILY.run(locals())


@dataclass(slots=True)
class _Batch:
    options: Any
    flow_problem: int  # the problem index of the flows (their default target differs: see batch())
    settings: list = field(default_factory=list)  # each run's checked settings (_run), filled by core_runs


class _Adapter(Adapter):
    """factorization_batch: FactorizationProblem (the target on the problem), FactorizationRun,
    FactorizationBatchOptions."""

    def problems(self, args: dict[str, Any]) -> Problems:
        op, yv = _data(args["A"], args["y"], args["shape"])
        problem = core.FactorizationProblem(op._core)
        problem.y = yv
        if args["M_star"] is not None:
            Ms = check_matrix(args["M_star"], "M_star")
            if Ms.shape != op.shape:
                raise ValueError(f"M_star must have shape {op.shape}, got {Ms.shape}")
            problem.M_star = Ms
        return Problems([problem], [(op, yv)], [0])

    def batch(self, opts: dict[str, Any], runs: dict[str, list], problems: Problems) -> _Batch:
        # the target lives on the core's problem: the flows' default (1e-12 mean(y^2)) and the fixed-step
        # methods' (never stop early) differ, so a batch mixing them gives its flows a problem of their own
        problem, yv = problems.core[0], problems.data[0][1]
        flows = [m == "flow" for m in runs["method"]]
        flow_problem = 0
        if opts["target_loss"] is None:
            problem.tol = -1.0
            if any(flows):
                if not all(flows):
                    problems.core.append(core.FactorizationProblem(problems.data[0][0]._core))
                    problems.core[1].y, problems.core[1].M_star = problem.y, problem.M_star
                    flow_problem = 1
                zero = problems.data[0][0].zero_loss if isinstance(problems.data[0][0], RegressionOperator) \
                    else float(np.mean(yv**2))
                problems.core[flow_problem].tol = 1e-12 * zero
        else:
            problem.tol = opts["target_loss"]
        options = _options(opts["steps"], opts["anneal_frac"], opts["final_ratio"], opts["t_max"], opts["rtol"],
                           opts["max_steps"], opts["record_every"], opts["n_record"], opts["block_size"],
                           opts["num_threads"], any(flows), opts["record_sharpness"])
        return _Batch(options, flow_problem)

    def core_runs(self, K: int, runs: dict[str, list], problems: Problems, batch: _Batch) -> Any:
        # the core's FactorizationRuns: one column per per-run setting; the core draws the initial layers
        # of the runs without init_layers (and groups the runs into blocks)
        batch.settings = [_run(k, runs, problems.data[0][0].shape) for k in range(K)]
        cols = core.FactorizationRuns()
        cols.problem = np.array([batch.flow_problem if r["method"] == "flow" else 0 for r in batch.settings],
                                dtype=np.int32)
        cols.method = np.array([_METHOD_CODES[r["method"]] for r in batch.settings], dtype=np.int32)
        cols.depth = np.array([r["depth"] for r in batch.settings], dtype=np.int32)
        cols.width = np.array([r["width"] for r in batch.settings], dtype=np.int32)
        cols.init = np.array([_INIT_CODES.get(r["init"], 0) for r in batch.settings], dtype=np.int32)
        cols.init_scale = np.array([r["init_scale"] for r in batch.settings], dtype=np.float64)
        cols.lr = np.array([r["lr"] or 0.0 for r in batch.settings], dtype=np.float64)
        cols.strength = np.array([r["strength"] for r in batch.settings], dtype=np.float64)
        cols.seed = np.array([r["seed"] for r in batch.settings], dtype=np.uint64)
        cols.given = {k: (r["dims"], r["z0"]) for k, r in enumerate(batch.settings) if r["z0"] is not None}
        return cols

    def call(self, problems: Problems, core_runs: Any, batch: _Batch) -> Any:
        return core.factorization_batch(problems.core, core_runs, batch.options)

    def decode(self, records: _batch.Decoded, runs: dict[str, list], problems: Problems,
               batch: _Batch) -> list[FactorizationResult]:
        settings = batch.settings
        has_target = [problems.core[batch.flow_problem if r["method"] == "flow" else 0].tol >= 0 for r in settings]
        base = records.base(has_target, [r["method"] != "flow" for r in settings])
        losses = records.loss_final
        finals = {name: records.records.last(name).tolist() for name in ("trace", "nuclear_norm", "effective_rank")}
        error = records.records.last("error").tolist()
        has_error = records.records.has_channel("error").tolist()
        out = []
        for k, r in enumerate(settings):
            layers = unpack(r["dims"], records.state(k))
            out.append(FactorizationResult(
                **base[k], loss=losses[k], layers=layers, product=_product(layers), trace=finals["trace"][k],
                nuclear_norm=finals["nuclear_norm"][k], effective_rank=finals["effective_rank"][k],
                error=error[k] if has_error[k] else None, method=r["method"], depth=r["depth"], width=r["width"],
                init_scale=r["init_scale"], init=r["init"], lr=r["lr"], strength=r["strength"], seed=r["seed"]))
        return out


_METHOD_CODES = {n: int(v) for n, v in core.FactorizationMethod.__members__.items()}
_INIT_CODES = {n: int(v) for n, v in core.FactorizationInit.__members__.items()}


@_batch.memoized
def _options(steps: int, anneal_frac: float, final_ratio: float, t_max: float, rtol: float, max_steps: int,
             record_every: int | None, n_record: int, block_size: int, num_threads: int, any_flow: bool,
             record_sharpness: bool) -> Any:
    """The core options shared by a batch, from the checked batch-wide arguments."""
    return _batch.make(
        core.FactorizationBatchOptions,
        fixed=_batch.make(core.FixedStepOptions, steps=steps,
                          record_every=_batch.record_every_steps(record_every, steps, n_record)),
        adaptive=_batch.adaptive_options(rtol=rtol, atol=0.0, t_max=t_max, max_steps=max_steps,
                                         record_times=_batch.record_times(None, t_max, n_record) if any_flow else []),
        schedule=_batch.make(core.StrengthSchedule, anneal_steps=round(anneal_frac * steps), final_ratio=final_ratio),
        sharpness=_batch.make(core.SharpnessOptions, record=record_sharpness, tol=_SHARPNESS_TOL),
        block_size=block_size, num_threads=num_threads)


def _layer_list(value: Any, name: str) -> Any:
    """One run's initial layers: None or a list of 2-D arrays (checked by :func:`pack`)."""
    if value is not None and not (isinstance(value, (list, tuple)) and value):
        raise ValueError(f"{name} must be a list of layers (fit) or a list of layer lists, one per run (fit_many)")
    return value


def _fraction(value: Any, name: str) -> float:
    """A real in [0, 1]."""
    v = float(value) if _batch.is_real(value) else float("nan")
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _ratio(value: Any, name: str) -> float:
    """A real in (0, 1]."""
    v = check_positive(value, name)
    if v > 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return v


def _run(k: int, runs: dict[str, list], shape: tuple[int, int]) -> dict[str, Any]:
    """Run k's checked settings and initial layers."""
    meth = runs["method"][k]
    sd = runs["seed"][k]  # checked by its Param
    sd = 0 if sd is None else sd
    strength = runs[_STRENGTH[meth]][k] if meth in _STRENGTH else 0.0
    if meth == "flow":
        lr_k = None
    elif runs["lr"][k] is None:
        raise ValueError(f"lr is required for method={meth!r}")
    else:
        lr_k = runs["lr"][k]
    il = runs["init_layers"][k]
    if il is not None:
        dims, z0 = pack(il, "init_layers")
        if (dims[-1], dims[0]) != shape:
            raise ValueError(f"init_layers: the product's shape must be {shape}")
        L, w, a, ini = len(dims) - 1, (dims[1] if len(dims) > 2 else 0), float("nan"), "given"
    else:
        L = check_positive_int(runs["depth"][k], "depth")
        w = runs["width"][k]
        w = max(shape) if w is None else check_positive_int(w, "width")
        a = check_positive(runs["init_scale"][k], "init_scale")
        ini = str(check_choice(runs["init"][k], "init", _INITS))
        dims, z0 = [shape[1]] + [w] * (L - 1) + [shape[0]], None  # drawn by the core from the seed
    return dict(method=meth, seed=sd, strength=strength, lr=lr_k, dims=dims, z0=z0, depth=L, width=w,
                init_scale=a, init=ini)


_B = _batch
FAMILY = Family.declare("factorization", fit, fit_many, ("A", "y", "shape", "M_star"), [
    param("depth", None, int, per_run=True),  # checked per run (with init_layers, which overrides it)
    param("width", None, int, type(None), per_run=True),
    param("init_scale", None, float, per_run=True),
    choice_param("init", _INITS, per_run=True),
    choice_param("method", _METHODS, per_run=True),
    param("lr", _B.optional_positive, float, type(None), per_run=True),
    param("steps", _B.integer(0), int),
    param("trace_weight", _B.nonnegative, float, per_run=True),
    param("label_noise_std", _B.nonnegative, float, per_run=True),
    param("sam_radius", _B.nonnegative, float, per_run=True),
    param("anneal_frac", _fraction, float),
    param("final_ratio", _ratio, float),
    param("init_layers", _layer_list, list, type(None), per_run=True, vector=True),
    param("seed", lambda v, name: check_seed(v), int, type(None), per_run=True),
    param("target_loss", _B.optional(_B.nonnegative), float, type(None)),
    param("t_max", _B.positive, float),
    param("rtol", _B.below_one, float),
    param("max_steps", _B.integer(1), int),
    param("record_every", _B.optional(_B.integer(1)), int, type(None)),
    param("n_record", _B.integer(1), int),
    param("num_threads", _B.num_threads, int, type(None)),
    param("block_size", _B.integer(1), int),
    param("record_sharpness", _B.boolean, bool),
], _Adapter())
"""The factorization family's declaration (:class:`implicitbias._family.Family`)."""
