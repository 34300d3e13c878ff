"""What a sweep computes for each family: one chunk's fit call, its reference columns and its rows.

One chunk is one problem (drawn once from the generator with the run's seed),
its reference solutions (computed once), one batched ``fit_many`` call over
the chunk's runs, and one row per run: the run's ``to_row()`` and the
reference columns (docs/sweeps.md, "Columns").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import data, factorization, hessian, reference
from ._adapters import DECLARATIONS, VECTOR, Declaration, fit_parameters

NAN = float("nan")
Columns = Callable[[Any, dict[str, Any]], dict[str, Any]]  # (result, its to_row()) -> the reference columns
ChunkFit = Callable[[Any, Any, list[dict[str, Any]], int | None], tuple[list, Columns]]


@dataclass(frozen=True)
class Family:
    """A family's sweep adapter: its declaration, the chunk's fit and reference columns, its parameters."""

    name: str
    declaration: Declaration
    fit: ChunkFit  # (spec, problem, runs, num_threads) -> (results, their reference columns)
    params: Callable[[Any], np.ndarray]  # a result's final parameters as one vector (run.save_params)
    references_need: tuple[str, str] | None = None  # (module, pip extra) the references import

    @property
    def generators(self) -> dict[str, Callable[..., Any]]:
        return self.declaration.generators

    @property
    def per_run(self) -> frozenset:
        return frozenset(self.declaration.per_run)

    def fit_params(self) -> dict[str, Any]:
        """The ``[fit]`` keys and a prototype of their type (``_adapters.fit_parameters``)."""
        return fit_parameters(self.declaration)

    def value(self, name: str, value: Any) -> Any:
        """A spec value as fit_many takes it: ``"none"`` is None, a vector argument an array."""
        if name in self.declaration.vectors:
            return np.asarray(value, dtype=np.float64)
        return None if value == "none" and name == "weight_norm" else value

    def check_value(self, name: str, value: Any) -> None:
        """Check one fit value as fit_many will (the per-run checks, the choices of batch-wide arguments)."""
        value = self.value(name, value)
        choices = self.declaration.choices
        if name in choices and value is not None and value not in choices[name]:  # None: fit_many's own check
            raise ValueError(f"must be one of {choices[name]}, got {value!r}")
        check = getattr(self.declaration.per_run.get(name), "check", None)
        if check is not None:
            check(value, name)

    def rows(self, spec: Any, runs: list[dict[str, Any]], num_threads: int | None) -> list[dict[str, Any]]:
        """The chunk's rows: the run's coordinates, ``to_row()``, the reference columns, and the
        final parameters and history channels when the spec asks for them."""
        gen_kwargs, _ = spec.settings(runs[0])
        gen = self.generators[spec.spec["problem"]["generator"]]
        problem = gen(**{k: tuple(v) if isinstance(v, list) else v for k, v in gen_kwargs.items()},
                      seed=runs[0]["seed"])
        results, columns = self.fit(spec, problem, runs, num_threads)
        save, channels = spec.spec["run"]["save_params"], spec.spec["run"]["history"]
        rows = []
        for run, r in zip(runs, results):
            row = {**run, **r.to_row()}
            row.update(columns(r, row))
            if save:
                row["params"] = np.asarray(self.params(r), dtype=np.float64).tolist()
            for c in channels:
                row[f"history.{c}"] = r.history[c].tolist() if c in r.history else None
            rows.append(row)
        return rows


def _fit_many(spec: Any, runs: list[dict[str, Any]], num_threads: int | None, **data_args: Any) -> list:
    """One batched fit_many call: per-run arguments as lists, batch-wide ones once."""
    fam = FAMILIES[spec.family]
    fits = [spec.settings(r)[1] for r in runs]
    kwargs: dict[str, Any] = {}
    for name in fits[0]:
        values = [fam.value(name, f[name]) for f in fits]
        kwargs[name] = values if name in fam.per_run else values[0]
    return fam.declaration.fit_many(**data_args, **kwargs, num_threads=num_threads)


def _or_none(solve: Callable[..., Any], *args: Any) -> Any:
    """``solve(*args)``, a reference solution, or None when it does not exist for this problem (it raises)."""
    try:
        return solve(*args)
    except (ValueError, RuntimeError):
        return None


# --------------------------------------------------------------------------- diagonal
def _diagonal(spec: Any, p: Any, runs: list[dict[str, Any]], num_threads: int | None) -> tuple[list, Columns]:
    results = _fit_many(spec, runs, num_threads, A=p.A, y=p.y, x_star=p.x_star)
    refs = spec.spec["run"]["references"]
    nonneg = bool(results[0].nonnegative)
    x_bp = _or_none(reference.basis_pursuit, p.A, p.y, None, nonneg) if refs else None
    limits: dict[tuple[float, int], Any] = {}
    norm_star = float(np.linalg.norm(p.x_star))

    def columns(r: Any, row: dict[str, Any]) -> dict[str, Any]:
        error = float(np.linalg.norm(r.x - p.x_star))
        cols = {"error": error, "relative_error": error / norm_star if norm_star > 0 else NAN,
                "bp_distance": NAN, "bp_error": NAN, "bp_relative_error": NAN, "flow_limit_distance": NAN}
        if x_bp is not None:
            cols["bp_distance"] = float(np.linalg.norm(r.x - x_bp))
            cols["bp_error"] = float(np.linalg.norm(x_bp - p.x_star))
            cols["bp_relative_error"] = cols["bp_error"] / norm_star if norm_star > 0 else NAN
        if refs and r.weight_norm is None and np.all(r.init_scale == r.init_scale[0]):
            key = (float(r.init_scale[0]), r.depth)
            if key not in limits:
                limits[key] = _or_none(reference.diagonal_flow_limit, p.A, p.y, key[0], key[1], nonneg)
            if limits[key] is not None:
                cols["flow_limit_distance"] = float(np.linalg.norm(r.x - limits[key]))
        cols.update(_effective_columns(r, p, x_bp if refs else None))
        return cols

    return results, columns


def _effective_columns(r: Any, p: Any, x_bp: Any) -> dict[str, float]:
    """The columns of a run's effective-initialization bookkeeping (docs/dynamics.md), NaN without it:
    ``alpha_gain = ||log(init_scale / alpha_eff)||_1`` and, with the references, the limit the bookkeeping
    predicts, ``x_eff = reference.diagonal_flow_limit(A, y, alpha_eff, log_alpha_ratio=...)``:
    ``effective_limit_distance = ||x - x_eff||_2`` and ``effective_limit_bp_distance = ||x_eff - x_bp||_2``."""
    cols = {"alpha_gain": NAN, "effective_limit_distance": NAN, "effective_limit_bp_distance": NAN}
    if r.step_sum is None or r.depth != 2 or r.status == "diverged":
        return cols
    a = r.alpha_eff()
    with np.errstate(divide="ignore"):
        cols["alpha_gain"] = float(np.abs(np.log(r.init_scale / a)).sum())
    if x_bp is None:
        return cols
    x_eff = _or_none(lambda: reference.diagonal_flow_limit(p.A, p.y, a, 2, bool(r.nonnegative),
                                                           log_alpha_ratio=r.log_alpha_ratio()))
    if x_eff is not None:
        cols["effective_limit_distance"] = float(np.linalg.norm(r.x - x_eff))
        cols["effective_limit_bp_distance"] = float(np.linalg.norm(x_eff - x_bp))
    return cols


# --------------------------------------------------------------------------- steepest
_MARGIN_NORMS = ("l2", "linf", "l1")


def _max_margins(X: np.ndarray, y: np.ndarray, model: str) -> dict[str, float]:
    """The optimal margin per parameter norm (NaN where the reference does not apply)."""
    out = dict.fromkeys(_MARGIN_NORMS, NAN)
    if model == "linear":
        for n in _MARGIN_NORMS:
            m = _or_none(reference.max_margin, X, y, n)
            out[n] = NAN if m is None else float(m.margin)
    elif model == "diagonal":  # predictor l1 LP <-> parameter l2 norm, predictor linf <-> parameter linf
        for n, pred in (("l2", "l1"), ("linf", "linf")):
            m = _or_none(reference.diagonal_max_margin, X, y, pred)
            out[n] = NAN if m is None else float(m.margin)
    return out


def _steepest(spec: Any, p: Any, runs: list[dict[str, Any]], num_threads: int | None) -> tuple[list, Columns]:
    results = _fit_many(spec, runs, num_threads, X=p.X, y=p.y, seed=[r["seed"] for r in runs])
    refs: dict[str, dict[str, float]] = {}

    def columns(r: Any, row: dict[str, Any]) -> dict[str, Any]:
        if spec.spec["run"]["references"] and r.model not in refs:
            refs[r.model] = _max_margins(p.X, p.y, r.model)
        best = refs.get(r.model, dict.fromkeys(_MARGIN_NORMS, NAN))
        cols = {f"margin_ratio_{n}": row[f"margin_{n}"] / best[n] for n in _MARGIN_NORMS}
        own = r.norm if isinstance(r.norm, str) and r.norm in _MARGIN_NORMS else None
        cols["margin_ratio"] = cols[f"margin_ratio_{own}"] if own else NAN
        return cols

    return results, columns


# --------------------------------------------------------------------------- factorization
def _factorization(spec: Any, p: Any, runs: list[dict[str, Any]], num_threads: int | None) -> tuple[list, Columns]:
    if isinstance(p, data.Regression):  # deep linear regression: no convex reference (NaN columns)
        return _regression(spec, p, runs, num_threads)
    shape = p.shape if p.kind == "completion" else None
    op = factorization.sensing_operator(p.A, shape)
    results = _fit_many(spec, runs, num_threads, A=op, y=p.y, M_star=p.M_star, seed=[r["seed"] for r in runs])
    X = reference.min_nuclear_norm(p.A, p.y, shape) if spec.spec["run"]["references"] else None
    x_norm = float(np.linalg.svd(X, compute_uv=False).sum()) if X is not None else NAN
    cvx_error = float(np.linalg.norm(X - p.M_star) / np.linalg.norm(p.M_star)) if X is not None else NAN

    def columns(r: Any, row: dict[str, Any]) -> dict[str, Any]:
        cols = {"nuclear_cvx": x_norm, "cvx_error": cvx_error,
                "nuclear_ratio": r.nuclear_norm / x_norm if x_norm > 0 else NAN, "nuclear_distance": NAN,
                "bound": hessian.proxy_bound(r.product, r.depth), "proxy": hessian.proxy(r.layers)}
        if X is not None and math.isfinite(x_norm):
            cols["nuclear_distance"] = float(np.linalg.norm(r.product - X) / np.linalg.norm(X))
        return cols

    return results, columns


def _regression(spec: Any, p: Any, runs: list[dict[str, Any]], num_threads: int | None) -> tuple[list, Columns]:
    """Regression data (``whitened_regression``): ``error`` against the planted map ``A_true``; the
    minimum-nuclear-norm columns are NaN (no convex reference), ``bound`` and ``proxy`` as for sensing."""
    op = factorization.regression_operator(p.X, p.Y)
    results = _fit_many(spec, runs, num_threads, A=op, y=None, M_star=p.A_true, seed=[r["seed"] for r in runs])

    def columns(r: Any, row: dict[str, Any]) -> dict[str, Any]:
        return {"nuclear_cvx": NAN, "cvx_error": NAN, "nuclear_ratio": NAN, "nuclear_distance": NAN,
                "bound": hessian.proxy_bound(r.product, r.depth), "proxy": hessian.proxy(r.layers)}

    return results, columns


FAMILIES: dict[str, Family] = {
    "diagonal": Family("diagonal", DECLARATIONS["diagonal"], _diagonal,
                       lambda r: np.concatenate([r.u] + ([] if r.v is None else [r.v]))),
    "steepest": Family("steepest", DECLARATIONS["steepest"], _steepest, lambda r: r.theta),
    "factorization": Family("factorization", DECLARATIONS["factorization"], _factorization,
                            lambda r: factorization.pack(r.layers)[1],
                            references_need=("cvxpy", "implicitbias[nuclear]")),
}
__all__ = ["FAMILIES", "VECTOR", "Family"]
