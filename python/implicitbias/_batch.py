"""The pieces of the batch engine shared by the three model families.

A family declares its arguments once (``implicitbias._family``: a ``Family``
of ``Param``, one batch assembly for all); this module holds the pieces:

* :func:`broadcast` turns scalars and lists into one value per run (lists
  broadcast like 1-D numpy arrays: equal length K, or length 1);
* :func:`adaptive_options` / :func:`record_times` build the flow's options
  (one definition of the flow tolerances and recording for every family);
* :func:`make` fills a typed struct of the compiled core by attribute, so
  unknown or mistyped fields fail loudly;
* :class:`Decoded` reads the records of a core call in one pass (the core
  groups the runs and returns the records in the caller's order);
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
        """The recorded channels (converted from the core's records on first use)."""
        records, k = self._record
        return self._history_from(records.history(k))

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


_STATUS = {int(v): k for k, v in core.Status.__members__.items()}  # the core's codes and names


class Decoded:
    """The records of one core call (``core.RunRecords``), read in one pass: the status and counters of
    every run as columns, the final states as one flat array (run k's is :meth:`state`), and each run's
    :class:`RunResult` fields (:meth:`base`). The histories stay in the core until a result asks for its own."""

    __slots__ = ("counts", "offsets", "reals", "records", "states", "status")

    def __init__(self, records: Any) -> None:
        self.records = records
        self.status, self.counts, self.reals, self.offsets, self.states = records.columns()

    def __len__(self) -> int:
        return len(self.status)

    @property
    def n_rejected(self) -> list[int]:
        return self.counts[:, 1].tolist()

    @property
    def loss_final(self) -> list[float]:
        return self.reals[:, 1].tolist()

    def state(self, k: int) -> np.ndarray:
        """Run k's final state (a view of the flat array)."""
        return self.states[self.offsets[k]:self.offsets[k + 1]]

    def rows(self, runs: Sequence[int], length: int, start: int = 0) -> np.ndarray:
        """``state(k)[start:start + length]`` of each run k in ``runs``, stacked: a (len(runs), length)
        C-ordered array (a view for one run)."""
        if len(runs) == 1:
            o = int(self.offsets[runs[0]]) + start
            return self.states[o:o + length].reshape(1, length)
        idx = self.offsets[np.asarray(runs, dtype=np.intp)] + start
        return self.states[idx[:, None] + np.arange(length)]

    def base(self, has_target: Sequence[bool] | bool, fixed_step: Sequence[bool] | bool) -> list[dict[str, Any]]:
        """The :class:`RunResult` fields of every run (``has_target``, ``fixed_step``: a bool, or one per run)."""
        K = len(self.status)
        targets = [has_target] * K if isinstance(has_target, bool) else has_target
        fixed = [fixed_step] * K if isinstance(fixed_step, bool) else fixed_step
        counts, reals, recs = self.counts.tolist(), self.reals.tolist(), self.records
        out = []
        for k, (code, c, r, target, fx) in enumerate(zip(self.status.tolist(), counts, reals, targets, fixed)):
            name = _STATUS[code]
            ok = name == "converged" or (not target and name == ("max_steps" if fx else "max_time"))
            out.append({"status": name, "success": ok, "n_steps": c[0], "n_grad_evals": c[2], "n_jac": c[3],
                        "n_lu": c[4], "t_final": r[0], "wall_time": r[2], "_record": (recs, k)})
        return out


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
