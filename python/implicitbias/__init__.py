"""implicitbias: fast, exact simulations of the implicit bias of optimization.

Submodules: :mod:`~implicitbias.data` (problem generators),
:mod:`~implicitbias.diagonal` (diagonal linear networks, plain and weight
normalized), :mod:`~implicitbias.steepest` (steepest descent on homogeneous
classifiers and the margins it maximizes), :mod:`~implicitbias.factorization`
(deep matrix factorization), :mod:`~implicitbias.hessian` (its exact Hessian
trace, HVPs and trace estimators), :mod:`~implicitbias.reference` (convex solvers for the limits the
theory predicts), :mod:`~implicitbias.experiments` (paper reproductions),
:mod:`~implicitbias.sweep` (parameter sweeps into a resumable store, Dask, phase diagrams).
"""

from typing import Any

from . import data, diagonal, factorization, hessian, reference, steepest, sweep
from ._native import built_variants
from ._native import core as _core_in_use
from ._version import __version__

__all__ = ["__version__", "build_info", "data", "diagonal", "factorization", "hessian", "reference", "steepest",
           "sweep"]


def build_info() -> dict[str, Any]:
    """How the compiled core was built: version, ISA variant in use, the ISA variants installed, SIMD,
    OpenMP, threads."""
    return {
        "version": _core_in_use.__version__,
        "isa": _core_in_use.isa,
        "isa_variants": built_variants(),
        "simd": _core_in_use.simd_instruction_sets(),
        "openmp": _core_in_use.openmp_enabled(),
        "max_threads": _core_in_use.max_threads(),
    }
