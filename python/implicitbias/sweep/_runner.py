"""Running a sweep: chunks computed locally or on a Dask cluster, committed to the store as they finish."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from .._progress import progress_bar
from . import _families
from ._spec import Spec, check, read_toml
from ._store import Store, load

BACKENDS = ("local", "dask")
_WORKER_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def compute_chunk(spec: Spec, runs: list[dict[str, Any]], num_threads: int | None = None) -> list[dict[str, Any]]:
    """The rows of one chunk: its problem, references and one batched fit_many call.

    On a Dask worker the core uses the worker's thread count and the worker's
    chunks run one at a time (a lock per worker), so a worker never runs more
    core threads than it has; elsewhere ``num_threads`` (None: all cores)."""
    worker = _dask_worker()
    family = _families.FAMILIES[spec.family]
    if worker is None:
        return family.rows(spec, runs, num_threads)
    nthreads = int(getattr(getattr(worker, "state", worker), "nthreads", 1))
    with _LOCKS_GUARD:
        lock = _WORKER_LOCKS.setdefault(str(worker.address), threading.Lock())
    with lock:
        return family.rows(spec, runs, nthreads)


def _dask_worker() -> Any:
    """The Dask worker running this task, or None."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def run(spec: Any, out: str | os.PathLike, backend: str = "local", client: Any = None, progress: bool = True,
        num_threads: int | None = None, allow_version_change: bool = False) -> Any:
    """Run a sweep into the store ``out`` and return its table (:func:`load`).

    ``spec``: a dict, a :class:`Spec` or the path of a TOML file (docs/sweeps.md).
    Chunks already in ``out`` are skipped (resume); a store of another spec is
    refused (the spec's hash covers the defaults of the fit arguments it leaves
    out), and so is a store made by another build of the package (version, core
    variant, or a content hash of the core and the Python sources: numbers may
    differ) unless ``allow_version_change`` (recorded in the store's
    ``spec.json``). ``backend="local"`` computes the chunks one after the other, each
    with ``num_threads`` OpenMP threads (None: all cores). ``backend="dask"``
    submits them to ``client`` (a ``distributed.Client``, a scheduler address,
    or None for a new ``LocalCluster`` with one thread per worker process);
    this process writes the store. A progress bar (tqdm, on stderr) shows the
    runs done of the total, runs per second and the time left.

    Ctrl-C stops between chunks (or inside the core call, when the core is
    interruptible): finished chunks stay committed, the interrupted chunk is
    discarded, and running again resumes.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = read_toml(spec)
    spec = check(spec)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "local" and client is not None:
        raise ValueError("client is for backend='dask'")
    chunks = spec.chunks()
    n_runs = sum(len(c) for c in chunks)
    store = Store(out, spec, len(chunks), n_runs, allow_version_change=allow_version_change)
    done = store.done()
    todo = [i for i in range(len(chunks)) if i not in done]
    with progress_bar(n_runs, "sweep", enabled=progress) as bar:
        bar.update(n_runs - sum(len(chunks[i]) for i in todo))
        try:
            if backend == "local":
                for i in todo:
                    store.write(i, compute_chunk(spec, chunks[i], num_threads))
                    bar.update(len(chunks[i]))
            else:
                _run_dask(spec, chunks, todo, store, bar, client)
        except KeyboardInterrupt:
            bar.close()
            print(f"sweep interrupted: {len(store.done())} of {len(chunks)} chunks are stored in {store.path}; "
                  "run the same sweep again to resume", file=sys.stderr)
            raise
    return load(out)


def _run_dask(spec: Spec, chunks: list, todo: list[int], store: Store, bar: Any, client: Any) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("backend='dask' needs dask.distributed: pip install 'implicitbias[dask]'") from None
    owned: list[Any] = []
    if client is None:
        cluster = LocalCluster(threads_per_worker=1, processes=True, dashboard_address=None)
        owned.append(cluster)
        client = Client(cluster)
        owned.insert(0, client)
    elif isinstance(client, str):
        client = Client(client)
        owned.append(client)
    futures: dict[Any, int] = {}
    try:
        if todo:
            [spec_future] = client.scatter([spec], broadcast=True)
            futures = {client.submit(compute_chunk, spec_future, chunks[i], pure=False): i for i in todo}
        for fut in as_completed(list(futures)):
            i = futures[fut]
            store.write(i, fut.result())
            bar.update(len(chunks[i]))
            fut.release()
    finally:
        for fut in futures:
            fut.cancel()
        for obj in owned:
            obj.close()
