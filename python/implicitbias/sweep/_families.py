"""What a sweep needs to know about each family: generators, the fit call of one chunk, its rows.

One chunk is one problem (drawn once from the generator with the run's seed),
its reference solutions (computed once), one batched ``fit_many`` call over
the chunk's runs, and one row per run (columns: docs/sweeps.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import data, diagonal, factorization, reference, steepest

NAN = float("nan")


@dataclass(frozen=True)
class Family:
    """A family's sweep adapter."""

    fit_many: Callable[..., list]
    generators: dict[str, Callable[..., Any]]
    data_args: tuple[str, ...]  # fit_many arguments the sweep fills in (never in a spec)
    per_run: frozenset  # fit_many arguments that may differ between the runs of one call
    chunk: Callable[..., list[dict[str, Any]]]  # (spec, runs, num_threads) -> rows
    values: Callable[[str, Any], Any] = lambda name, value: value  # spec value -> fit_many value
    per_run_checks: dict[str, Any] = field(default_factory=dict)  # the family's PerRun declarations
    choices: dict[str, tuple] = field(default_factory=dict)  # batch-wide string arguments and their choices

    def check_value(self, name: str, value: Any) -> None:
        """Check one fit value as fit_many will (the per-run checks, the choices of batch-wide arguments)."""
        value = self.values(name, value)
        if name in self.choices and value not in self.choices[name]:
            raise ValueError(f"must be one of {self.choices[name]}, got {value!r}")
        check = getattr(self.per_run_checks.get(name), "check", None)
        if check is not None:
            check(value, name)

    def check_extra(self, spec: dict[str, Any]) -> None:
        """Family-specific checks of a normalized spec: the references' optional dependency."""
        if self is FAMILIES["factorization"] and spec["run"]["references"]:
            try:
                import cvxpy  # noqa: F401
            except ImportError:
                from ._spec import SpecError
                raise SpecError("sweep spec, run.references: the minimum nuclear norm needs cvxpy "
                                "(pip install 'implicitbias[nuclear]'), or set references = false") from None


def _fit(fam: Family, spec: Any, runs: list[dict[str, Any]], num_threads: int | None, **data_args: Any) -> list:
    """One batched fit_many call: per-run arguments as lists, batch-wide ones once."""
    fits = [spec.settings(r)[1] for r in runs]
    kwargs: dict[str, Any] = {}
    for name in fits[0]:
        values = [fam.values(name, f[name]) for f in fits]
        kwargs[name] = values if name in fam.per_run else values[0]
    return fam.fit_many(**data_args, **kwargs, num_threads=num_threads)


def _problem(spec: Any, run: dict[str, Any]) -> Any:
    gen_kwargs, _ = spec.settings(run)
    gen = FAMILIES[spec.family].generators[spec.spec["problem"]["generator"]]
    return gen(**{k: tuple(v) if isinstance(v, list) else v for k, v in gen_kwargs.items()}, seed=run["seed"])


def _base(r: Any) -> dict[str, Any]:
    return {"status": r.status, "success": bool(r.success), "n_steps": r.n_steps, "n_grad_evals": r.n_grad_evals,
            "t_final": r.t_final, "wall_time": r.wall_time}


def _params(values: np.ndarray, save: bool) -> dict[str, Any]:
    return {"params": np.asarray(values, dtype=np.float64).tolist()} if save else {}


def _or_none(solve: Callable[..., Any], *args: Any) -> Any:
    """``solve(*args)``, a reference solution, or None when it does not exist for this problem (it raises)."""
    try:
        return solve(*args)
    except (ValueError, RuntimeError):
        return None


# --------------------------------------------------------------------------- diagonal
def _diagonal_chunk(spec: Any, runs: list[dict[str, Any]], num_threads: int | None) -> list[dict[str, Any]]:
    p = _problem(spec, runs[0])
    results = _fit(FAMILIES["diagonal"], spec, runs, num_threads, A=p.A, y=p.y, x_star=p.x_star)
    refs = spec.spec["run"]["references"]
    nonneg = bool(results[0].nonnegative)
    x_bp = _or_none(reference.basis_pursuit, p.A, p.y, None, nonneg) if refs else None
    limits: dict[tuple[float, int], Any] = {}
    norm_star = float(np.linalg.norm(p.x_star))
    rows = []
    for run, r in zip(runs, results):
        error = float(np.linalg.norm(r.x - p.x_star))
        row = {**run, **_base(r), "loss": r.loss, "n_rejected": r.n_rejected,
               "radius": r.radius if isinstance(r.radius, float) else NAN,
               "radius_u": r.radius[0] if isinstance(r.radius, tuple) else NAN,
               "radius_v": r.radius[1] if isinstance(r.radius, tuple) else NAN,
               "alpha_eff": NAN if r.weight_norm == "separate" and not nonneg else float(r.alpha_eff()[0]),
               "error": error, "relative_error": error / norm_star if norm_star > 0 else NAN,
               "bp_distance": NAN, "bp_relative_error": NAN, "flow_limit_distance": NAN}
        if x_bp is not None:
            row["bp_distance"] = float(np.linalg.norm(r.x - x_bp))
            row["bp_relative_error"] = float(np.linalg.norm(x_bp - p.x_star)) / norm_star if norm_star > 0 else NAN
        if refs and r.weight_norm is None and np.all(r.init_scale == r.init_scale[0]):
            key = (float(r.init_scale[0]), r.depth)
            if key not in limits:
                limits[key] = _or_none(reference.diagonal_flow_limit, p.A, p.y, key[0], key[1], nonneg)
            if limits[key] is not None:
                row["flow_limit_distance"] = float(np.linalg.norm(r.x - limits[key]))
        row.update(_params(np.concatenate([r.u] + ([] if r.v is None else [r.v])), spec.spec["run"]["save_params"]))
        rows.append(row)
    return rows


def _diagonal_value(name: str, value: Any) -> Any:
    return None if name == "weight_norm" and value == "none" else value


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


def _steepest_chunk(spec: Any, runs: list[dict[str, Any]], num_threads: int | None) -> list[dict[str, Any]]:
    p = _problem(spec, runs[0])
    results = _fit(FAMILIES["steepest"], spec, runs, num_threads, X=p.X, y=p.y,
                   seed=[r["seed"] for r in runs])
    refs: dict[str, dict[str, float]] = {}
    rows = []
    for run, r in zip(runs, results):
        if spec.spec["run"]["references"] and r.model not in refs:
            refs[r.model] = _max_margins(p.X, p.y, r.model)
        best = refs.get(r.model, dict.fromkeys(_MARGIN_NORMS, NAN))
        row = {**run, **_base(r), "log_loss": r.log_loss, "accuracy": r.accuracy}
        with np.errstate(all="ignore"):
            for n in _MARGIN_NORMS:
                row[f"margin_{n}"] = r.margin(n)
                row[f"margin_ratio_{n}"] = row[f"margin_{n}"] / best[n]
        own = r.norm if isinstance(r.norm, str) and r.norm in _MARGIN_NORMS else None
        row["margin_ratio"] = row[f"margin_ratio_{own}"] if own else NAN
        row.update(_params(r.theta, spec.spec["run"]["save_params"]))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- factorization
def _factorization_chunk(spec: Any, runs: list[dict[str, Any]], num_threads: int | None) -> list[dict[str, Any]]:
    p = _problem(spec, runs[0])
    shape = p.shape if p.kind == "completion" else None
    op = factorization.sensing_operator(p.A, shape)
    results = _fit(FAMILIES["factorization"], spec, runs, num_threads, A=op, y=p.y, M_star=p.M_star,
                   seed=[r["seed"] for r in runs])
    X = reference.min_nuclear_norm(p.A, p.y, shape) if spec.spec["run"]["references"] else None
    x_norm = float(np.linalg.svd(X, compute_uv=False).sum()) if X is not None else NAN
    rows = []
    for run, r in zip(runs, results):
        row = {**run, **_base(r), "loss": r.loss, "trace": r.trace, "nuclear_norm": r.nuclear_norm,
               "effective_rank": r.effective_rank, "error": NAN if r.error is None else r.error,
               "strength": r.strength, "nuclear_ratio": r.nuclear_norm / x_norm if x_norm > 0 else NAN,
               "nuclear_distance": NAN}
        if X is not None and math.isfinite(x_norm):
            row["nuclear_distance"] = float(np.linalg.norm(r.product - X) / np.linalg.norm(X))
        row.update(_params(factorization.pack(r.layers)[1], spec.spec["run"]["save_params"]))
        rows.append(row)
    return rows


FAMILIES: dict[str, Family] = {
    "diagonal": Family(diagonal.fit_many, {"sparse_regression": data.sparse_regression},
                       ("A", "y", "x_star", "num_threads"), frozenset(diagonal._PER_RUN), _diagonal_chunk,
                       _diagonal_value, diagonal._PER_RUN,
                       {"method": diagonal._METHODS, "solver": tuple(s for s in diagonal._SOLVERS if s),
                        "gd_kernel": ("lanes", "generic")}),
    "steepest": Family(steepest.fit_many, {"separable": data.separable},
                       ("X", "y", "init", "seed", "num_threads"), frozenset(steepest._PER_RUN), _steepest_chunk,
                       per_run_checks=steepest._PER_RUN),
    "factorization": Family(factorization.fit_many, {"matrix_sensing": data.matrix_sensing},
                            ("A", "y", "shape", "M_star", "init_layers", "seed", "num_threads"),
                            frozenset(factorization._PER_RUN), _factorization_chunk,
                            per_run_checks=factorization._PER_RUN, choices={"init": factorization._INITS}),
}
