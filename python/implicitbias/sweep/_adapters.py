"""What the sweep reads from the families: their public declarations (``<family>.FAMILY``).

For each family: its ``fit_many``, the data generators a spec may name, the
``fit_many`` arguments the sweep fills in itself, the per-run parameters, the
choices of string arguments, and the arguments a spec may give as a vector; the
type of every argument comes from the family's :class:`implicitbias.Param`
(its default, else the first of its types). Every other sweep module goes
through :data:`DECLARATIONS`, :func:`fit_parameters` and :func:`parameters`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from .. import data, diagonal, factorization, steepest
from .._family import Family as _FamilyDeclaration

VECTOR = object()  # the type of an argument that takes a vector (a list of numbers in a spec)
_PROTOTYPES: dict[Any, Any] = {int: 0, float: 0.0, str: "", bool: False}
_PROTOTYPE_NAMES: dict[str, Any] = {"int": 0, "float": 0.0, "str": "", "bool": False}


@dataclass(frozen=True)
class Declaration:
    """A family as the sweep sees it."""

    family: _FamilyDeclaration
    generators: dict[str, Callable[..., Any]]
    filled: tuple[str, ...] = ()  # fit_many arguments beyond the data that the sweep fills in (never in a spec)
    vectors: frozenset = frozenset()  # arguments a spec may give as a vector
    history: tuple[str, ...] = ()  # the channels a run may record

    @property
    def fit_many(self) -> Callable[..., list]:
        return self.family.fit_many

    @property
    def data_args(self) -> tuple[str, ...]:
        return tuple(self.family.data) + self.filled + ("num_threads",)

    @property
    def per_run(self) -> dict[str, Any]:
        return dict(self.family.per_run)

    @property
    def choices(self) -> dict[str, tuple]:
        return {n: tuple(c for c in p.choices if c is not None)
                for n, p in self.family.params.items() if p.choices}


DECLARATIONS: dict[str, Declaration] = {
    "diagonal": Declaration(
        diagonal.FAMILY, {"sparse_regression": data.sparse_regression}, (), frozenset({"record_times"}),
        ("t", "loss", "n_grad_evals", "wall_time", "error", "radius", "radius_u", "radius_v", "x", "u", "v",
         "sharpness", "sharpness_residual", "sharpness_matvecs")),
    "steepest": Declaration(
        steepest.FAMILY, {"separable": data.separable, "digits_binary": data.digits_binary}, ("seed",),
        frozenset({"init"}),
        ("step", "t", "log_loss", "n_grad_evals", "wall_time", "accuracy", "margin_l2", "margin_linf",
         "margin_l1", "margin_spectral", "smoothed_margin", "alignment", "param_norm")),
    "factorization": Declaration(
        factorization.FAMILY, {"matrix_sensing": data.matrix_sensing, "whitened_regression": data.whitened_regression},
        ("init_layers", "seed"), frozenset(),
        ("t", "loss", "n_grad_evals", "wall_time", "trace", "nuclear_norm", "effective_rank", "error",
         "sharpness", "sharpness_residual", "sharpness_matvecs")),
}


def fit_parameters(decl: Declaration) -> dict[str, Any]:
    """The ``[fit]`` keys of a family and a prototype of their type: the declared default, else the first
    of the parameter's types (``int | None`` -> 0), :data:`VECTOR` for the vector arguments."""
    out: dict[str, Any] = {}
    for name, p in decl.family.params.items():
        if name in decl.data_args:
            continue
        if name in decl.vectors:
            out[name] = VECTOR
        elif p.default is not None:
            out[name] = p.default
        else:
            out[name] = next((_PROTOTYPES[t] for t in p.types if t in _PROTOTYPES), None)
    return out


def parameters(func: Callable[..., Any], exclude: tuple[str, ...]) -> dict[str, Any]:
    """Keyword parameters of a data generator ``func`` and a prototype of their type: the default, else the
    first alternative of the annotation (``"int | None"`` -> 0), None when unknown."""
    out: dict[str, Any] = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in exclude:
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        if default is None:
            default = _PROTOTYPE_NAMES.get(str(p.annotation).split("|")[0].strip())
        out[p.name] = default
    return out
