"""implicitbias: fast, exact simulations of the implicit bias of optimization.

Submodules: :mod:`~implicitbias.data` (problem generators),
:mod:`~implicitbias.diagonal` (diagonal linear networks, plain and weight
normalized), :mod:`~implicitbias.steepest` (steepest descent on homogeneous
classifiers and the margins it maximizes), :mod:`~implicitbias.factorization`
(deep matrix factorization), :mod:`~implicitbias.hessian` (its exact Hessian
trace, HVPs and trace estimators), :mod:`~implicitbias.reference` (convex solvers for the limits the
theory predicts), :mod:`~implicitbias.experiments` (paper reproductions),
:mod:`~implicitbias.sweep` (parameter sweeps into a resumable store, Dask, phase diagrams),
:mod:`~implicitbias.torch` (the Hessian of a PyTorch model's loss as a Hessian operator; optional extra,
imported on its own).

Each family module has a ``FAMILY`` (a :class:`Family`): its name, ``fit``/``fit_many`` and every
argument as a :class:`Param` (default, check, choices, per run or batch-wide).
"""

import os
from typing import Any

from . import _native, data, diagonal, factorization, hessian, reference, steepest, sweep
from ._family import Family, Param
from ._native import core as _core_in_use
from ._version import __version__

__all__ = ["Family", "Param", "__version__", "build_info", "data", "diagonal", "factorization", "hessian", "reference",
           "steepest", "sweep"]


# OpenMP specification versions by their _OPENMP date
_OPENMP_VERSIONS = {200505: "2.5", 200805: "3.0", 201107: "3.1", 201307: "4.0", 201511: "4.5", 201811: "5.0",
                    202011: "5.1", 202111: "5.2", 202411: "6.0"}


def build_info() -> dict[str, Any]:
    """How the compiled core in use was built, and what this process may run.

    Returns
    -------
    dict
        ``version`` (the package version the core was built from), ``isa`` (the variant in use:
        ``baseline``, ``x86-64-v3`` = AVX2 + FMA, ``x86-64-v4`` = AVX-512, or ``native``),
        ``core_file`` (its file name), ``cores_installed`` (the variants present in the package),
        ``simd`` (the SIMD instruction sets Eigen's kernels were compiled for, e.g.
        ``"AVX512, FMA, AVX2, AVX, SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2"``), ``openmp`` (built with
        OpenMP), ``openmp_version`` (the specification, e.g. ``"4.5"``, or None), ``max_threads``
        (threads a batch uses by default: OpenMP's default, 1 without OpenMP), ``compiler`` and
        ``eigen`` (the compiler and Eigen versions of the build).
    """
    spec = _core_in_use.openmp_version()
    return {
        "version": _core_in_use.__version__,
        "isa": _core_in_use.isa,
        "core_file": os.path.basename(_core_in_use.__file__ or ""),
        "cores_installed": _native.installed_cores(),
        "simd": _core_in_use.simd_instruction_sets(),
        "openmp": _core_in_use.openmp_enabled(),
        "openmp_version": _OPENMP_VERSIONS.get(spec, str(spec)) if spec else None,
        "max_threads": _core_in_use.max_threads(),
        "compiler": _core_in_use.compiler,
        "eigen": _core_in_use.eigen_version,
    }
