"""Pick the fastest compiled core this CPU can run, and refuse a stale one.

The build makes ``_core`` (portable baseline) and, on x86-64, ``_core_x86_64_v3``
(AVX2 + FMA) and ``_core_x86_64_v4`` (AVX-512). All three expose the same
functions; results agree to rounding. ``IMPLICITBIAS_ISA=baseline|x86-64-v3|x86-64-v4``
forces a choice (for comparisons and for debugging).

Each core carries the package version it was built from (``__version__``); a core
whose version differs from :data:`implicitbias.__version__` (or that has none) was
left behind by an older build, in the source tree or in site-packages, and importing
it raises :class:`ImportError` naming the file and how to rebuild.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

from ._version import __version__

_VARIANTS = (("x86-64-v4", "_core_x86_64_v4", "avx512"), ("x86-64-v3", "_core_x86_64_v3", "avx2"))


def check_core_version(module: ModuleType, expected: str = __version__) -> None:
    """Raise ImportError unless the compiled ``module`` was built from package version ``expected``."""
    found = getattr(module, "__version__", None)
    if isinstance(found, str) and found == expected:
        return
    where = getattr(module, "__file__", None) or module.__name__
    built = f"it was built from implicitbias {found}" if found is not None else (
        "it has no __version__ (built by an implicitbias older than versioned cores)")
    raise ImportError(
        f"stale compiled core {where}: {built}, but the Python package is implicitbias {expected}. "
        f"Rebuild and reinstall from the source checkout with `pip install .`; if the file is a leftover "
        f"copy inside the source tree (python/implicitbias/), delete it or rebuild it there."
    )


def _import_core(modname: str) -> ModuleType:
    module = importlib.import_module(f"{__package__}.{modname}")
    check_core_version(module)
    return module


_baseline = _import_core("_core")


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
            module = importlib.import_module(f"{__package__}.{modname}")
        except ImportError:
            if forced:
                raise
            continue
        check_core_version(module)  # a stale variant is an error, not a reason to fall back silently
        return module
    return _baseline


def installed_cores() -> list[str]:
    """The labels of the core variants present in the package (``baseline`` first), found without importing them."""
    names = [("baseline", "_core")] + [(label, modname) for label, modname, _ in reversed(_VARIANTS)]
    return [label for label, modname in names if importlib.util.find_spec(f"{__package__}.{modname}") is not None]


core = _load()
