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
