# Type stubs of the compiled core (the same API in every ISA variant), generated with
# pybind11-stubgen from the built module: tools/make_stubs.sh
"""
implicitbias compiled core (Eigen kernels, OpenMP batches).
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['AdaptiveOptions', 'AlgorithmSpec', 'ClassificationProblem', 'DiagonalBatchOptions', 'DiagonalRun', 'DiagonalRuns', 'DiagonalStochastic', 'EigenWhich', 'FactorizationBatchOptions', 'FactorizationInit', 'FactorizationMeasurements', 'FactorizationMethod', 'FactorizationProblem', 'FactorizationRun', 'FactorizationRuns', 'FixedStepOptions', 'HomogeneousSpec', 'LossKind', 'Method', 'ModelKind', 'NormKind', 'NormSpec', 'Optimizer', 'Probe', 'RunRecord', 'RunRecords', 'Schedule', 'SensingProblem', 'SharpnessOptions', 'Solver', 'Status', 'SteepestOptions', 'SteepestRun', 'StrengthSchedule', 'SymmetricOperator', 'TraceEstimator', 'WeightNorm', 'callable_estimate', 'callable_operator', 'classification_loss', 'compiler', 'cpu_supports', 'diagonal_batch', 'diagonal_draws', 'diagonal_hessian_dense', 'diagonal_hessian_operator', 'diagonal_sgf_draws', 'eigen_version', 'factorization_batch', 'factorization_estimate', 'factorization_eval', 'factorization_hvp', 'factorization_initial_layers', 'factorization_jacobian', 'factorization_operator', 'factorization_trace', 'factorization_trace_gradient', 'homogeneous_grad_sum', 'homogeneous_outputs', 'isa', 'lanczos_eigen', 'lanczos_quadrature', 'max_threads', 'openmp_enabled', 'openmp_version', 'param_norm', 'simd_instruction_sets', 'steepest_batch', 'steepest_direction']
class Status:
    """
    How a run ended.
    
    Members:
    
      running
    
      converged
    
      max_steps
    
      max_time
    
      diverged
    
      stalled
    """
    __members__: typing.ClassVar[dict[str, Status]]
    converged: typing.ClassVar[Status]
    diverged: typing.ClassVar[Status]
    max_steps: typing.ClassVar[Status]
    max_time: typing.ClassVar[Status]
    running: typing.ClassVar[Status]
    stalled: typing.ClassVar[Status]
    @typing.overload
    def __eq__(self, other: Status) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Status) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class RunRecord:
    """
    Everything one run produced.
    """
    @property
    def history(self) -> dict:
        ...
    @property
    def loss_final(self) -> float:
        ...
    @property
    def n_grad_evals(self) -> int:
        ...
    @property
    def n_jac(self) -> int:
        ...
    @property
    def n_lu(self) -> int:
        ...
    @property
    def n_rejected(self) -> int:
        ...
    @property
    def n_steps(self) -> int:
        ...
    @property
    def state(self) -> numpy.typing.NDArray[numpy.float64]:
        ...
    @property
    def status(self) -> Status:
        ...
    @property
    def t_final(self) -> float:
        ...
    @property
    def wall_time(self) -> float:
        ...
class RunRecords:
    """
    The records of a batch as columns (one array per scalar, the final states stacked).
    """
    def __getitem__(self, k: typing.SupportsInt | typing.SupportsIndex) -> RunRecord:
        """
        Run k's record (a copy).
        """
    def __len__(self) -> int:
        ...
    def columns(self) -> tuple[numpy.typing.NDArray[numpy.int8], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64]]:
        """
        (status codes int8 (K,), counts int64 (K, 5): n_steps, n_rejected, n_grad_evals, n_jac, n_lu;
        reals float64 (K, 3): t_final, loss_final, wall_time; offsets int64 (K + 1,); states float64:
        run k's final state is states[offsets[k]:offsets[k + 1]]).
        """
    def has_channel(self, channel: str) -> numpy.typing.NDArray[numpy.bool]:
        """
        Whether each run records this channel.
        """
    def history(self, k: typing.SupportsInt | typing.SupportsIndex) -> dict:
        """
        Run k's recorded channels as a dict of arrays.
        """
    def last(self, channel: str) -> numpy.typing.NDArray[numpy.float64]:
        """
        The last recorded value of a channel in every run (NaN where it is absent).
        """
class FixedStepOptions:
    """
    Options of the fixed-step loop.
    """
    def __init__(self) -> None:
        ...
    @property
    def record_every(self) -> int:
        ...
    @record_every.setter
    def record_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def steps(self) -> int:
        ...
    @steps.setter
    def steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def tol(self) -> float:
        ...
    @tol.setter
    def tol(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class AdaptiveOptions:
    """
    Options of the adaptive flow integrators.
    """
    def __init__(self) -> None:
        ...
    @property
    def atol(self) -> float:
        ...
    @atol.setter
    def atol(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def h0(self) -> float:
        ...
    @h0.setter
    def h0(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def jac_every(self) -> int:
        ...
    @jac_every.setter
    def jac_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def max_steps(self) -> int:
        ...
    @max_steps.setter
    def max_steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def record_every(self) -> int:
        ...
    @record_every.setter
    def record_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def record_times(self) -> list[float]:
        ...
    @record_times.setter
    def record_times(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None:
        ...
    @property
    def rtol(self) -> float:
        ...
    @rtol.setter
    def rtol(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def stall_factor(self) -> float:
        ...
    @stall_factor.setter
    def stall_factor(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def stall_rel_change(self) -> float:
        ...
    @stall_rel_change.setter
    def stall_rel_change(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def stall_steps(self) -> int:
        ...
    @stall_steps.setter
    def stall_steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def t_max(self) -> float:
        ...
    @t_max.setter
    def t_max(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def tol(self) -> float:
        ...
    @tol.setter
    def tol(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class ModelKind:
    """
    Homogeneous model (relu2 is the mlp of depth 2).
    
    Members:
    
      linear
    
      diagonal
    
      mlp
    """
    __members__: typing.ClassVar[dict[str, ModelKind]]
    diagonal: typing.ClassVar[ModelKind]
    linear: typing.ClassVar[ModelKind]
    mlp: typing.ClassVar[ModelKind]
    @typing.overload
    def __eq__(self, other: ModelKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: ModelKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class LossKind:
    """
    Classification loss.
    
    Members:
    
      exp
    
      logistic
    """
    __members__: typing.ClassVar[dict[str, LossKind]]
    exp: typing.ClassVar[LossKind]
    logistic: typing.ClassVar[LossKind]
    @typing.overload
    def __eq__(self, other: LossKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: LossKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class NormKind:
    """
    Geometry of steepest descent.
    
    Members:
    
      l2
    
      linf
    
      l1
    
      lp
    
      spectral
    """
    __members__: typing.ClassVar[dict[str, NormKind]]
    l1: typing.ClassVar[NormKind]
    l2: typing.ClassVar[NormKind]
    linf: typing.ClassVar[NormKind]
    lp: typing.ClassVar[NormKind]
    spectral: typing.ClassVar[NormKind]
    @typing.overload
    def __eq__(self, other: NormKind) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: NormKind) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Optimizer:
    """
    Members:
    
      steepest
    
      signum
    
      adam
    """
    __members__: typing.ClassVar[dict[str, Optimizer]]
    adam: typing.ClassVar[Optimizer]
    signum: typing.ClassVar[Optimizer]
    steepest: typing.ClassVar[Optimizer]
    @typing.overload
    def __eq__(self, other: Optimizer) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Optimizer) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Schedule:
    """
    Members:
    
      constant
    
      power
    
      loss
    """
    __members__: typing.ClassVar[dict[str, Schedule]]
    constant: typing.ClassVar[Schedule]
    loss: typing.ClassVar[Schedule]
    power: typing.ClassVar[Schedule]
    @typing.overload
    def __eq__(self, other: Schedule) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Schedule) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class ClassificationProblem:
    """
    X (n x d) and labels y in {-1, +1}.
    """
    def __init__(self, X: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
class HomogeneousSpec:
    kind: ModelKind
    def __init__(self) -> None:
        ...
    @property
    def depth(self) -> int:
        ...
    @depth.setter
    def depth(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def width(self) -> int:
        ...
    @width.setter
    def width(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class NormSpec:
    kind: NormKind
    def __init__(self) -> None:
        ...
    @property
    def p(self) -> float:
        ...
    @p.setter
    def p(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class AlgorithmSpec:
    norm: NormSpec
    normalized: bool
    optimizer: Optimizer
    schedule: Schedule
    def __init__(self) -> None:
        ...
    @property
    def beta1(self) -> float:
        ...
    @beta1.setter
    def beta1(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def beta2(self) -> float:
        ...
    @beta2.setter
    def beta2(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def decay_k0(self) -> float:
        ...
    @decay_k0.setter
    def decay_k0(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def decay_power(self) -> float:
        ...
    @decay_power.setter
    def decay_power(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def eps(self) -> float:
        ...
    @eps.setter
    def eps(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr_backoff(self) -> float:
        ...
    @lr_backoff.setter
    def lr_backoff(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr_growth(self) -> float:
        ...
    @lr_growth.setter
    def lr_growth(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class SteepestRun:
    """
    One run of a steepest-descent batch.
    """
    algorithm: AlgorithmSpec
    flow: bool
    loss: LossKind
    model: HomogeneousSpec
    @typing.overload
    def __init__(self) -> None:
        ...
    @typing.overload
    def __init__(self, *, problem: typing.SupportsInt | typing.SupportsIndex, model: HomogeneousSpec, loss: LossKind, algorithm: AlgorithmSpec, theta0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], flow: bool) -> None:
        ...
    @property
    def problem(self) -> int:
        ...
    @problem.setter
    def problem(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def theta0(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @theta0.setter
    def theta0(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
class SteepestOptions:
    """
    Options shared by a steepest batch.
    """
    adaptive: AdaptiveOptions
    def __init__(self) -> None:
        ...
    @property
    def record_every(self) -> int:
        ...
    @record_every.setter
    def record_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def record_steps(self) -> list[int]:
        ...
    @record_steps.setter
    def record_steps(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        ...
    @property
    def steps(self) -> int:
        ...
    @steps.setter
    def steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def target_log_loss(self) -> float:
        ...
    @target_log_loss.setter
    def target_log_loss(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class FactorizationMethod:
    """
    Training method of a deep linear network.
    
    Members:
    
      descent
    
      flow
    
      trace_penalty
    
      label_noise_sgd
    
      sam
    """
    __members__: typing.ClassVar[dict[str, FactorizationMethod]]
    descent: typing.ClassVar[FactorizationMethod]
    flow: typing.ClassVar[FactorizationMethod]
    label_noise_sgd: typing.ClassVar[FactorizationMethod]
    sam: typing.ClassVar[FactorizationMethod]
    trace_penalty: typing.ClassVar[FactorizationMethod]
    @typing.overload
    def __eq__(self, other: FactorizationMethod) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: FactorizationMethod) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class FactorizationInit:
    """
    How the initial layers are drawn.
    
    Members:
    
      gaussian
    
      balanced
    """
    __members__: typing.ClassVar[dict[str, FactorizationInit]]
    balanced: typing.ClassVar[FactorizationInit]
    gaussian: typing.ClassVar[FactorizationInit]
    @typing.overload
    def __eq__(self, other: FactorizationInit) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: FactorizationInit) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Probe:
    """
    Random probe vectors of the trace estimators.
    
    Members:
    
      rademacher
    
      gaussian
    """
    __members__: typing.ClassVar[dict[str, Probe]]
    gaussian: typing.ClassVar[Probe]
    rademacher: typing.ClassVar[Probe]
    @typing.overload
    def __eq__(self, other: Probe) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Probe) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class TraceEstimator:
    """
    Members:
    
      hutchinson
    
      hutchpp
    
      xtrace
    """
    __members__: typing.ClassVar[dict[str, TraceEstimator]]
    hutchinson: typing.ClassVar[TraceEstimator]
    hutchpp: typing.ClassVar[TraceEstimator]
    xtrace: typing.ClassVar[TraceEstimator]
    @typing.overload
    def __eq__(self, other: TraceEstimator) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: TraceEstimator) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class FactorizationMeasurements:
    """
    A measurement operator f_i = <A_i, E>: dense sensing matrices, entry sampling or regression data.
    """
    @staticmethod
    def completion(d_out: typing.SupportsInt | typing.SupportsIndex, d_in: typing.SupportsInt | typing.SupportsIndex, rows: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], cols: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> FactorizationMeasurements:
        """
        Entry sampling (matrix completion) A_i = e_{rows[i]} e_{cols[i]}^T.
        """
    @staticmethod
    def gaussian(d_out: typing.SupportsInt | typing.SupportsIndex, d_in: typing.SupportsInt | typing.SupportsIndex, A_stack: typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]", "flags.c_contiguous"], prepare: bool = True) -> FactorizationMeasurements:
        """
        Dense sensing; A_stack is the C-ordered (n, d_out, d_in) array reshaped to (n*d_out, d_in).
        prepare: form sum_i A_i (x) A_i when small (pays off over many trace evaluations).
        """
    @staticmethod
    def regression(X: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], Y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"]) -> FactorizationMeasurements:
        """
        Regression data: inputs X (n, d_in), targets Y (n, d_out); loss (1/n) ||E X^T - Y^T||_F^2.
        Kept as a QR factor of [X Y] when n > d_in + d_out; the targets in residual space are
        `targets`.
        """
    @property
    def d_in(self) -> int:
        ...
    @property
    def d_out(self) -> int:
        ...
    @property
    def gram(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]"]:
        ...
    @property
    def kind(self) -> str:
        ...
    @property
    def n(self) -> int:
        ...
    @property
    def n_residuals(self) -> int:
        ...
    @property
    def targets(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @property
    def uses_kronecker(self) -> bool:
        ...
class FactorizationProblem:
    """
    Measurements, labels y, optional M_star and the loss at which runs stop.
    """
    def __init__(self, meas: FactorizationMeasurements) -> None:
        ...
    @property
    def M_star(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]"]:
        ...
    @M_star.setter
    def M_star(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"]) -> None:
        ...
    @property
    def tol(self) -> float:
        ...
    @tol.setter
    def tol(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def y(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @y.setter
    def y(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
class FactorizationRun:
    """
    One run of a factorization batch.
    """
    init: FactorizationInit
    method: FactorizationMethod
    @typing.overload
    def __init__(self) -> None:
        ...
    @typing.overload
    def __init__(self, *, problem: typing.SupportsInt | typing.SupportsIndex, method: FactorizationMethod, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], lr: typing.SupportsFloat | typing.SupportsIndex, strength: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def dims(self) -> list[int]:
        ...
    @dims.setter
    def dims(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        ...
    @property
    def init_scale(self) -> float:
        ...
    @init_scale.setter
    def init_scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def problem(self) -> int:
        ...
    @problem.setter
    def problem(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def seed(self) -> int:
        ...
    @seed.setter
    def seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def strength(self) -> float:
        ...
    @strength.setter
    def strength(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def z0(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @z0.setter
    def z0(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
class FactorizationRuns:
    """
    The runs of a factorization batch as columns, one entry per run.
    """
    def __init__(self) -> None:
        ...
    @property
    def depth(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @depth.setter
    def depth(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
    @property
    def given(self) -> dict[int, tuple[list[int], typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]]]:
        ...
    @given.setter
    def given(self, arg0: collections.abc.Mapping[typing.SupportsInt | typing.SupportsIndex, tuple[collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]]]) -> None:
        ...
    @property
    def init(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @init.setter
    def init(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
    @property
    def init_scale(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @init_scale.setter
    def init_scale(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def lr(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @lr.setter
    def lr(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def method(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @method.setter
    def method(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
    @property
    def problem(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @problem.setter
    def problem(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
    @property
    def seed(self) -> typing.Annotated[numpy.typing.NDArray[numpy.uint64], "[m, 1]"]:
        ...
    @seed.setter
    def seed(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.uint64, "[m, 1]"]) -> None:
        ...
    @property
    def strength(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @strength.setter
    def strength(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def width(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @width.setter
    def width(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
class StrengthSchedule:
    """
    Annealing of the regularizer strength.
    """
    def __init__(self) -> None:
        ...
    @property
    def anneal_steps(self) -> int:
        ...
    @anneal_steps.setter
    def anneal_steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def final_ratio(self) -> float:
        ...
    @final_ratio.setter
    def final_ratio(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class SharpnessOptions:
    """
    Sharpness (top Hessian eigenvalue) recorded at each record point.
    """
    record: bool
    def __init__(self) -> None:
        ...
    @property
    def max_matvecs(self) -> int:
        ...
    @max_matvecs.setter
    def max_matvecs(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def tol(self) -> float:
        ...
    @tol.setter
    def tol(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class FactorizationBatchOptions:
    adaptive: AdaptiveOptions
    fixed: FixedStepOptions
    schedule: StrengthSchedule
    sharpness: SharpnessOptions
    def __init__(self) -> None:
        ...
    @property
    def block_size(self) -> int:
        ...
    @block_size.setter
    def block_size(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @num_threads.setter
    def num_threads(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class WeightNorm:
    """
    Polar coordinates of the diagonal network.
    
    Members:
    
      none
    
      joint
    
      separate
    """
    __members__: typing.ClassVar[dict[str, WeightNorm]]
    joint: typing.ClassVar[WeightNorm]
    none: typing.ClassVar[WeightNorm]
    separate: typing.ClassVar[WeightNorm]
    @typing.overload
    def __eq__(self, other: WeightNorm) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: WeightNorm) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Method:
    """
    Fixed-step descent, the gradient flow, or stochastic / accelerated descent.
    
    Members:
    
      descent
    
      flow
    
      sgd
    
      label_noise_sgd
    
      sam
    
      sgf
    """
    __members__: typing.ClassVar[dict[str, Method]]
    descent: typing.ClassVar[Method]
    flow: typing.ClassVar[Method]
    label_noise_sgd: typing.ClassVar[Method]
    sam: typing.ClassVar[Method]
    sgd: typing.ClassVar[Method]
    sgf: typing.ClassVar[Method]
    @typing.overload
    def __eq__(self, other: Method) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Method) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class Solver:
    """
    The flow's integrator.
    
    Members:
    
      rosw
    
      dopri5
    
      rodas5
    
      bdf
    
      automatic
    """
    __members__: typing.ClassVar[dict[str, Solver]]
    automatic: typing.ClassVar[Solver]
    bdf: typing.ClassVar[Solver]
    dopri5: typing.ClassVar[Solver]
    rodas5: typing.ClassVar[Solver]
    rosw: typing.ClassVar[Solver]
    @typing.overload
    def __eq__(self, other: Solver) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: Solver) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class SensingProblem:
    """
    A (M x N), y (M), optional x_star (N) and the loss at which runs stop (tol < 0: never).
    """
    @typing.overload
    def __init__(self) -> None:
        ...
    @typing.overload
    def __init__(self, *, A: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], x_star: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], tol: typing.SupportsFloat | typing.SupportsIndex = -1.0) -> None:
        ...
    @property
    def A(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]"]:
        ...
    @A.setter
    def A(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"]) -> None:
        ...
    @property
    def tol(self) -> float:
        ...
    @tol.setter
    def tol(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def x_star(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @x_star.setter
    def x_star(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def y(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @y.setter
    def y(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
class DiagonalStochastic:
    """
    Settings of a stochastic / accelerated descent run (diagonal_sgd.hpp).
    """
    epochs: bool
    nesterov: bool
    sam_per_example: bool
    schedule: Schedule
    def __init__(self) -> None:
        ...
    @property
    def batch_size(self) -> int:
        ...
    @batch_size.setter
    def batch_size(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def decay_k0(self) -> float:
        ...
    @decay_k0.setter
    def decay_k0(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def decay_power(self) -> float:
        ...
    @decay_power.setter
    def decay_power(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def momentum(self) -> float:
        ...
    @momentum.setter
    def momentum(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def sde_step(self) -> float:
        ...
    @sde_step.setter
    def sde_step(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def seed(self) -> int:
        ...
    @seed.setter
    def seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def strength(self) -> float:
        ...
    @strength.setter
    def strength(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def warmup_steps(self) -> int:
        ...
    @warmup_steps.setter
    def warmup_steps(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class DiagonalRun:
    """
    One run of a diagonal-network batch.
    """
    nonnegative: bool
    stochastic: DiagonalStochastic
    weight_norm: WeightNorm
    @typing.overload
    def __init__(self) -> None:
        ...
    @typing.overload
    def __init__(self, *, problem: typing.SupportsInt | typing.SupportsIndex, depth: typing.SupportsInt | typing.SupportsIndex, nonnegative: bool, weight_norm: WeightNorm, init_scale: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], lr_ratio: typing.SupportsFloat | typing.SupportsIndex, lr: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def depth(self) -> int:
        ...
    @depth.setter
    def depth(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def init_scale(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @init_scale.setter
    def init_scale(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def lr_ratio(self) -> float:
        ...
    @lr_ratio.setter
    def lr_ratio(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def problem(self) -> int:
        ...
    @problem.setter
    def problem(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class DiagonalBatchOptions:
    """
    Options shared by a diagonal batch.
    """
    adaptive: AdaptiveOptions
    fixed: FixedStepOptions
    gd_lanes: bool
    method: Method
    record_state: bool
    sharpness: SharpnessOptions
    solver: Solver
    def __init__(self) -> None:
        ...
    @property
    def block_size(self) -> int:
        ...
    @block_size.setter
    def block_size(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @num_threads.setter
    def num_threads(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class DiagonalRuns:
    """
    The runs of a diagonal batch as columns, one entry per run (see DiagonalRun).
    """
    nonnegative: bool
    @typing.overload
    def __init__(self) -> None:
        ...
    @typing.overload
    def __init__(self, *, problem: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"], depth: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"], weight_norm: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"], nonnegative: bool, init_scale: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], init_vectors: collections.abc.Mapping[typing.SupportsInt | typing.SupportsIndex, typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]], lr_ratio: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], lr: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], stochastic: collections.abc.Sequence[DiagonalStochastic] = []) -> None:
        ...
    @property
    def depth(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @depth.setter
    def depth(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
    @property
    def init_scale(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @init_scale.setter
    def init_scale(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def init_vectors(self) -> dict[int, typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]]:
        ...
    @init_vectors.setter
    def init_vectors(self, arg0: collections.abc.Mapping[typing.SupportsInt | typing.SupportsIndex, typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]]) -> None:
        ...
    @property
    def lr(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @lr.setter
    def lr(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def lr_ratio(self) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
        ...
    @lr_ratio.setter
    def lr_ratio(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> None:
        ...
    @property
    def problem(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @problem.setter
    def problem(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
    @property
    def stochastic(self) -> list[DiagonalStochastic]:
        ...
    @stochastic.setter
    def stochastic(self, arg0: collections.abc.Sequence[DiagonalStochastic]) -> None:
        ...
    @property
    def weight_norm(self) -> typing.Annotated[numpy.typing.NDArray[numpy.int32], "[m, 1]"]:
        ...
    @weight_norm.setter
    def weight_norm(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.int32, "[m, 1]"]) -> None:
        ...
class EigenWhich:
    """
    Which end of the spectrum block Lanczos targets.
    
    Members:
    
      largest
    
      smallest
    
      both
    """
    __members__: typing.ClassVar[dict[str, EigenWhich]]
    both: typing.ClassVar[EigenWhich]
    largest: typing.ClassVar[EigenWhich]
    smallest: typing.ClassVar[EigenWhich]
    @typing.overload
    def __eq__(self, other: EigenWhich) -> bool:
        ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool:
        ...
    def __getstate__(self) -> int:
        ...
    def __hash__(self) -> int:
        ...
    def __index__(self) -> int:
        ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __int__(self) -> int:
        ...
    @typing.overload
    def __ne__(self, other: EigenWhich) -> bool:
        ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool:
        ...
    def __repr__(self) -> str:
        ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def __str__(self) -> str:
        ...
    @property
    def name(self) -> str:
        ...
    @property
    def value(self) -> int:
        ...
class SymmetricOperator:
    """
    A symmetric operator given by its block products (an exact Hessian or a callable).
    """
    def apply(self, V: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"]) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]"]:
        """
        H V for the columns of V (dim x k).
        """
    @property
    def dim(self) -> int:
        ...
    @property
    def kind(self) -> str:
        ...
def _leak_for_tests(bytes: typing.SupportsInt | typing.SupportsIndex) -> bool:
    """
    Allocates `bytes` and never frees them (tests/test_memory.py: its bound catches a C++ leak of this size per call). Not for use.
    """
def callable_estimate(method: TraceEstimator, matvec: collections.abc.Callable, dim: typing.SupportsInt | typing.SupportsIndex, num_matvecs: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, probe: Probe, block: bool) -> tuple:
    """
    Stochastic trace estimate over a Python matvec callable: (estimate, stderr, matvecs).
    """
def callable_operator(matvec: collections.abc.Callable, dim: typing.SupportsInt | typing.SupportsIndex, block: bool) -> SymmetricOperator:
    """
    A Python matvec callable as a SymmetricOperator (calls keep the GIL).
    """
def classification_loss(model: HomogeneousSpec, X: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], theta: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], loss: LossKind) -> tuple[float, typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"], typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]]:
    """
    (log Loss, grad Loss / Loss, q = y * f) in the log domain.
    """
def cpu_supports(feature: str) -> bool:
    """
    Whether this CPU supports 'avx2' (x86-64-v3) or 'avx512' (x86-64-v4).
    """
def diagonal_batch(problems: collections.abc.Sequence[SensingProblem], runs: DiagonalRuns, options: DiagonalBatchOptions) -> typing.Any:
    """
    Run a batch of diagonal-network runs (descent or flow) over OpenMP threads with the GIL
    released; the runs as columns (DiagonalRuns); returns the RunRecords in the order of the runs.
    Low level: use implicitbias.diagonal.fit / fit_many.
    """
def diagonal_draws(seed: typing.SupportsInt | typing.SupportsIndex, step: typing.SupportsInt | typing.SupportsIndex, n_rows: typing.SupportsInt | typing.SupportsIndex, batch_size: typing.SupportsInt | typing.SupportsIndex, epochs: bool) -> tuple:
    """
    The batch indices (int64) and the standard normals of the label noise that a stochastic diagonal run
    with this seed draws at this step (batch_size 0: the full batch, rows in order). Low level: use
    implicitbias.diagonal.batch_draws.
    """
def diagonal_hessian_dense(A: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], u: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], v: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"] | None, depth: typing.SupportsInt | typing.SupportsIndex, nonnegative: bool) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]"]:
    """
    The dense form of diagonal_hessian_operator (small problems).
    """
def diagonal_hessian_operator(A: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], u: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], v: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"] | None, depth: typing.SupportsInt | typing.SupportsIndex, nonnegative: bool) -> SymmetricOperator:
    """
    The exact Hessian of 0.5||A x - y||^2 in the diagonal network's factors (u, v) or u.
    """
def diagonal_sgf_draws(seed: typing.SupportsInt | typing.SupportsIndex, step: typing.SupportsInt | typing.SupportsIndex, n_rows: typing.SupportsInt | typing.SupportsIndex, sde_step: typing.SupportsFloat | typing.SupportsIndex) -> tuple:
    """
    The Brownian increments (n_rows), Levy areas (n_rows x n_rows) and the number of series terms that
    step `step` of a stochastic-gradient-flow run with this seed draws. Low level: use
    implicitbias.diagonal.sgf_draws.
    """
def factorization_batch(problems: collections.abc.Sequence[FactorizationProblem], runs: FactorizationRuns, options: FactorizationBatchOptions) -> typing.Any:
    """
    Run a batch of deep-linear-network trainings over OpenMP threads with the GIL released; the runs
    as columns (FactorizationRuns); returns the RunRecords in the order of the runs.
    Low level: use implicitbias.factorization.fit / fit_many.
    """
def factorization_estimate(method: TraceEstimator, meas: FactorizationMeasurements, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], num_matvecs: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, probe: Probe) -> tuple:
    """
    Stochastic trace estimate (hutchinson, hutchpp, xtrace) over exact HVPs: (estimate, stderr, matvecs).
    """
def factorization_eval(meas: FactorizationMeasurements, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> dict:
    """
    Loss, gradient (stacked like z), exact Hessian trace and residual at z.
    """
def factorization_hvp(meas: FactorizationMeasurements, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], V: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"]) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]"]:
    """
    Exact Hessian-vector products H V (columns of V), residual term included.
    """
def factorization_initial_layers(dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], init_scale: typing.SupportsFloat | typing.SupportsIndex, init: FactorizationInit, seed: typing.SupportsInt | typing.SupportsIndex) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
    """
    The initial layers for widths dims (d_0 .. d_L), stacked like z, drawn from the seed.
    Low level: use implicitbias.factorization.initial_layers.
    """
def factorization_jacobian(meas: FactorizationMeasurements, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, n]"]:
    """
    Per-measurement gradients: row i is grad f_i (stacked like z).
    """
def factorization_operator(meas: FactorizationMeasurements, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], y: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> SymmetricOperator:
    """
    The exact loss Hessian of deep matrix factorization at z as a SymmetricOperator.
    """
def factorization_trace(meas: FactorizationMeasurements, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> float:
    """
    Exact trace of the loss Hessian at z (closed form).
    """
def factorization_trace_gradient(meas: FactorizationMeasurements, dims: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], z: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> tuple[float, typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]]:
    """
    (trace, gradient of the trace with respect to z).
    """
def homogeneous_grad_sum(model: HomogeneousSpec, X: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], theta: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], c: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> tuple[typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"], int]:
    """
    (G, samples_used): G = sum_i c_i grad_theta f(x_i; theta), and the number of samples whose backward pass ran (ReLU nets skip the samples of negligible weight when that provably changes G by at most 2^-53 ||G||).
    """
def homogeneous_outputs(model: HomogeneousSpec, X: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"], theta: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"]) -> typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"]:
    """
    f(x_i; theta) for every row of X.
    """
def lanczos_eigen(op: SymmetricOperator, k: typing.SupportsInt | typing.SupportsIndex, which: EigenWhich, block: typing.SupportsInt | typing.SupportsIndex, tol: typing.SupportsFloat | typing.SupportsIndex, max_matvecs: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, symmetry_tol: typing.SupportsFloat | typing.SupportsIndex, start: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, n]"]) -> dict:
    """
    Block Lanczos with full reorthogonalization: dict of values (ascending), vectors, residuals,
    matvecs, basis, converged, asymmetry.
    """
def lanczos_quadrature(op: SymmetricOperator, num_probes: typing.SupportsInt | typing.SupportsIndex, steps: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, probe: Probe) -> tuple:
    """
    Lanczos quadrature per random probe: (nodes per probe, weights per probe, matvecs).
    """
def max_threads() -> int:
    """
    Threads a batch uses by default (OpenMP's default, 1 without OpenMP).
    """
def openmp_enabled() -> bool:
    """
    True when the core was built with OpenMP.
    """
def openmp_version() -> int:
    """
    The OpenMP specification the core was built against as its _OPENMP date (201511 = 4.5); 0 without.
    """
def param_norm(theta: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], norm: NormSpec, shapes: collections.abc.Sequence[tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex]]) -> float:
    """
    ||theta|| in the norm.
    """
def simd_instruction_sets() -> str:
    """
    The SIMD instruction sets Eigen was compiled for (e.g. 'SSE, SSE2').
    """
def steepest_batch(problems: collections.abc.Sequence[ClassificationProblem], runs: collections.abc.Sequence[SteepestRun], options: SteepestOptions, num_threads: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
    """
    Train a batch of homogeneous classifiers (steepest descent, Signum, Adam or the flow) over
    OpenMP threads with the GIL released; one RunRecord per run. Low level: use
    implicitbias.steepest.fit / fit_many.
    """
def steepest_direction(g: typing.Annotated[numpy.typing.ArrayLike, numpy.float64, "[m, 1]"], norm: NormSpec, shapes: collections.abc.Sequence[tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex]]) -> tuple[typing.Annotated[numpy.typing.NDArray[numpy.float64], "[m, 1]"], float]:
    """
    (g#, ||g||_*) for the norm; shapes are the (rows, cols) weight blocks (spectral).
    """
__version__: str = '0.1.0'
compiler: str = 'GCC 12.2.0'
eigen_version: str = '3.4.1'
isa: str = 'baseline'
