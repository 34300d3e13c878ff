"""What the sweep reads from the families: the one module that uses their private declarations.

For each family: its ``fit_many``, the data generators a spec may name, the
``fit_many`` arguments the sweep fills in itself, the per-run declarations
(``PerRun``), the choices of batch-wide string arguments and the arguments that
take a vector; and the types of the arguments (from their defaults, else from
the first alternative of their annotation). Every other sweep module goes
through :data:`DECLARATIONS` and :func:`parameters`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import data, diagonal, factorization, steepest

VECTOR = object()  # the type of an argument that takes a vector (a list of numbers in a spec)
_PROTOTYPES: dict[str, Any] = {"int": 0, "float": 0.0, "str": "", "bool": False}


@dataclass(frozen=True)
class Declaration:
    """A family as the sweep sees it."""

    fit_many: Callable[..., list]
    generators: dict[str, Callable[..., Any]]
    data_args: tuple[str, ...]  # fit_many arguments the sweep fills in (never in a spec)
    per_run: dict[str, Any]  # fit_many arguments that may differ between the runs of one call (PerRun)
    choices: dict[str, tuple] = field(default_factory=dict)  # batch-wide string arguments and their choices
    vectors: frozenset = frozenset()  # arguments that take a vector
    history: tuple[str, ...] = ()  # the channels a run may record


DECLARATIONS: dict[str, Declaration] = {
    "diagonal": Declaration(
        diagonal.fit_many, {"sparse_regression": data.sparse_regression}, ("A", "y", "x_star", "num_threads"),
        diagonal._PER_RUN, {"method": diagonal._METHODS, "solver": tuple(s for s in diagonal._SOLVERS if s),
                            "gd_kernel": ("lanes", "generic")},
        frozenset({"record_times"}),
        ("t", "loss", "n_grad_evals", "wall_time", "error", "radius", "radius_u", "radius_v")),
    "steepest": Declaration(
        steepest.fit_many, {"separable": data.separable, "digits_binary": data.digits_binary},
        ("X", "y", "seed", "num_threads"), steepest._PER_RUN, vectors=frozenset({"init"}),
        history=("step", "t", "log_loss", "n_grad_evals", "wall_time", "accuracy", "margin_l2", "margin_linf",
                 "margin_l1", "margin_spectral", "smoothed_margin", "alignment", "param_norm")),
    "factorization": Declaration(
        factorization.fit_many, {"matrix_sensing": data.matrix_sensing},
        ("A", "y", "shape", "M_star", "init_layers", "seed", "num_threads"), factorization._PER_RUN,
        {"init": factorization._INITS},
        history=("t", "loss", "n_grad_evals", "wall_time", "trace", "nuclear_norm", "effective_rank", "error")),
}


def parameters(func: Callable[..., Any], exclude: tuple[str, ...], vectors: frozenset = frozenset()) -> dict[str, Any]:
    """Keyword parameters of ``func`` and a prototype of their type: the default, else the first
    alternative of the annotation (``"int | None"`` -> 0), :data:`VECTOR` for ``vectors``, None when unknown."""
    out: dict[str, Any] = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in exclude:
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        if p.name in vectors:
            default = VECTOR
        elif default is None:
            default = _PROTOTYPES.get(str(p.annotation).split("|")[0].strip())
        out[p.name] = default
    return out
