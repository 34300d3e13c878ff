"""The ``implicitbias`` command: ``implicitbias reproduce NAME --out DIR [--quick] [--csv]``,
``implicitbias sweep SPEC.toml --out DIR [--scheduler ADDRESS] [--csv FILE]``, ``implicitbias info``.

``reproduce`` runs the reproduction's sweep specs (shipped in the package, ``implicitbias.experiments``)
into stores under ``DIR/sweeps``, then writes its summary tables (CSV) and figures from the stores.

``implicitbias --version`` prints the version and, in one line, the compiled core in use: its ISA
variant, the SIMD instruction sets it was compiled for, and OpenMP with its default thread count.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import __version__, _plotting, build_info
from .experiments import REGISTRY, reproduce
from .sweep import StoreError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="implicitbias", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run one paper's experiment (its sweep specs into stores under "
                         "DIR/sweeps); write its summary (CSV) and figures (PNG, with the plot extra: matplotlib)")
    rep.add_argument("experiment", choices=sorted(REGISTRY), help="which experiment")
    rep.add_argument("--out", default="results", help="output directory (default: results)")
    rep.add_argument("--quick", action="store_true", help="a seconds-long smoke version")
    rep.add_argument("--csv", action="store_true", help="also write each store's table as DIR/SPEC_runs.csv")
    rep.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all)")
    rep.add_argument("--no-progress", action="store_true",
                     help="no progress bar (it is drawn on stderr only when that is a terminal)")
    sub.add_parser("info", help="the version and how the compiled core in use was built (ISA, SIMD, OpenMP)")
    _add_sweep_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return _sweep(parser, args)

    if args.command == "info":
        for k, v in build_info().items():
            print(f"{k}: {', '.join(v) if isinstance(v, list) else v}")
        return 0
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    figures = _plotting.available()
    if not figures:  # say so before the (long) run, then write the data alone
        print(f"implicitbias: writing data only, no figures: {_plotting.MISSING}", file=sys.stderr)
    start = time.perf_counter()
    try:
        paths = reproduce(REGISTRY[args.experiment], args.out, quick=args.quick, progress=not args.no_progress,
                          num_threads=args.threads, figures=figures, csv=args.csv)
    except StoreError as exc:  # a store of another spec (e.g. of an older version) in DIR/sweeps
        print(f"implicitbias: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"{args.experiment}: {time.perf_counter() - start:.1f} s; wrote")
    for p in paths:
        print(f"  {p}")
    return 0


def _add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    sw = sub.add_parser("sweep", help="run a sweep spec (TOML, docs/sweeps.md) into a resumable store")
    sw.add_argument("spec", help="the spec, a TOML file")
    sw.add_argument("--out", required=True, help="store directory (created; an existing one of the same spec "
                    "is resumed)")
    sw.add_argument("--backend", choices=("local", "dask"), default=None,
                    help="local (default) or dask (a LocalCluster, or the --scheduler)")
    sw.add_argument("--scheduler", default=None, help="address of a Dask scheduler (implies --backend dask)")
    sw.add_argument("--threads", type=int, default=None, help="OpenMP threads of the local backend (default: all)")
    sw.add_argument("--workers", type=int, default=None,
                    help="chunks computed at once by the local backend, each in a worker process sharing the "
                    "--threads (default: one per thread; 1: one chunk at a time in this process)")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")
    sw.add_argument("--csv", default=None, metavar="FILE", help="also write the store's table as CSV to FILE")
    sw.add_argument("--allow-version-change", action="store_true",
                    help="resume a store made by another build of implicitbias (recorded in its spec.json)")


def _sweep(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from . import sweep

    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    backend = args.backend or ("dask" if args.scheduler else "local")
    if args.scheduler and backend != "dask":
        parser.error("--scheduler needs --backend dask")
    if args.threads is not None and backend == "dask":
        parser.error("--threads is for the local backend (a Dask worker uses its own thread count)")
    if args.workers is not None and (args.workers < 1 or backend == "dask"):
        parser.error("--workers must be >= 1, for the local backend (a Dask cluster has its own workers)")
    start = time.perf_counter()
    try:
        df = sweep.run(args.spec, args.out, backend=backend, client=args.scheduler, progress=not args.no_progress,
                       num_threads=args.threads, allow_version_change=args.allow_version_change,
                       workers=args.workers)
    except (sweep.SpecError, sweep.StoreError) as exc:
        print(f"implicitbias: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"sweep: {len(df)} runs in {args.out} ({time.perf_counter() - start:.1f} s)")
    if args.csv:
        print(f"  table: {sweep.to_csv(df, args.csv)}")
    return 0


def version_line() -> str:
    """``implicitbias VERSION (core ISA; SIMD ...; OpenMP X.Y, N threads)``: what ``--version`` prints."""
    info = build_info()
    openmp = f"OpenMP {info['openmp_version']}, {info['max_threads']} threads" if info["openmp"] else "no OpenMP"
    return f"implicitbias {__version__} (core {info['isa']}; SIMD {info['simd']}; {openmp})"


if __name__ == "__main__":
    sys.exit(main())
