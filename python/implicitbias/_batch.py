"""The pieces of the batch engine shared by the three model families.

A family declares its arguments once (``implicitbias._family``: a ``Family``
of ``Param``, one batch assembly for all); this module holds the pieces:

* :func:`broadcast` turns scalars and lists into one value per run (lists
  broadcast like 1-D numpy arrays: equal length K, or length 1);
* :func:`adaptive_options` / :func:`record_times` build the flow's options
  (one definition of the flow tolerances and recording for every family);
* :func:`make` fills a typed struct of the compiled core by attribute, so
  unknown or mistyped fields fail loudly;
* :func:`grouped` runs the core on the runs sorted by a key (so that runs
  sharing a problem and model sit in the same blocks) and returns the records
  in the caller's order;
* the checks a ``Param`` uses (:func:`positive`, :func:`choice`, ...);
* :class:`RunResult` is the base of every family's result.

The names mean the same thing in every family; ``docs/vocabulary.md`` has the
table.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import numpy as np

from ._native import core
from ._validation import check_positive, check_positive_int, check_vector

# --------------------------------------------------------------------------- results
_MESSAGES = {
    "converged": "the loss reached its target",
    "max_steps": "used up its step budget",
    "max_time": "reached the end of the time horizon t_max",
    "diverged": "diverged (non-finite values or step-size underflow); the last finite state is kept",
    "stalled": "stopped early: the loss stopped falling before reaching its target",
}


@dataclass(repr=False)
class RunResult:
    """What every run reports, whatever the family.

    Attributes
    ----------
    status : str
        ``"converged"`` (loss reached its target), ``"max_steps"`` (step
        budget used up), ``"max_time"`` (flow reached ``t_max``),
        ``"diverged"`` (non-finite values or step-size underflow; the last
        finite state is kept) or ``"stalled"`` (flow: the loss stopped
        falling; steepest descent's loss-based schedule: no retry decreased
        the loss). See docs/science.md, sections 2.5 and 4.5.
    success : bool
        The run ended as asked: it converged, or it is a fixed-step run
        without a target that took all its steps, or a flow without a
        target that reached ``t_max``.
    message : str
        The status in words.
    n_steps, n_grad_evals : int
        Accepted steps and gradient evaluations.
    n_jac, n_lu : int
        Jacobian evaluations and factorizations of the Newton or stage
        matrix by an implicit flow method (``bdf``, ``rodas5``,
        ``rosw``); 0 for ``dopri5`` and descent (docs/science.md, section 4.9).
    t_final : float
        Flow time reached, or the sum of the step sizes (descent).
    wall_time : float
        Seconds in the compiled core for the block that held this run.
    history : dict of ndarrays
        Equal-length arrays recorded along the run (``t``, the loss,
        ``n_grad_evals``, ``wall_time`` and the family's diagnostics).
    """

    status: str
    success: bool
    n_steps: int
    n_grad_evals: int
    n_jac: int
    n_lu: int
    t_final: float
    wall_time: float
    _record: Any = field(repr=False, compare=False)

    @property
    def message(self) -> str:
        """The status in words."""
        return _MESSAGES.get(self.status, self.status)

    def to_row(self) -> dict[str, Any]:
        """The run as a flat dict of scalars: one row of a table (e.g. a sweep store).

        Every family's row starts with ``status``, ``success``, ``n_steps``,
        ``n_grad_evals``, ``t_final`` and ``wall_time`` and adds its settings and
        final scalars (docs/sweeps.md, "Columns"). Missing values are NaN, never
        None, so that a column keeps one type.
        """
        return {"status": self.status, "success": bool(self.success), "n_steps": self.n_steps,
                "n_grad_evals": self.n_grad_evals, "t_final": self.t_final, "wall_time": self.wall_time}

    @functools.cached_property
    def history(self) -> dict[str, np.ndarray]:
        """The recorded channels (converted from the core's record on first use)."""
        return self._history_from(self._record.history)

    def _history_from(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(raw)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the history as arrays, without the core's record (which does not pickle)."""
        state = dict(self.__dict__)
        state["history"] = self.history
        state["_record"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        items = [("status", self.status), ("success", self.success), ("message", self.message)]
        items += [(f.name, getattr(self, f.name)) for f in fields(self)
                  if f.repr and f.name not in ("status", "success") and not f.name.startswith("_")]
        h = self.history
        n = len(next(iter(h.values()))) if h else 0
        width = max(len(k) for k, _ in items + [("history", None)])
        lines = [f"{type(self).__name__}("]
        for k, v in items:
            lines.append(f"{k:>{width}}: {_short(v)}")
        lines.append(f"{'history':>{width}}: {n} points of {', '.join(h)}")
        return "\n".join(lines) + ")"


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray) and v.ndim > 1:
        return f"array of shape {v.shape}"
    if isinstance(v, np.ndarray):
        return np.array2string(v, threshold=6, edgeitems=2, precision=4).replace("\n", "")
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and v and isinstance(v[0], np.ndarray):
        return f"[{len(v)} arrays of shapes {', '.join(str(a.shape) for a in v)}]"
    return repr(v)


def base_fields(record: Any, *, has_target: bool, fixed_step: bool) -> dict[str, Any]:
    """The :class:`RunResult` fields of one core record."""
    status = record.status.name
    success = status == "converged" or (not has_target and status == ("max_steps" if fixed_step else "max_time"))
    return {"status": status, "success": success, "n_steps": int(record.n_steps),
            "n_grad_evals": int(record.n_grad_evals), "n_jac": int(record.n_jac), "n_lu": int(record.n_lu),
            "t_final": float(record.t_final),
            "wall_time": float(record.wall_time), "_record": record}


# --------------------------------------------------------------------------- per-run arguments
def as_run_list(value: Any, name: str, param: Any) -> list:
    """A per-run argument as a list of values (never empty).

    A list or tuple is one value per run; so is a 1-D array, unless
    ``param.one_array`` (a 1-D array is then one value, e.g. an initial
    parameter vector); with ``param.vector`` a 2-D array (K, n) gives one row
    per run. Anything else is one value for every run."""
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"{name} must not be an empty list")
        return list(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return [value.item()]
        if value.ndim == 1:
            if value.size == 0:
                raise ValueError(f"{name} must not be an empty array")
            return [value] if param.one_array else value.tolist()
        if value.ndim == 2 and param.vector:
            return list(value)
        raise ValueError(f"{name} must be a scalar or a 1-D list of values, got shape {value.shape}")
    return [value]


def broadcast(values: dict[str, Any], params: dict[str, Any], run_problem: list[int],
              single: bool = False) -> tuple[int, dict[str, list]]:
    """One checked value per run for every per-run parameter: returns (K, lists).

    ``params``: the :class:`~implicitbias._family.Param` of each name (its
    ``check``, ``vector``, ``one_array``, ``default``, ``checked_default``). Lists broadcast like 1-D numpy
    arrays (all of one length K, or length 1); each distinct value is checked once.
    ``single``: every value is one run's value (``fit``), nothing is read as a list.
    """
    lists = {"problem": run_problem}
    for name, param in params.items():
        lists[name] = [values[name]] if single else as_run_list(values[name], name, param)
    lengths = {k: len(v) for k, v in lists.items() if len(v) != 1}
    K = max(lengths.values(), default=1)
    if any(n != K for n in lengths.values()):
        raise ValueError(f"list-valued arguments must have equal lengths (or length 1); got {lengths}")
    for name, v in lists.items():
        declared = params.get(name)
        if declared is not None and declared.check is not None:
            if len(v) == 1 and v[0] is declared.default and declared.checked_default is not UNCHECKED:
                v = [declared.checked_default]  # the default, checked once when the family was declared
            else:
                v = _checked_list(v, name, declared.check)
        lists[name] = v * K if len(v) == 1 else v
    return K, lists


UNCHECKED = object()  # Param.checked_default when the default was not checked ahead


def _checked_list(values: list, name: str, check: Callable[[Any, str], Any]) -> list:
    if len(values) == 1:
        return [check(values[0], name)]
    seen: dict[Any, Any] = {}
    out = []
    for v in values:
        try:
            key: Any = (type(v), v)
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in seen:
            out.append(seen[key])
            continue
        c = check(v, name)
        if key is not None:
            seen[key] = c
        out.append(c)
    return out


# --------------------------------------------------------------------------- checks used as Param.check
def positive(value: Any, name: str) -> float:
    return check_positive(value, name)


def nonnegative(value: Any, name: str) -> float:
    return check_positive(value, name, allow_zero=True)


def optional_positive(value: Any, name: str) -> float | None:
    return None if value is None else check_positive(value, name)


def optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """A check that accepts None as well."""
    return lambda value, name: None if value is None else check(value, name)


def below_one(value: Any, name: str) -> float:
    """A real in (0, 1) (e.g. a relative tolerance)."""
    v = check_positive(value, name)
    if v >= 1.0:
        raise ValueError(f"{name} must be < 1, got {value!r}")
    return v


def times(value: Any, name: str) -> tuple[float, ...] | None:
    """None, or non-negative, strictly increasing times (as a tuple)."""
    if value is None:
        return None
    rec = check_vector(value, name)
    if np.any(np.diff(rec) <= 0) or np.any(rec < 0):
        raise ValueError(f"{name} must be non-negative and strictly increasing")
    return tuple(float(t) for t in rec)


def num_threads(value: Any, name: str) -> int:
    """``num_threads`` for the core: None (0, the core's default) or an integer >= 1."""
    return 0 if value is None else check_positive_int(value, name)


def choice(*options: Any) -> Callable[[Any, str], Any]:
    """A check that accepts one of ``options``."""
    def check(value: Any, name: str) -> Any:
        if isinstance(value, np.str_):
            value = str(value)
        if value not in options:
            raise ValueError(f"{name} must be one of {options}, got {value!r}")
        return value
    return check


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def integer(minimum: int) -> Callable[[Any, str], int]:
    """A check that accepts an integer >= minimum."""
    return lambda value, name: check_positive_int(value, name, minimum=minimum)


def enum(core_enum: Any, name: str) -> Any:
    """The member of a bound core enum named ``name`` (the Python vocabulary)."""
    member = getattr(core_enum, name, None)
    if not isinstance(member, core_enum):
        raise ValueError(f"{name!r} is not one of {list(core_enum.__members__)}")
    return member


# --------------------------------------------------------------------------- the core boundary
def make(cls: Any, **values: Any) -> Any:
    """A core struct with the given fields set (an unknown field raises AttributeError)."""
    obj = cls()
    for k, v in values.items():
        setattr(obj, k, v)
    return obj


def grouped(keys: Sequence[Any], call: Callable[[list[int]], list]) -> list:
    """Run ``call(order)`` with the runs sorted by key (the order within a
    key kept, so the blocks depend only on the batch) and return its outputs
    in the original order."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    outputs = call(order)
    result: list = [None] * len(keys)
    for pos, k in enumerate(order):
        result[k] = outputs[pos]
    return result


# --------------------------------------------------------------------------- flow options and recording
def memoized(build: Callable[..., Any]) -> Callable[..., Any]:
    """Memoize a builder of (read-only) core options on its arguments when they
    are hashable: users call ``fit`` in loops with the same options."""
    cached = functools.lru_cache(maxsize=64, typed=True)(build)

    @functools.wraps(build)
    def wrapper(*args: Any) -> Any:
        try:
            return cached(*args)
        except TypeError:  # an unhashable argument (e.g. an array)
            return build(*args)
    return wrapper


def record_times(record_times_: Any, t_max: float, n_record: int) -> list[float]:
    """Times at which a flow records: given (increasing, >= 0), or ``n_record``
    log-spaced times from 1e-3 to ``t_max``."""
    if record_times_ is None:
        if not t_max > 1e-3:
            return [t_max]
        times = np.logspace(-3, np.log10(t_max), n_record)
        times[-1] = t_max  # 10**log10(t_max) can miss t_max by an ulp: the last record would repeat the end
        return list(times)
    rec = check_vector(record_times_, "record_times")
    if np.any(np.diff(rec) <= 0) or np.any(rec < 0):
        raise ValueError("record_times must be non-negative and strictly increasing")
    return list(rec)


def adaptive_options(*, rtol: Any, atol: Any, t_max: Any, max_steps: Any, stall_steps: Any = 5000,
                     record_times: Sequence[float] = (), record_every: int = 0, jac_every: int = 4) -> Any:
    """The flow integrator's options (docs/science.md, sections 4.3-4.5), checked."""
    if check_positive(rtol, "rtol") >= 1.0:
        raise ValueError(f"rtol must be < 1, got {rtol!r}")
    return make(
        core.AdaptiveOptions, rtol=float(rtol), atol=check_positive(atol, "atol", allow_zero=True),
        t_max=check_positive(t_max, "t_max"), max_steps=check_positive_int(max_steps, "max_steps"),
        stall_steps=check_positive_int(stall_steps, "stall_steps", minimum=0), record_times=list(record_times),
        record_every=int(record_every), jac_every=check_positive_int(jac_every, "jac_every"))


def record_every_steps(record_every: Any, steps: int, n_record: int) -> int:
    """Descent: record every k steps (given, or ``max(1, steps // n_record)``)."""
    if record_every is None:
        return max(1, steps // n_record)
    return check_positive_int(record_every, "record_every")


def target_loss(value: Any) -> float:
    """``target_loss`` for the core: a loss >= 0, or -1 (never stop early)."""
    return -1.0 if value is None else check_positive(value, "target_loss", allow_zero=True)


def is_real(value: Any) -> bool:
    """A real scalar (bool excluded)."""
    return type(value) is float or (isinstance(value, numbers.Real) and not isinstance(value, bool))
