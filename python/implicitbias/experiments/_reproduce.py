"""Running a reproduction: its sweep specs into stores, then its summary tables and figures from them.

A reproduction module (``weightnorm``, ``margins``, ``flatness``, ``phase``) has
``NAME``, ``SPECS`` (the names of its spec files in ``specs/``; ``specs/quick/``
holds the seconds-long versions), ``summarize(tables)`` (a dict of pandas
DataFrames) and ``plot(tables, summary, out)`` (the PNG paths).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from .. import sweep

SPEC_DIR = os.path.join(os.path.dirname(__file__), "specs")


def spec_path(name: str, quick: bool = False) -> str:
    """The TOML file of the spec ``name`` (``implicitbias sweep PATH --out DIR`` reruns it)."""
    path = os.path.join(SPEC_DIR, "quick" if quick else "", f"{name}.toml")
    if not os.path.exists(path):
        raise ValueError(f"no spec named {name!r}; specs: {', '.join(specs())}")
    return path


def specs() -> list[str]:
    """The names of the shipped specs."""
    return sorted(f[:-5] for f in os.listdir(SPEC_DIR) if f.endswith(".toml"))


def store_path(out: str, name: str, quick: bool = False) -> str:
    """Where a reproduction keeps the store of the spec ``name``: ``OUT/sweeps[/quick]/NAME``."""
    return os.path.join(out, "sweeps", "quick" if quick else "", name)


def run(module: ModuleType, out: str, quick: bool = False, progress: bool = True,
        num_threads: int | None = None) -> dict[str, Any]:
    """Run the module's specs through :func:`implicitbias.sweep.run` into their stores under ``out``
    (resumable: a finished store is read, not recomputed) and return their tables by spec name."""
    return {name: sweep.run(spec_path(name, quick), store_path(out, name, quick), progress=progress,
                            num_threads=num_threads) for name in module.SPECS}


def reproduce(module: ModuleType, out: str, quick: bool = False, progress: bool = True,
              num_threads: int | None = None, figures: bool = True, csv: bool = False) -> list[str]:
    """Run, summarize and plot one reproduction under ``out``; returns the paths written.

    Writes the stores (``OUT/sweeps/...``), one CSV per summary table
    (``OUT/NAME_KEY.csv``), with ``csv`` each store's table as CSV
    (``OUT/SPEC_runs.csv``, :func:`implicitbias.sweep.to_csv`), and with ``figures`` the PNGs.
    """
    tables = run(module, out, quick, progress, num_threads)
    summary = module.summarize(tables, quick)
    os.makedirs(out, exist_ok=True)
    paths = [store_path(out, name, quick) for name in tables]
    for key, df in summary.items():
        paths.append(os.path.join(out, f"{module.NAME}_{key}.csv"))
        df.to_csv(paths[-1], index=False)
    if csv:
        paths += [sweep.to_csv(df, os.path.join(out, f"{name}_runs.csv")) for name, df in tables.items()]
    if figures:
        paths += module.plot(tables, summary, out)
    return paths


def save(plt: Any, fig: Any, out: str, name: str, dpi: int) -> str:
    """Lay out, write ``OUT/NAME`` and close a figure; returns the path."""
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
