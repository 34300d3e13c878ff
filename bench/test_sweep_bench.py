"""Sweep throughput: implicitbias.sweep against fit_many called directly on the same runs, and the
Dask backend (LocalCluster, 2 workers x 1 thread) against the local backend (2 threads).

Workload (W-sweep): diagonal networks, depth 2, plain gradient flow (rtol 1e-6) on N = 100, M = 40,
s = 4 problems; SEEDS problems x SCALES init scales (one chunk of SCALES runs per problem).
The "direct" variant draws the same problems and makes the same fit_many calls (what a user's loop
does, results kept in memory); "sweep" adds the spec, the chunking, the rows and the Parquet store
(references off: the reference solvers are extra work the loop does not do; "sweep+references"
shows their cost). The LocalCluster is started before timing (its start-up, about 2 s, is
reported in extra_info). Every variant asserts that its errors equal the direct calls' bitwise;
timings are never asserted: the goals (sweep overhead <= 10%, Dask >= 80% of local) are read off
the table (render.py; runs per second = runs / time).

Busy cores (W-sweep-busy): the Donoho-Tanner spec of ``implicitbias reproduce phase`` (phase_dt: the
plain flow at alpha 1e-4 and 0.1 and the WN flow at alpha 0.1 on each problem; one chunk of 3 runs per
problem) on its cells M = 30 ... 60 (the long WN runs), computed by the one-chunk-at-a-time schedule
(``workers=1``, both threads in each fit_many call) and by worker processes (``workers=2``, a chunk
per core), interleaved in the same process. Reported per schedule: the busy fraction measured, CPU
seconds / (wall seconds x 2 cores), and the schedule's ideal busy fraction, load-independent: from the
per-chunk durations and the per-block run times (``wall_time``) of the worker run, the makespan of each
schedule simulated on 2 idle cores (the old one: per chunk its Python part plus its blocks of runs
dealt to 2 threads as the core deals them; the new one: chunks dealt in order to 2 workers), busy =
total work / (makespan x 2). Both tables must be equal bitwise (but wall_time).
"""

from __future__ import annotations

import heapq
import os
import resource
import shutil
import tempfile
import time

import numpy as np
import pytest
from harness import rounds, timed

GROUP = "W-sweep diagonal flow, N=100 M=40 s=4"
FIT = {"depth": 2, "method": "flow", "rtol": 1e-6, "n_record": 2}


def _sizes(size):
    return (16, 16) if size == "full" else (4, 8)  # (seeds, init scales)


def _spec(size, references=False):
    seeds, scales = _sizes(size)
    return {"family": "diagonal", "seeds": seeds,
            "problem": {"generator": "sparse_regression", "n_measurements": 40, "dim": 100, "sparsity": 4},
            "fit": FIT, "grid": {"fit.init_scale": {"logspace": [-3, 0, scales]}},
            "run": {"references": references}}


def _direct(ib, size, threads):
    seeds, scales = _sizes(size)
    alphas = list(np.logspace(-3, 0, scales))
    errors = []
    for seed in range(seeds):
        p = ib.data.sparse_regression(40, 100, 4, seed=seed)
        res = ib.diagonal.fit_many(p.A, p.y, x_star=p.x_star, init_scale=alphas, num_threads=threads, **FIT)
        errors.append([float(np.linalg.norm(r.x - p.x_star)) for r in res])
    return np.array(errors).T.ravel()  # run order of the sweep: init scale, then seed innermost


def _sweep(ib, spec, **kw):
    out = tempfile.mkdtemp(prefix="ib-bench-sweep-")
    try:
        return ib.sweep.run(spec, out, progress=False, **kw)["error"].to_numpy()
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.parametrize("variant", ["direct", "sweep", "sweep+references"])
def test_sweep_vs_direct(benchmark, ib, size, variant):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    seeds, scales = _sizes(size)
    if variant == "direct":
        def fn():
            return _direct(ib, size, 2)
    else:
        spec = _spec(size, references=variant.endswith("references"))

        def fn():
            return _sweep(ib, spec, num_threads=2)
    errors = timed(benchmark, fn, n_rounds=rounds(size, 3, 2), warmup=1, group=GROUP, peer="implicitbias",
                   variant=variant, runs=seeds * scales, threads=2)
    np.testing.assert_array_equal(errors, _direct(ib, size, 2))


@pytest.fixture(scope="module")
def cluster_client():
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    client.run(lambda: __import__("implicitbias"))  # the workers import the package before timing
    startup = time.perf_counter() - start
    yield client, startup
    client.close()
    cluster.close()


@pytest.mark.parametrize("backend", ["local", "dask"])
def test_dask_vs_local(benchmark, ib, size, backend, request):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    seeds, scales = _sizes(size)
    spec = _spec(size)
    info = {"peer": "implicitbias", "variant": f"sweep {backend}", "runs": seeds * scales}
    if backend == "local":
        def fn():
            return _sweep(ib, spec, num_threads=2)
        info["threads"] = 2
    else:
        client, startup = request.getfixturevalue("cluster_client")

        def fn():
            return _sweep(ib, spec, backend="dask", client=client)
        info.update(workers=2, threads_per_worker=1, cluster_startup_s=round(startup, 2))
    errors = timed(benchmark, fn, n_rounds=rounds(size, 3, 2), warmup=1, group=GROUP + " (backends)", **info)
    np.testing.assert_array_equal(errors, _direct(ib, size, 1))


BUSY_GROUP = "W-sweep-busy phase_dt (Donoho-Tanner cells M=30..60, N=100), 2 cores"


def _phase_spec(ib, size):
    from implicitbias.experiments import spec_path

    spec = ib.sweep.read_toml(spec_path("phase_dt"))
    cells = [(m, s) for m, s in zip(*spec["zip"][0].values()) if 30 <= m <= 60]
    if size != "full":
        cells = cells[::4]
    spec["zip"][0] = {"problem.n_measurements": [m for m, _ in cells], "problem.sparsity": [s for _, s in cells]}
    spec["seeds"] = 2 if size == "full" else 1
    return spec


def _blocks(runs, block_size=8):
    """The core's blocks of one diagonal chunk (cpp/include/implicitbias/parallel.hpp, make_blocks):
    consecutive runs of the same model, each range cut into ceil(len / block_size) nearly equal blocks;
    a block's time is the wall_time of its last run (runs of a block advance together)."""
    key = [(r["fit.depth"] if "fit.depth" in r else 0, r["fit.weight_norm"]) for r in runs]
    out, start = [], 0
    while start < len(runs):
        end = start + 1
        while end < len(runs) and key[end] == key[start]:
            end += 1
        nb = -(-(end - start) // block_size)
        for b in range(nb):
            lo, hi = start + b * (end - start) // nb, start + (b + 1) * (end - start) // nb
            out.append(max(r["wall_time"] for r in runs[lo:hi]))
        start = end
    return out


def _deal(durations, slots):
    """Makespan of durations dealt in order, each to the slot free first."""
    free = [0.0] * slots
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def _ideal(spec, table, schedule, cores=2):
    """The ideal busy fractions of the old and the new schedule from one worker run (see the module doc)."""
    rows = {r["run_id"]: r for r in table.to_dict("records")}
    runs = spec.chunks()
    chunks = []
    for c in sorted(schedule, key=lambda c: c["chunk"]):
        blocks = _blocks([rows[r["run_id"]] for r in runs[c["chunk"]]])
        total = c["end"] - c["start"]
        chunks.append((total, max(0.0, total - sum(blocks)), blocks))
    work = sum(t for t, _, _ in chunks)
    old = sum(o + _deal(b, cores) for _, o, b in chunks)
    new = _deal([t for t, _, _ in chunks], cores)
    return work / (old * cores), work / (new * cores)


def _cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed_sweep(ib, spec, workers):
    out = tempfile.mkdtemp(prefix="ib-bench-busy-")
    try:
        cpu, start = _cpu_self(), time.perf_counter()
        df = ib.sweep.run(spec, out, progress=False, workers=workers, num_threads=2)
        wall, cpu = time.perf_counter() - start, _cpu_self() - cpu
        schedule = list(ib.sweep._runner.SCHEDULE)
        if workers > 1:
            cpu += sum(c["cpu"] for c in schedule)  # the worker processes' CPU seconds, chunk by chunk
        return df, schedule, wall, cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_sweep_busy_fraction(benchmark, ib, size):
    """One run of each schedule (old first, then new); no timing asserted, the tables must be equal."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    spec = _phase_spec(ib, size)
    n_runs = len(ib.sweep.check(spec).runs())
    start = time.perf_counter()
    _timed_sweep(ib, {**spec, "seeds": 1, "zip": [{k: v[:2] for k, v in spec["zip"][0].items()},
                                                   spec["zip"][1]]}, 2)  # start the worker processes
    startup = time.perf_counter() - start
    results = {}

    def fn():
        for workers in (1, 2):
            results[workers] = _timed_sweep(ib, spec, workers)
        return results

    timed(benchmark, fn, n_rounds=1, warmup=0, group=BUSY_GROUP)
    (old, _, old_wall, old_cpu), (new, schedule, new_wall, new_cpu) = results[1], results[2]
    cols = [c for c in old.columns if c not in ib.sweep.TIMING_COLUMNS]
    import pandas as pd

    pd.testing.assert_frame_equal(old[cols], new[cols], check_exact=True)
    ideal_old, ideal_new = _ideal(ib.sweep.check(spec), new, schedule)
    benchmark.extra_info.update(
        peer="implicitbias", runs=n_runs, chunks=len(schedule), cores=2, loadavg=os.getloadavg()[0],
        old_wall_s=round(old_wall, 2), old_cpu_s=round(old_cpu, 2), old_busy=round(old_cpu / (old_wall * 2), 3),
        new_wall_s=round(new_wall, 2), new_cpu_s=round(new_cpu, 2), new_busy=round(new_cpu / (new_wall * 2), 3),
        old_ideal_busy=round(ideal_old, 3), new_ideal_busy=round(ideal_new, 3),
        worker_startup_s=round(startup, 2), variant="workers=1 then workers=2")
    print(f"\n{BUSY_GROUP}: {n_runs} runs, {len(schedule)} chunks; load {os.getloadavg()[0]:.1f}\n"
          f"  one chunk at a time: wall {old_wall:.1f} s, CPU {old_cpu:.1f} s, busy {old_cpu / (old_wall * 2):.1%}, "
          f"ideal busy {ideal_old:.1%}\n"
          f"  worker processes:    wall {new_wall:.1f} s, CPU {new_cpu:.1f} s, busy {new_cpu / (new_wall * 2):.1%}, "
          f"ideal busy {ideal_new:.1%}\n"
          f"  (worker start-up, once per process: {startup:.1f} s)")
