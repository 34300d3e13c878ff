"""Input validation shared by the public functions.

Every check raises ``ValueError`` with a message that names the argument, so a
bad call fails before any work is done and never reaches the compiled core.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def _finite_array(a: object, name: str, ndim: int) -> np.ndarray:
    """A finite float64 array with ``ndim`` dimensions (C-contiguous copy if needed)."""
    what = "2-D array" if ndim == 2 else "1-D array"
    try:
        raw = a if isinstance(a, np.ndarray) else np.asarray(a)
        # complex, text, bytes, void, datetime: a cast would drop parts or reinterpret text silently
        if raw.dtype.kind in "cUSVMm":
            raise TypeError(f"dtype {raw.dtype} is not real")
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real {what}: {exc}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    # a finite sum proves every entry finite; an infinite one may be overflow, so look entry by entry
    if not math.isfinite(arr.sum()) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(arr)


def finite_result(value: Any, name: str, what: str) -> Any:
    """``value`` (a float or array computed from finite inputs), or a ValueError naming ``name`` when it
    overflowed: a NaN or inf result of finite inputs is never returned silently."""
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name}: the {what} overflows float64 (non-finite result); scale the {name} down")
    return value


def check_matrix(a: object, name: str) -> np.ndarray:
    """A finite, non-empty 2-D float64 array (C-contiguous copy if needed)."""
    arr = _finite_array(a, name, 2)
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def check_vector(v: object, name: str, size: int | None = None) -> np.ndarray:
    """A finite 1-D float64 array, optionally of a given length."""
    arr = _finite_array(v, name, 1)
    if size is not None and arr.shape[0] != size:
        raise ValueError(f"{name} must have length {size}, got {arr.shape[0]}")
    return arr


def check_positive(x: object, name: str, *, allow_zero: bool = False) -> float:
    """A finite real scalar > 0 (or >= 0)."""
    if type(x) is not float and (isinstance(x, bool) or not isinstance(x, numbers.Real)):  # float: fast path
        raise ValueError(f"{name} must be a real number, got {x!r}")
    val = float(x)
    if not math.isfinite(val) or val < 0 or (val == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {x!r}")
    return val


INT_MAX = 2**31 - 1  # the largest count the compiled core takes (its counts are int or int64)


def check_positive_int(x: object, name: str, *, minimum: int = 1) -> int:
    """An integer in ``[minimum, 2**31 - 1]``."""
    if type(x) is not int and (isinstance(x, bool) or not isinstance(x, numbers.Integral)):  # int: fast path
        raise ValueError(f"{name} must be an integer, got {x!r}")
    val = int(x)
    if val < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {val}")
    if val > INT_MAX:
        raise ValueError(f"{name} must be <= {INT_MAX}, got {val}")
    return val


def check_seed(seed: object) -> int | None:
    """None or a non-negative integer."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be None or an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def check_choice(value: object, name: str, choices: tuple) -> object:
    """One of a fixed set of values."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def unique_problems(first: Any, second: Any, first_name: str, second_name: str) -> tuple[list, list, list[int]]:
    """One data set or lists of them -> (unique firsts, unique seconds, problem index per listing).

    The same pair of objects listed several times is one problem, so that its
    runs can share work (and validation happens once per problem).
    """
    # one data set unless the first argument is a list of matrices (so that a
    # matrix given as nested lists, or labels given as a list, stay one data set)
    many = isinstance(first, (list, tuple)) and len(first) > 0 and all(
        (isinstance(f, np.ndarray) and f.ndim == 2) or (isinstance(f, (list, tuple)) and len(f) > 0
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


def check_labels(y: object, size: int | None = None, name: str = "y") -> np.ndarray:
    """Binary labels: a finite 1-D array (of length ``size``) with every entry exactly -1 or +1."""
    arr = check_vector(y, name, size)
    bad = (arr != 1.0) & (arr != -1.0)
    if np.any(bad):
        raise ValueError(f"{name} must contain labels in {{-1, +1}} only, got values such as "
                         f"{np.unique(arr[bad])[:5].tolist()} ({int(bad.sum())} bad entries)")
    return arr
