"""Input validation shared by the public functions.

Every check raises ``ValueError`` with a message that names the argument, so a
bad call fails before any work is done and never reaches the compiled core.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_matrix(a: object, name: str) -> np.ndarray:
    """A finite 2-D float64 array (C-contiguous copy if needed)."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real 2-D array: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(arr)


def check_vector(v: object, name: str, size: int | None = None) -> np.ndarray:
    """A finite 1-D float64 array, optionally of a given length."""
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real 1-D array: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if size is not None and arr.shape[0] != size:
        raise ValueError(f"{name} must have length {size}, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(arr)


def check_positive(x: object, name: str, *, allow_zero: bool = False) -> float:
    """A finite real scalar > 0 (or >= 0)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    val = float(x)
    if not np.isfinite(val) or val < 0 or (val == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {x!r}")
    return val


def check_positive_int(x: object, name: str, *, minimum: int = 1) -> int:
    """An integer >= minimum."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {x!r}")
    val = int(x)
    if val < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {val}")
    return val


def check_seed(seed: object) -> int | None:
    """None or a non-negative integer."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
    return int(seed)


def check_choice(value: object, name: str, choices: tuple) -> object:
    """One of a fixed set of values."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value
