"""Running a sweep: chunks computed locally or on a Dask cluster, committed to the store as they finish."""

from __future__ import annotations

import collections
import os
import queue
import sys
import threading
import time
from typing import Any

from .._progress import progress_bar
from . import _families, _pool
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
        num_threads: int | None = None, allow_version_change: bool = False, workers: int | None = None) -> Any:
    """Run a sweep into the store ``out`` and return its table (:func:`load`).

    ``spec``: a dict, a :class:`Spec` or the path of a TOML file (docs/sweeps.md).
    Chunks already in ``out`` are skipped (resume); a store of another spec is
    refused (the spec's hash covers the defaults of the fit arguments it leaves
    out), and so is a store made by another build of the package (version, core
    variant, or a content hash of the core and the Python sources: numbers may
    differ) unless ``allow_version_change`` (recorded in the store's
    ``spec.json``). ``backend="local"`` computes up to ``workers`` chunks at
    once, each in a worker process of its own, sharing ``num_threads`` cores
    (None: all cores; a chunk gets one OpenMP thread, or more when fewer chunks
    are left than cores are free), so that one long run does not idle the
    other cores; ``workers=None`` means one per core, ``workers=1`` computes
    the chunks one after the other in this process with ``num_threads``
    threads each (docs/sweeps.md, "Local backend"). The numbers do not depend
    on ``workers`` or ``num_threads``. ``backend="dask"``
    submits them to ``client`` (a ``distributed.Client``, a scheduler address,
    or None for a new ``LocalCluster`` with one thread per worker process);
    this process writes the store. A progress bar (tqdm, on stderr) shows the
    runs done of the total, runs per second and the time left.

    Ctrl-C stops the sweep at once (the worker processes are killed; with
    ``workers=1`` between chunks or inside the core call, when the core is
    interruptible): finished chunks stay committed, the chunks in flight are
    discarded, and running again resumes.
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = read_toml(spec)
    spec = check(spec)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "local" and client is not None:
        raise ValueError("client is for backend='dask'")
    if backend == "dask" and workers is not None:
        raise ValueError("workers is for backend='local' (a Dask cluster has its own workers)")
    for name, value in (("num_threads", num_threads), ("workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    chunks = spec.chunks()
    n_runs = sum(len(c) for c in chunks)
    store = Store(out, spec, len(chunks), n_runs, allow_version_change=allow_version_change)
    done = store.done()
    todo = [i for i in range(len(chunks)) if i not in done]
    with progress_bar(n_runs, "sweep", enabled=progress) as bar:
        bar.update(n_runs - sum(len(chunks[i]) for i in todo))
        try:
            if backend == "local":
                _run_local(spec, chunks, todo, store, bar, num_threads, workers)
            else:
                _run_dask(spec, chunks, todo, store, bar, client)
        except KeyboardInterrupt:
            bar.close()
            print(f"sweep interrupted: {len(store.done())} of {len(chunks)} chunks are stored in {store.path}; "
                  "run the same sweep again to resume", file=sys.stderr)
            raise
    return load(out)


# The chunks of the last local sweep of this process, in the order they were stored: dicts with the chunk id,
# its runs, its OpenMP threads, start and end (time.perf_counter) and the CPU seconds of the process that
# computed it (bench/test_sweep_bench.py computes the cores' busy fraction from it).
SCHEDULE: list[dict[str, Any]] = []


def _run_local(spec: Spec, chunks: list, todo: list[int], store: Store, bar: Any, num_threads: int | None,
               workers: int | None) -> None:
    cores = num_threads if num_threads is not None else _max_threads()
    n_workers = min(workers if workers is not None else cores, len(todo))
    SCHEDULE.clear()
    if n_workers <= 1:
        for i in todo:
            start, cpu = time.perf_counter(), time.process_time()
            rows = compute_chunk(spec, chunks[i], num_threads)
            _record(i, len(chunks[i]), num_threads or cores, start, time.process_time() - cpu)
            store.write(i, rows)
            bar.update(len(chunks[i]))
        return
    plan = _Plan(todo, cores)
    results: queue.Queue = queue.Queue()
    threads: list[threading.Thread] = []
    try:
        for _ in range(n_workers):  # started on this thread: on Linux a worker dies with the thread that started it
            w = plan.add(_pool.acquire())
            threads.append(threading.Thread(target=plan.serve, args=(w, spec, chunks, results), daemon=True))
            threads[-1].start()
        running = len(threads)
        while running:
            try:
                msg = results.get(timeout=0.25)
            except queue.Empty:
                continue
            if msg[0] == "done":
                running -= 1
            elif msg[0] == "error":  # store the chunks that came back before it, then raise it
                for m in _drain(results):
                    if m[0] == "rows":
                        _commit(m, chunks, store, bar)
                raise msg[1]
            else:
                _commit(msg, chunks, store, bar)
    except BaseException:
        plan.abort()
        for t in threads:
            t.join(timeout=5)
        raise


def _drain(results: queue.Queue) -> list:
    out = []
    while True:
        try:
            out.append(results.get_nowait())
        except queue.Empty:
            return out


def _commit(msg: tuple, chunks: list, store: Store, bar: Any) -> None:
    _, i, rows, threads, start, cpu = msg
    _record(i, len(chunks[i]), threads, start, cpu)
    store.write(i, rows)
    bar.update(len(chunks[i]))


def _record(i: int, runs: int, threads: int, start: float, cpu: float) -> None:
    SCHEDULE.append({"chunk": i, "runs": runs, "threads": threads, "start": start, "end": time.perf_counter(),
                     "cpu": cpu})


def _max_threads() -> int:
    from .._native import core

    return max(1, int(core.max_threads()))


class _Plan:
    """The local backend's schedule: chunks handed out in id order to the worker threads (one per worker
    process), each with ``max(1, free cores // chunks not started)`` OpenMP threads (one while chunks
    outnumber the free cores, more for the last ones), so the chunks in flight never hold more threads
    than ``cores``. ``abort`` kills every worker process (a prompt stop, even inside a core call)."""

    def __init__(self, todo: list[int], cores: int) -> None:
        self.todo = collections.deque(todo)
        self.free = cores
        self.lock = threading.Lock()
        self.stopped = False
        self.active: list[_pool.Worker] = []

    def take(self) -> tuple[int, int] | None:
        with self.lock:
            if self.stopped or not self.todo:
                return None
            i = self.todo.popleft()
            threads = max(1, self.free // (len(self.todo) + 1))
            self.free -= threads
            return i, threads

    def give_back(self, threads: int) -> None:
        with self.lock:
            self.free += threads

    def abort(self) -> None:
        with self.lock:
            self.stopped = True
            active, self.active = self.active, []
        for w in active:
            w.kill()

    def add(self, w: _pool.Worker) -> _pool.Worker:
        with self.lock:
            self.active.append(w)
        return w

    def serve(self, w: _pool.Worker, spec: Spec, chunks: list, results: queue.Queue) -> None:
        """A worker thread: takes chunks and has its worker process compute them until none are left."""
        try:
            w.start()  # the worker's import: a chunk goes to a worker that is ready for it
            task = self.take()
            while task is not None:
                i, threads = task
                start = time.perf_counter()
                rows, cpu = w.compute(spec, chunks[i], threads)
                self.give_back(threads)
                results.put(("rows", i, rows, threads, start, cpu))
                task = self.take()
        except BaseException as exc:
            if not self.stopped:
                results.put(("error", exc))
            w.kill()
        finally:
            with self.lock:
                keep = not self.stopped and w.alive() and w in self.active
                if keep:
                    self.active.remove(w)
            if keep:
                _pool.release(w)
            results.put(("done",))


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
