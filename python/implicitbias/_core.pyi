"""Type stubs for the compiled core (the same API in every ISA variant)."""

from typing import Any, Callable

import numpy as np
import numpy.typing as npt

isa: str

def openmp_enabled() -> bool: ...
def max_threads() -> int: ...
def simd_instruction_sets() -> str: ...
def cpu_supports(feature: str) -> bool: ...
def diagonal_batch(
    A: list[npt.NDArray[np.float64]],
    y: list[npt.NDArray[np.float64]],
    x_star: list[npt.NDArray[np.float64]],
    problem: list[int],
    depth: list[int],
    nonnegative: list[bool],
    weight_norm: list[int],
    init_scale: list[npt.NDArray[np.float64]],
    lr_ratio: list[float],
    lr: list[float],
    method: str,
    solver: str,
    steps: int,
    record_every: int,
    tol: list[float],
    rtol: float,
    atol: float,
    t_max: float,
    max_steps: int,
    record_times: list[float],
    h0: float,
    stall_steps: int,
    jac_every: int,
    block_size: int,
    num_threads: int,
    gd_lanes: bool = True,
) -> list[dict[str, Any]]: ...

class FactorizationMeasurements:
    """A measurement operator f_i = <A_i, E>: dense sensing matrices or entry sampling."""

    @staticmethod
    def gaussian(
        d_out: int, d_in: int, A_stack: npt.NDArray[np.float64], prepare: bool = True
    ) -> FactorizationMeasurements: ...
    @staticmethod
    def entries(d_out: int, d_in: int, rows: list[int], cols: list[int]) -> FactorizationMeasurements: ...
    @property
    def n(self) -> int: ...
    @property
    def d_out(self) -> int: ...
    @property
    def d_in(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def uses_kronecker(self) -> bool: ...

def factorization_eval(
    meas: FactorizationMeasurements, dims: list[int], z: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> dict[str, Any]: ...
def factorization_trace(meas: FactorizationMeasurements, dims: list[int], z: npt.NDArray[np.float64]) -> float: ...
def factorization_trace_gradient(
    meas: FactorizationMeasurements, dims: list[int], z: npt.NDArray[np.float64]
) -> tuple[float, npt.NDArray[np.float64]]: ...
def factorization_hvp(
    meas: FactorizationMeasurements,
    dims: list[int],
    z: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    V: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]: ...
def factorization_jacobian(
    meas: FactorizationMeasurements, dims: list[int], z: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]: ...
def factorization_estimate(
    method: str,
    meas: FactorizationMeasurements,
    dims: list[int],
    z: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    num_matvecs: int,
    seed: int,
    probe: str,
) -> tuple[float, float, int]: ...
def callable_estimate(
    method: str,
    matvec: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    dim: int,
    num_matvecs: int,
    seed: int,
    probe: str,
    block: bool,
) -> tuple[float, float, int]: ...
def factorization_batch(
    meas: list[FactorizationMeasurements],
    y: list[npt.NDArray[np.float64]],
    M_star: list[npt.NDArray[np.float64]],
    tol: list[float],
    problem: list[int],
    method: list[int],
    dims: list[list[int]],
    z0: list[npt.NDArray[np.float64]],
    lr: list[float],
    strength: list[float],
    seed: list[int],
    steps: int,
    record_every: int,
    anneal_steps: int,
    final_ratio: float,
    rtol: float,
    atol: float,
    t_max: float,
    max_steps: int,
    record_times: list[float],
    stall_steps: int,
    block_size: int,
    num_threads: int,
) -> list[dict[str, Any]]: ...
def steepest_batch(
    X: list[npt.NDArray[np.float64]],
    y: list[npt.NDArray[np.float64]],
    runs: list[dict[str, Any]],
    steps: int,
    target_log_loss: float,
    record_steps: list[int],
    record_every: int,
    rtol: float,
    atol: float,
    t_max: float,
    max_steps: int,
    record_times: list[float],
    num_threads: int,
) -> list[dict[str, Any]]: ...
def homogeneous_outputs(
    model: str, depth: int, width: int, X: npt.NDArray[np.float64], theta: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]: ...
def homogeneous_grad_sum(
    model: str,
    depth: int,
    width: int,
    X: npt.NDArray[np.float64],
    theta: npt.NDArray[np.float64],
    c: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]: ...
def classification_loss(
    model: str,
    depth: int,
    width: int,
    X: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    theta: npt.NDArray[np.float64],
    loss: str,
) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def steepest_direction(
    g: npt.NDArray[np.float64], norm: str, p: float, shapes: list[tuple[int, int]]
) -> tuple[npt.NDArray[np.float64], float]: ...
def param_norm(theta: npt.NDArray[np.float64], norm: str, p: float, shapes: list[tuple[int, int]]) -> float: ...
