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


def unique_problems(first: object, second: object, first_name: str, second_name: str) -> tuple[list, list, list[int]]:
    """One data set or lists of them -> (unique firsts, unique seconds, problem index per listing).

    The same pair of objects listed several times is one problem, so that its
    runs can share work (and validation happens once per problem).
    """
    # one data set unless the first argument is a list of matrices (so that a
    # matrix given as nested lists, or labels given as a list, stay one data set)
    many = isinstance(first, (list, tuple)) and len(first) > 0 and all(
        isinstance(f, np.ndarray) and f.ndim == 2 or (isinstance(f, (list, tuple)) and len(f) > 0
                                                     and isinstance(f[0], (list, tuple, np.ndarray)))
        for f in first)
    if isinstance(first, (list, tuple)) and len(first) == 0:
        raise ValueError(f"{first_name} must not be an empty list")
    if many:
        f_list = first
        s_list = second if isinstance(second, (list, tuple)) else [second]
    else:
        f_list, s_list = [first], [second]
    if len(s_list) != len(f_list):
        raise ValueError(f"{second_name} must be a list of the same length as {first_name} ({len(f_list)}), "
                         f"got {len(s_list)}")
    index: dict[tuple[int, int], int] = {}
    uniq_f: list = []
    uniq_s: list = []
    run_problem = []
    for a, v in zip(f_list, s_list):
        key = (id(a), id(v))
        if key not in index:
            index[key] = len(uniq_f)
            uniq_f.append(a)
            uniq_s.append(v)
        run_problem.append(index[key])
    return uniq_f, uniq_s, run_problem


def broadcast_runs(per_run: dict[str, list]) -> int:
    """Broadcast per-run lists in place like 1-D numpy arrays (all of one
    length K, or length 1); returns K."""
    lengths = {k: len(v) for k, v in per_run.items() if len(v) != 1}
    K = max(lengths.values(), default=1)
    if any(n != K for n in lengths.values()):
        raise ValueError(f"list-valued arguments must have equal lengths (or length 1); got {lengths}")
    for k, v in per_run.items():
        if len(v) == 1:
            per_run[k] = v * K
    return K


def as_run_list(value: object, name: str, scalar_types: tuple = ()) -> list:
    """A per-run argument as a list: a scalar (or None) becomes [value]; a
    list, tuple or 1-D array becomes a list (never empty)."""
    if value is None or (scalar_types and isinstance(value, scalar_types)):
        return [value]
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return [value.item()]
        if value.ndim == 1:
            return list(value.tolist())
        raise ValueError(f"{name} must be a scalar or a 1-D list of values, got shape {value.shape}")
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"{name} must not be an empty list")
        return list(value)
    return [value]


def check_labels(y: object, size: int | None = None, name: str = "y") -> np.ndarray:
    """Binary labels: a finite 1-D array (of length ``size``) with every entry exactly -1 or +1."""
    arr = check_vector(y, name, size)
    bad = (arr != 1.0) & (arr != -1.0)
    if np.any(bad):
        raise ValueError(f"{name} must contain labels in {{-1, +1}} only, got values such as "
                         f"{np.unique(arr[bad])[:5].tolist()} ({int(bad.sum())} bad entries)")
    return arr
