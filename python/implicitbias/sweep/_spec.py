"""The sweep spec: parsing, validation, expansion into runs and chunks, and its hash.

A spec is a dict (or a TOML file with the same keys, see docs/sweeps.md)::

    family = "diagonal"                 # diagonal | steepest | factorization
    seeds = 10                          # an int n (seeds 0..n-1) or a list of ints
    [problem]                           # a generator of implicitbias.data and its fixed arguments
    generator = "sparse_regression"
    [fit]                               # fixed keyword arguments of the family's fit_many
    [grid]                              # axes "problem.KEY" / "fit.KEY": their product
    [zip]                               # keys varied together (or [[zip]]: several groups)
    [run]                               # chunk_size, references, save_params, history

Everything is checked here, before any run starts; errors name the key and
list the valid ones.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import itertools
import json
import math
import numbers
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _families
from ._adapters import parameters

FORMAT = 2  # 2: the hash covers the defaults of the fit arguments a spec leaves out
TOP_KEYS = ("family", "seeds", "problem", "fit", "grid", "zip", "run")
RUN_KEYS: dict[str, Any] = {"chunk_size": None, "references": True, "save_params": False, "history": []}
AXIS_FORMS = ("logspace", "linspace")


class SpecError(ValueError):
    """An invalid sweep spec (the message names the key and the valid choices)."""


def _fail(key: str, problem: str, valid: Any = None) -> SpecError:
    extra = f"; valid: {', '.join(map(str, valid))}" if valid is not None else ""
    return SpecError(f"sweep spec, {key}: {problem}{extra}")


# --------------------------------------------------------------------------- reading
def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The spec in a TOML file (``tomllib`` on Python 3.11+, ``tomli`` before)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - depends on the interpreter
        import tomli as tomllib
    with open(path, "rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"sweep spec {os.fspath(path)!r} is not valid TOML: {exc}") from None


def _axis_values(key: str, value: Any) -> list:
    """An axis as a list: a list, or ``{logspace = [a, b, n]}`` (10**a .. 10**b) / ``{linspace = [a, b, n]}``."""
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in AXIS_FORMS:
            raise _fail(key, f"an axis table must have exactly one key, got {sorted(value)}", AXIS_FORMS)
        form, args = next(iter(value.items()))
        ok = isinstance(args, list) and len(args) == 3 and all(_real(a) for a in args[:2])
        if not ok or not isinstance(args[2], int) or isinstance(args[2], bool) or args[2] < 1:
            raise _fail(key, f"{form} takes [start, stop, n] with real start, stop and an int n >= 1, got {args!r}")
        a, b, n = float(args[0]), float(args[1]), int(args[2])
        pts = np.logspace(a, b, n) if form == "logspace" else np.linspace(a, b, n)
        return [float(p) for p in pts]
    if not isinstance(value, list):
        raise _fail(key, f"an axis must be a list of values or a {{logspace|linspace = [a, b, n]}} table, "
                    f"got {value!r}")
    if not value:
        raise _fail(key, "an axis must not be empty")
    return list(value)


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


# --------------------------------------------------------------------------- checking values
def _check_value(key: str, value: Any, default: Any) -> Any:
    """A TOML scalar checked against the type of the parameter's default (int for an int default, etc.);
    a vector argument takes a list of numbers or a ``{logspace|linspace = [a, b, n]}`` table."""
    if default is _families.VECTOR:
        values = _axis_values(key, value) if isinstance(value, dict) else value
        if not isinstance(values, list) or not values or not all(_real(v) for v in values):
            raise _fail(key, f"must be a non-empty list of numbers or a {{logspace|linspace = [a, b, n]}} table, "
                        f"got {value!r}")
        return [float(v) for v in values]
    if isinstance(default, list):  # a list of strings (run.history)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(key, f"must be a list of strings, got {value!r}")
        return list(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or len(value) != len(default) or not all(_real(v) for v in value):
            raise _fail(key, f"must be a list of {len(default)} numbers, got {value!r}")
        return list(value)
    if isinstance(value, (list, dict)):
        raise _fail(key, f"must be a single value, got {value!r} (vary it with [grid] or [zip])")
    if isinstance(default, bool) or isinstance(value, bool):
        if not (isinstance(default, bool) or default is None) or not isinstance(value, bool):
            raise _fail(key, f"must be {'a bool' if isinstance(default, bool) else 'a number or string'}, "
                        f"got {value!r}")
        return value
    if isinstance(default, numbers.Integral) and not isinstance(value, numbers.Integral):
        raise _fail(key, f"must be an int, got {value!r}")
    if isinstance(default, numbers.Real) and not _real(value):
        raise _fail(key, f"must be a finite number, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        raise _fail(key, f"must be a string, got {value!r}")
    if default is None and not (isinstance(value, str) or _real(value)):
        raise _fail(key, f"must be a number or a string, got {value!r}")
    return float(value) if isinstance(default, float) and isinstance(value, numbers.Integral) else value


# --------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class Spec:
    """A checked spec: the normalized dict (``spec``), its hash, the axes and the chunks.

    ``axes`` is a list of groups; a group is a list of (key, values) that vary
    together (one key for a [grid] axis, several for a [zip] group). Runs are
    numbered in the order of ``itertools.product(*groups, seeds)``.
    """

    spec: dict[str, Any]
    hash: str
    axes: list[list[tuple[str, list]]]

    @property
    def family(self) -> str:
        return str(self.spec["family"])

    @property
    def seeds(self) -> list[int]:
        return list(self.spec["seeds"])

    @property
    def columns(self) -> list[str]:
        """The grid coordinates' column names (``problem.KEY`` / ``fit.KEY``), in axis order."""
        return [k for group in self.axes for k, _ in group]

    def runs(self) -> list[dict[str, Any]]:
        """Every run as ``{"run_id", "seed", coordinate columns...}``, in run-id order."""
        out = []
        for rid, (*points, seed) in enumerate(itertools.product(*[range(len(g[0][1])) for g in self.axes],
                                                                 self.seeds)):
            row: dict[str, Any] = {"run_id": rid, "seed": seed}
            for group, i in zip(self.axes, points):
                row.update({k: values[i] for k, values in group})
            out.append(row)
        return out

    def chunks(self) -> list[list[dict[str, Any]]]:
        """The runs grouped into chunks: runs sharing the problem (problem keys and seed) and the
        batch-wide fit arguments, in order of first appearance, cut into pieces of at most
        ``run.chunk_size`` runs. Depends on the spec alone (so do the numbers, see docs/sweeps.md)."""
        per_run = _families.FAMILIES[self.family].per_run
        groups: dict[Any, list[dict[str, Any]]] = {}
        for r in self.runs():
            key = (r["seed"],) + tuple(json.dumps(r[c]) for c in self.columns
                                       if c.startswith("problem.") or c[4:] not in per_run)
            groups.setdefault(key, []).append(r)
        size = self.spec["run"]["chunk_size"]
        out = []
        for runs in groups.values():
            step = size or len(runs)
            out += [runs[i:i + step] for i in range(0, len(runs), step)]
        return out

    def settings(self, run: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(generator kwargs, fit kwargs) of one run: the fixed values updated by its coordinates."""
        problem = {k: v for k, v in self.spec["problem"].items() if k != "generator"}
        fit = dict(self.spec["fit"])
        for c in self.columns:
            section, name = c.split(".", 1)
            (problem if section == "problem" else fit)[name] = run[c]
        return problem, fit


def check(spec: dict[str, Any] | Spec) -> Spec:
    """Validate a spec dict (see the module docstring) and return the :class:`Spec`."""
    if isinstance(spec, Spec):
        return spec
    if not isinstance(spec, dict):
        raise SpecError(f"a sweep spec must be a dict (or a TOML file), got {type(spec).__name__}")
    spec = copy.deepcopy(spec)
    unknown = sorted(set(spec) - set(TOP_KEYS))
    if unknown:
        raise _fail(unknown[0], "unknown key", TOP_KEYS)
    family = spec.get("family")
    if family not in _families.FAMILIES:
        raise _fail("family", f"got {family!r}", sorted(_families.FAMILIES))
    fam = _families.FAMILIES[family]
    seeds = _check_seeds(spec.get("seeds", 1))
    problem, gen_params = _check_problem(spec.get("problem"), fam)
    fit_params = fam.fit_params()
    fit = _check_section("fit", spec.get("fit", {}), fit_params)
    run = _check_section("run", spec.get("run", {}), RUN_KEYS)
    if run["chunk_size"] is not None and (not isinstance(run["chunk_size"], int) or run["chunk_size"] < 1):
        raise _fail("run.chunk_size", f"must be an int >= 1, got {run['chunk_size']!r}")
    channels = fam.declaration.history
    for c in run["history"]:
        if c not in channels:
            raise _fail("run.history", f"{c!r} is not a recorded channel of this family", channels)
    valid = {f"problem.{k}": d for k, d in gen_params.items()} | {f"fit.{k}": d for k, d in fit_params.items()}
    axes = _check_axes(spec.get("grid", {}), spec.get("zip", []), valid)
    varied = {key for group in axes for key, _ in group}
    for key in varied:
        section, name = key.split(".", 1)
        if name in (problem if section == "problem" else fit):
            raise _fail(key, f"is both fixed in [{section}] and varied in the grid")
    gen = fam.generators[problem["generator"]]
    for p in inspect.signature(gen).parameters.values():
        if p.default is inspect.Parameter.empty and p.name != "seed" and p.name not in problem \
                and f"problem.{p.name}" not in varied:
            raise _fail(f"problem.{p.name}", f"is required by {problem['generator']} (fix it in [problem] or vary "
                        "it in the grid)")
    fit_values = [(f"fit.{k}", v) for k, v in fit.items()]
    fit_values += [(k, v) for group in axes for k, values in group if k.startswith("fit.") for v in values]
    for key, value in fit_values:
        try:
            fam.check_value(key[4:], value)
        except ValueError as exc:
            raise _fail(key, str(exc).removeprefix(f"{key[4:]} ")) from None
    normalized = {"format": FORMAT, "family": family, "seeds": seeds, "problem": problem, "fit": fit,
                  "axes": [[[k, v] for k, v in group] for group in axes], "run": run}
    need = fam.references_need
    if need and run["references"]:
        try:
            importlib.import_module(need[0])
        except ImportError:
            raise _fail("run.references", f"the references of this family need {need[0]} (pip install "
                        f"'{need[1]}'), or set references = false") from None
    # the hash covers what the runs are given, not only what the spec wrote: every fit argument the spec
    # leaves out enters with the family's current default (a release that changes a default changes the hash)
    resolved = {k: _jsonable(p.default) for k, p in fam.declaration.family.params.items()
                if k not in fam.declaration.data_args and f"fit.{k}" not in varied}
    resolved.update(fit)
    text = json.dumps({**normalized, "fit": resolved}, sort_keys=True, separators=(",", ":"))
    return Spec(spec=normalized, hash=hashlib.sha256(text.encode()).hexdigest(), axes=axes)


def _jsonable(value: Any) -> Any:
    """A default as JSON can hash it (arrays and tuples as lists, other objects by their repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_jsonable(v) for v in np.asarray(value, dtype=object).ravel().tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise _fail("seeds", f"an int number of seeds must be >= 1, got {seeds}")
        return list(range(seeds))
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise _fail("seeds", f"must be an int >= 1 or a non-empty list of ints >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise _fail("seeds", f"has repeated seeds: {seeds!r}")
    return list(seeds)


def _check_problem(problem: Any, fam: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(problem, dict) or "generator" not in problem:
        raise _fail("problem.generator", "is required", sorted(fam.generators))
    name = problem["generator"]
    if name not in fam.generators:
        raise _fail("problem.generator", f"{name!r} is not a generator of this family", sorted(fam.generators))
    params = parameters(fam.generators[name], ("seed",))
    fixed = _check_section("problem", {k: v for k, v in problem.items() if k != "generator"}, params, fill=False)
    return {"generator": name, **fixed}, params


def _check_section(section: str, values: Any, params: dict[str, Any], fill: bool = True) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise _fail(section, f"must be a table of keys, got {values!r}")
    out = dict(params) if fill and section == "run" else {}
    for k, v in values.items():
        if k not in params:
            raise _fail(f"{section}.{k}", "unknown key", sorted(params))
        out[k] = _check_value(f"{section}.{k}", v, params[k])
    return out


def _check_axes(grid: Any, zips: Any, valid: dict[str, Any]) -> list[list[tuple[str, list]]]:
    if not isinstance(grid, dict):
        raise _fail("grid", f"must be a table of axes, got {grid!r}")
    groups = [{k: v} for k, v in grid.items()]
    zips = [zips] if isinstance(zips, dict) else zips
    if not isinstance(zips, list) or not all(isinstance(z, dict) and z for z in zips):
        raise _fail("zip", "must be a table (or a list of tables) of axes varied together")
    axes, seen = [], set()
    for group in groups + zips:
        checked = []
        for key, value in group.items():
            if key not in valid:
                raise _fail(f"grid.{key}" if group in groups else f"zip.{key}", "unknown axis", sorted(valid))
            if key in seen:
                raise _fail(key, "is varied twice")
            seen.add(key)
            checked.append((key, [_check_value(key, v, valid[key]) for v in _axis_values(key, value)]))
        lengths = {k: len(v) for k, v in checked}
        if len(set(lengths.values())) > 1:
            raise _fail("zip", f"axes varied together must have equal lengths, got {lengths}")
        axes.append(checked)
    if not axes:
        raise _fail("grid", "is empty: give at least one axis (a list of one value is an axis)", sorted(valid))
    return axes
