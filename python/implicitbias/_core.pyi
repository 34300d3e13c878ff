"""Type stubs for the compiled core (the same API in every ISA variant)."""

from typing import Any

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
