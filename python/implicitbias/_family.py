"""One declaration per model family, and the one batch assembly every family uses.

A family (``implicitbias.diagonal.FAMILY``, ``steepest.FAMILY``,
``factorization.FAMILY``) is a :class:`Family`: its name, its ``fit`` and
``fit_many``, the data arguments it takes, and every other argument of
``fit_many`` as a :class:`Param` (default, check, allowed choices, whether it
may vary per run). The defaults are read from ``fit_many``'s signature, so the
signature is the one place they are written; ``fit`` must have the same
signature (checked when the family is declared).

How a family meets the compiled core is its :class:`Adapter` (private hooks:
the problems, the batch options, the core's runs, the core call, the
decoder). :meth:`Family.run` is the one assembly of a batch:

check the batch-wide arguments -> check the data -> broadcast and check the
per-run arguments -> the batch's options -> the core's runs, built in one
call for the whole batch (columns of per-run values) -> the core call -> the
records read in one pass (:class:`._batch.Decoded`) -> the results, in the
caller's order.

Grouping and ordering happen in one place, the core: its batch entry sorts
the runs stably by its grouping key (problem and model), cuts the groups into
blocks and returns the records in the order of the runs it was given
(``parallel.hpp``, ``run_grouped_batch``). Python never reorders a batch.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _batch

__all__ = ["Adapter", "Family", "Param", "Problems"]


@dataclass(frozen=True)
class Param:
    """One argument of a family's ``fit_many`` (and ``fit``).

    Attributes
    ----------
    name : str
        The keyword.
    default : Any
        Its default (from ``fit_many``'s signature).
    check : callable ``(value, name) -> value``
        Raises ``ValueError`` naming ``name`` for a bad value; returns the
        value as the family uses it (e.g. a float). For a per-run argument it
        checks one run's value. None: the family checks it (arrays, layers).
    per_run : bool
        True if a list gives one value per run (see ``fit_many``).
    choices : tuple or None
        The allowed values of a choice (strings, and None where allowed).
    types : tuple of types
        The Python types of one scalar value (``type(None)`` where None is
        allowed; ``np.ndarray`` where an array is one value).
    vector, one_array : bool
        How an array is read as a per-run argument (see :mod:`._batch`).
    checked_default : Any
        ``check(default, name)``, computed once (a call that leaves the
        argument at its default does not check it again).
    """

    name: str
    check: Callable[[Any, str], Any] | None = None
    types: tuple[type, ...] = ()
    per_run: bool = False
    choices: tuple | None = None
    vector: bool = False
    one_array: bool = False
    default: Any = None
    checked_default: Any = field(default=_batch.UNCHECKED, repr=False, compare=False)


def param(name: str, check: Callable[[Any, str], Any] | None, *types: type, per_run: bool = False,
          choices: tuple | None = None, vector: bool = False, one_array: bool = False) -> Param:
    """A :class:`Param` (the default is filled in from the signature by :meth:`Family.declare`)."""
    return Param(name, check, types, per_run, choices, vector, one_array)


def choice_param(name: str, choices: tuple, *, per_run: bool = False) -> Param:
    """A string argument with a fixed set of values (None among them where allowed)."""
    types = tuple(dict.fromkeys(type(c) for c in choices))
    return Param(name, _batch.choice(*choices), types, per_run, choices)


def core_names(core_enum: Any, *, drop: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The member names of a bound core enum (its vocabulary), without ``drop``."""
    return tuple(n for n in core_enum.__members__ if n not in drop)


@dataclass
class Problems:
    """The checked data of a batch: the core's problem structs, the family's arrays per problem, and the
    problem index of each listing (one per run, or one for all)."""

    core: list
    data: list
    run_problem: list[int]


class Adapter:
    """How one family's batch meets the compiled core (the hooks of :meth:`Family.run`)."""

    overflow_ok = True  # decode under np.errstate(over/invalid="ignore"): a diverged run may hold huge values

    def problems(self, args: dict[str, Any]) -> Problems:
        raise NotImplementedError

    def batch(self, opts: dict[str, Any], runs: dict[str, list], problems: Problems) -> Any:
        """The batch's state (core options, targets; cross-checks of the arguments)."""
        raise NotImplementedError

    def core_runs(self, K: int, runs: dict[str, list], problems: Problems, batch: Any) -> Any:
        """The K runs as the core takes them (one object for the batch: columns of per-run values)."""
        raise NotImplementedError

    def call(self, problems: Problems, core_runs: Any, batch: Any) -> Any:
        """The core call: its ``RunRecords``, in the order of the runs."""
        raise NotImplementedError

    def decode(self, records: _batch.Decoded, runs: dict[str, list], problems: Problems, batch: Any) -> list:
        """The K results, in the order of the runs."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Family:
    """A model family as a sweep (or any caller) sees it.

    Attributes
    ----------
    name : str
        ``"diagonal"``, ``"steepest"`` or ``"factorization"``.
    fit, fit_many : callable
        One run / a batch (same signature; ``fit`` takes one value per argument).
    data : tuple of str
        The data arguments (the problem: arrays, shapes, ground truth); not parameters.
    params : dict of str to Param
        Every other argument of ``fit_many``, in signature order.
    """

    name: str
    fit: Callable[..., Any]
    fit_many: Callable[..., list]
    data: tuple[str, ...]
    params: dict[str, Param]
    _adapter: Adapter = field(repr=False)

    @functools.cached_property
    def per_run(self) -> dict[str, Param]:
        """The arguments that may differ between the runs of one ``fit_many`` call."""
        return {n: p for n, p in self.params.items() if p.per_run}

    @functools.cached_property
    def options(self) -> dict[str, Param]:
        """The batch-wide arguments (one value for the whole call)."""
        return {n: p for n, p in self.params.items() if not p.per_run}

    @classmethod
    def declare(cls, name: str, fit: Callable[..., Any], fit_many: Callable[..., list], data: tuple[str, ...],
                params: list[Param], adapter: Adapter) -> Family:
        """A family from its functions and the declarations of their arguments (defaults from the
        signature; ``fit`` and ``fit_many`` must agree, and every argument must be declared)."""
        sig = inspect.signature(fit_many)
        if [(p.name, p.kind, p.default) for p in sig.parameters.values()] != \
                [(p.name, p.kind, p.default) for p in inspect.signature(fit).parameters.values()]:
            raise TypeError(f"{name}: fit and fit_many must have the same parameters and defaults")
        declared = {p.name: p for p in params}
        undeclared = set(sig.parameters) - set(data) - set(declared)
        if undeclared or set(declared) - set(sig.parameters):
            raise TypeError(f"{name}: undeclared {sorted(undeclared)} or unknown "
                            f"{sorted(set(declared) - set(sig.parameters))} parameters")
        ordered = {n: _with_default(declared[n], sig.parameters[n].default) for n in sig.parameters if n in declared}
        return cls(name, fit, fit_many, data, ordered, adapter)

    # ------------------------------------------------------------------ the one batch assembly
    def run(self, args: dict[str, Any], single: bool = False) -> list:
        """``fit_many`` of this family: ``args`` holds every argument of its signature (``single``: one
        run, each per-run argument one value)."""
        ad = self._adapter
        opts = self._checked_options(args)
        problems = ad.problems(args)
        K, runs = _batch.broadcast(args, self.per_run, problems.run_problem, single)
        batch = ad.batch(opts, runs, problems)
        records = _batch.Decoded(ad.call(problems, ad.core_runs(K, runs, problems, batch), batch))
        if not ad.overflow_ok:
            return ad.decode(records, runs, problems, batch)
        with np.errstate(over="ignore", invalid="ignore"):
            return ad.decode(records, runs, problems, batch)

    def run_one(self, args: dict[str, Any]) -> Any:
        """``fit`` of this family: one run of ``fit_many``, each per-run argument taken as that run's value
        (so a vector ``init_scale`` or a list of layers stays one value); a list for a scalar one is refused."""
        for name in self._scalar_per_run:
            if isinstance(args[name], list):
                raise ValueError(f"{name} must be a single value in fit (use fit_many for lists)")
        return self.run(args, single=True)[0]

    @functools.cached_property
    def _scalar_per_run(self) -> tuple[str, ...]:
        return tuple(n for n, p in self.per_run.items() if not p.vector)

    @functools.cached_property
    def _option_names(self) -> tuple[str, ...]:
        return tuple(self.options)

    def _checked_options(self, args: dict[str, Any]) -> dict[str, Any]:
        """The batch-wide arguments, checked (memoized on their values and types when hashable: users
        call ``fit`` in loops with the same options)."""
        names = self._option_names
        values = tuple(map(args.__getitem__, names))
        try:
            return dict(_checked_cached(self, names, values, tuple(map(type, values))))
        except TypeError:  # an unhashable value (an array, a list)
            return _check_all(self, names, values)


def _with_default(p: Param, default: Any) -> Param:
    checked = _batch.UNCHECKED if p.check is None else p.check(default, p.name)
    return Param(p.name, p.check, p.types, p.per_run, p.choices, p.vector, p.one_array, default, checked)


def _check_all(family: Family, names: tuple[str, ...], values: tuple) -> dict[str, Any]:
    out = {}
    for n, v in zip(names, values):
        check = family.params[n].check
        out[n] = v if check is None else check(v, n)
    return out


@functools.lru_cache(maxsize=128)
def _checked_cached(family: Family, names: tuple[str, ...], values: tuple, types: tuple) -> dict[str, Any]:
    """``types`` is part of the key: ``True == 1`` but a bool is not a count."""
    return _check_all(family, names, values)
