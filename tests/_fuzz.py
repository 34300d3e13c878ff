"""The contract every fuzzed call must keep, and the strategies of odd inputs shared by the fuzz tests.

A call either raises ValueError/TypeError whose message names the offending argument, or returns a
result that says honestly what happened: a run result with a known status (finite state when it
claims success), or finite numbers. A crash kills the test process; a hang is ruled out by tiny sizes.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

COUNTS = {"calls": 0, "rejected": 0}
STATUSES = {"converged", "max_steps", "max_time", "diverged", "stalled"}


def rejects_or_returns(fn: Callable[..., Any], names: str | tuple[str, ...], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a ValueError/TypeError must name one of ``names`` as a word. Returns the result or None.

    A name counts only as a whole word (``init_scale`` in "init_scale must be positive" or
    "fit.init_scale[1]", but "y" not inside "layer" and "A" not inside "Adam"), so an error that blames
    another argument fails the test."""
    names = (names,) if isinstance(names, str) else names
    COUNTS["calls"] += 1
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        COUNTS["rejected"] += 1
        assert any(names_word(n, str(exc)) for n in names), f"{type(exc).__name__} does not name {names}: {exc}"
        return None


def names_word(name: str, message: str) -> bool:
    """``name`` occurs in ``message`` as a whole word (not inside a longer identifier or word)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


def check_run(r: Any, *state_attrs: str) -> None:
    """A run result whose status is one of the five and whose state is finite unless it diverged."""
    assert r.status in STATUSES, r.status
    assert isinstance(r.success, bool) and isinstance(r.message, str) and r.message
    assert r.success == (r.status == "converged") or r.status in ("max_steps", "max_time")
    assert r.n_steps >= 0 and r.n_grad_evals >= 0 and (np.isfinite(r.t_final) or r.status == "diverged")
    h = r.history
    assert len({len(v) for v in h.values()}) <= 1, {k: len(v) for k, v in h.items()}
    if r.status != "diverged":
        for a in state_attrs:
            v = getattr(r, a)
            assert np.all(np.isfinite(np.asarray(v, dtype=float))), f"{a} not finite with status {r.status}"


# a value where an array is expected that is not a real finite array: every one must be rejected
BAD_ARRAY_KINDS = ("nan", "inf", "complex", "object", "string", "empty", "ndim", "none", "scalar", "ragged", "short",
                   "long")


def bad_array(kind: str, good: np.ndarray) -> Any:
    """``good`` spoiled in the way ``kind`` says (see :data:`BAD_ARRAY_KINDS`)."""
    a = good.astype(float).copy()
    if kind == "nan":
        a.flat[a.size // 2] = np.nan
        return a
    if kind == "inf":
        a.flat[0] = -np.inf
        return a
    if kind == "complex":
        return a + 1j
    if kind == "object":
        o = a.astype(object)
        o.flat[0] = "x"
        return o
    if kind == "string":
        return "A"
    if kind == "empty":
        return np.empty((0,) * a.ndim)
    if kind == "ndim":
        return a[..., None]
    if kind == "none":
        return None
    if kind == "short":  # one entry (or row) too few: a size mismatch must not reach the core
        return a[:-1]
    if kind == "long":
        return np.concatenate([a, a[:1]])
    if kind == "scalar":
        return 1.5
    return [list(a.ravel()[:2]), [1.0]]  # ragged


# valid arrays in another dtype, order or memory layout: the result must be the same as for the float64 copy
# (extreme magnitudes are not a layout: tests/test_fuzz_fit.py fuzzes them on their own)
LAYOUTS = ("float32", "int", "bool", "fortran", "strided", "readonly", "list")


def relaid(kind: str, good: np.ndarray) -> tuple[Any, np.ndarray]:
    """(``good`` in another layout, the float64 array it stands for)."""
    if kind == "float32":
        a32 = good.astype(np.float32)
        return a32, a32.astype(np.float64)
    if kind == "int":
        ai = np.round(good * 3).astype(np.int64)
        return ai, ai.astype(np.float64)
    if kind == "bool":
        ab = good > 0
        return ab, ab.astype(np.float64)
    if kind == "fortran":
        return np.asfortranarray(good), good
    if kind == "strided":
        big = np.repeat(good, 2, axis=-1)
        return big[..., ::2], good
    if kind == "readonly":
        ro = good.copy()
        ro.flags.writeable = False
        return ro, good
    if kind == "list":
        return good.tolist(), good
    raise ValueError(f"unknown layout {kind!r}")


finite_floats = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)

# scalar options: values of every kind a user might pass by mistake
ODD_SCALARS = st.one_of(
    st.sampled_from([0, -1, 0.0, -0.5, 1e-320, 1e308, float("nan"), float("inf"), -float("inf"), True, False, None,
                     "1", "", 1j, [], [1.0, 2.0], (), {}, np.float32(0.5), np.int64(3), np.array(2.0),
                     np.array([1.0]), 2**70, object()]),
    st.integers(min_value=-5, max_value=6), st.floats(allow_nan=True, allow_infinity=True))
