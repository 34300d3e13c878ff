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
"""

from __future__ import annotations

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
