"""Pick the fastest compiled core this CPU can run.

The build makes ``_core`` (portable baseline) and, on x86-64, ``_core_x86_64_v3``
(AVX2 + FMA) and ``_core_x86_64_v4`` (AVX-512). All three expose the same
functions; results agree to rounding. ``IMPLICITBIAS_ISA=baseline|x86-64-v3|x86-64-v4``
forces a choice (for comparisons and for debugging).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from . import _core as _baseline

_VARIANTS = (("x86-64-v4", "_core_x86_64_v4", "avx512"), ("x86-64-v3", "_core_x86_64_v3", "avx2"))


def _load() -> ModuleType:
    forced = os.environ.get("IMPLICITBIAS_ISA", "").strip()
    if forced and forced not in ("baseline", "native") and forced not in [v[0] for v in _VARIANTS]:
        raise ImportError(f"IMPLICITBIAS_ISA={forced!r} is not one of baseline, x86-64-v3, x86-64-v4")
    if forced in ("baseline", "native"):
        return _baseline
    for label, modname, feature in _VARIANTS:
        if forced and forced != label:
            continue
        if not _baseline.cpu_supports(feature):
            if forced:
                raise ImportError(f"IMPLICITBIAS_ISA={forced} but this CPU lacks {feature}")
            continue
        try:
            return importlib.import_module(f"{__package__}.{modname}")
        except ImportError:
            if forced:
                raise
    return _baseline


core = _load()
