"""implicitbias.sweep: spec validation, equality with direct fit_many calls, the crash-safe store
(SIGKILL and Ctrl-C mid-sweep, resume), the Dask backend, and phase tables."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from implicitbias import data, diagonal, reference, steepest, sweep  # noqa: E402

SPEC = {
    "family": "diagonal",
    "seeds": 2,
    "problem": {"generator": "sparse_regression", "n_measurements": 12, "dim": 24},
    "fit": {"depth": 2, "rtol": 1e-6, "n_record": 2},
    "grid": {"problem.sparsity": [1, 2], "fit.init_scale": {"logspace": [-2, -1, 2]},
             "fit.weight_norm": ["none", "joint"]},
}


def _same(a, b):
    """Tables equal in every column but the timing ones."""
    cols = [c for c in a.columns if c not in sweep.TIMING_COLUMNS]
    assert list(cols) == [c for c in b.columns if c not in sweep.TIMING_COLUMNS]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)


# --------------------------------------------------------------------------- spec
@pytest.mark.parametrize("change, words", [
    ({"color": 1}, ["color", "unknown key", "family, seeds, problem"]),
    ({"family": "spiral"}, ["family", "diagonal, factorization, steepest"]),
    ({"fit": {"depth": 2, "speed": 3}}, ["fit.speed", "unknown key", "init_scale", "weight_norm"]),
    ({"fit": {"depth": "two"}}, ["fit.depth", "must be an int"]),
    ({"fit": {"rtol": "small"}}, ["fit.rtol", "finite number"]),
    ({"fit": {"depth": [2, 3]}}, ["fit.depth", "single value"]),
    ({"fit": {"depth": 1}}, ["fit.depth", "2"]),
    ({"fit": {"method": "flo"}}, ["fit.method", "'descent', 'flow'"]),
    ({"fit": {"solver": "radau"}}, ["fit.solver", "'rosw', 'dopri5', 'rodas5', 'bdf'"]),
    ({"grid": {"problem.sparsity": [1], "fit.weight_norm": ["none", "jiont"]}},
     ["fit.weight_norm", "'joint', 'separate'", "jiont"]),
    ({"grid": {}}, ["grid", "empty", "fit.init_scale"]),
    ({"grid": {"fit.init_scale": []}}, ["fit.init_scale", "must not be empty"]),
    ({"grid": {"fit.init_scale": {"logspace": [-2, -1]}}}, ["fit.init_scale", "logspace", "[start, stop, n]"]),
    ({"grid": {"fit.init_scale": {"geomspace": [1, 2, 3]}}}, ["fit.init_scale", "logspace, linspace"]),
    ({"grid": {"fit.alpha": [1.0]}}, ["grid.fit.alpha", "unknown axis", "fit.init_scale", "problem.sparsity"]),
    ({"grid": {"fit.depth": [2, 3]}}, ["fit.depth", "both fixed"]),
    ({"grid": {"problem.sparsity": [1, "x"]}}, ["problem.sparsity", "must be an int"]),
    ({"zip": {"problem.noise": [0.0, 0.1], "fit.lr_ratio": [1.0]}}, ["zip", "equal lengths"]),
    ({"zip": {"problem.sparsity": [1, 2]}}, ["problem.sparsity", "varied twice"]),
    ({"seeds": 0}, ["seeds", ">= 1"]),
    ({"seeds": [1, 1]}, ["seeds", "repeated"]),
    ({"problem": {"generator": "separable"}}, ["problem.generator", "sparse_regression"]),
    ({"problem": {"generator": "sparse_regression", "rows": 3}}, ["problem.rows", "n_measurements"]),
    ({"run": {"chunk_size": 0}}, ["run.chunk_size", ">= 1"]),
    ({"grid": {"fit.init_scale": [0.1]}}, ["problem.sparsity", "required by sparse_regression"]),
    ({"run": {"keep": True}}, ["run.keep", "chunk_size, history, references, save_params"]),
])
def test_spec_errors_name_the_key_and_the_valid_choices(change, words):
    spec = {**SPEC, **change}
    with pytest.raises(sweep.SpecError) as info:
        sweep.check(spec)
    for w in words:
        assert w in str(info.value)


def test_spec_expansion_zip_seeds_hash_and_toml(tmp_path):
    spec = {**SPEC, "seeds": [3, 5], "grid": {"fit.init_scale": {"linspace": [0.1, 0.3, 3]}},
            "zip": {"problem.sparsity": [1, 2], "problem.noise": [0.0, 0.1]}}
    s = sweep.check(spec)
    runs = s.runs()
    assert len(runs) == 3 * 2 * 2 and [r["run_id"] for r in runs] == list(range(12))
    assert sorted({r["fit.init_scale"] for r in runs}) == pytest.approx([0.1, 0.2, 0.3])
    assert {(r["problem.sparsity"], r["problem.noise"]) for r in runs} == {(1, 0.0), (2, 0.1)}
    assert {r["seed"] for r in runs} == {3, 5}
    # chunks: one per (problem, seed); init_scale is per-run, so it never splits a chunk
    assert sorted(len(c) for c in s.chunks()) == [3] * 4
    assert sweep.check({**spec, "run": {"chunk_size": 2}}).chunks()[0] == s.chunks()[0][:2]
    # the hash does not depend on key order or on how an axis is written; it changes with the spec
    again = {"zip": spec["zip"], "grid": {"fit.init_scale": [0.1, 0.2, 0.3]},
             **{k: v for k, v in spec.items() if k not in ("grid", "zip")}}
    assert sweep.check(again).hash == s.hash
    assert sweep.check({**spec, "seeds": [3, 6]}).hash != s.hash
    toml = tmp_path / "s.toml"
    toml.write_text(textwrap.dedent("""
        family = "diagonal"
        seeds = [3, 5]
        [problem]
        generator = "sparse_regression"
        n_measurements = 12
        dim = 24
        [fit]
        depth = 2
        rtol = 1e-6
        n_record = 2
        [grid]
        "fit.init_scale" = { linspace = [0.1, 0.3, 3] }
        [zip]
        "problem.sparsity" = [1, 2]
        "problem.noise" = [0.0, 0.1]
    """))
    assert sweep.check(sweep.read_toml(toml)).hash == s.hash


# --------------------------------------------------------------------------- values
def test_rows_equal_direct_fit_many_calls_and_references(tmp_path):
    df = sweep.run(SPEC, tmp_path / "s", progress=False, num_threads=1)
    assert len(df) == 16 and df.attrs["complete"] and df["run_id"].tolist() == list(range(16))
    for (sparsity, seed), sel in df.groupby(["problem.sparsity", "seed"]):
        p = data.sparse_regression(12, 24, sparsity, seed=seed)
        wn = [None if w == "none" else w for w in sel["fit.weight_norm"]]
        direct = diagonal.fit_many(p.A, p.y, x_star=p.x_star, depth=2, rtol=1e-6, n_record=2,
                                   init_scale=sel["fit.init_scale"].tolist(), weight_norm=wn)
        assert sel["error"].tolist() == [float(np.linalg.norm(r.x - p.x_star)) for r in direct]
        assert sel["n_grad_evals"].tolist() == [r.n_grad_evals for r in direct]
        x_bp = reference.basis_pursuit(p.A, p.y)
        assert sel["bp_relative_error"].iloc[0] == pytest.approx(
            np.linalg.norm(x_bp - p.x_star) / np.linalg.norm(p.x_star), abs=1e-12)
        for (_, row), r, w in zip(sel.iterrows(), direct, wn):
            assert row["bp_distance"] == pytest.approx(np.linalg.norm(r.x - x_bp), rel=1e-12)
            if w is None:  # the flow limit of the plain flow is the reference solver's
                limit = reference.diagonal_flow_limit(p.A, p.y, row["fit.init_scale"], 2)
                assert row["flow_limit_distance"] == pytest.approx(np.linalg.norm(r.x - limit), rel=1e-9)
                assert row["flow_limit_distance"] < 1e-3
            else:
                assert np.isnan(row["flow_limit_distance"]) and row["radius"] == r.radius
            # flows keep no step bookkeeping: its columns are NaN (docs/sweeps.md, "Columns")
            assert np.isnan([row["alpha_gain"], row["effective_limit_distance"],
                             row["effective_limit_bp_distance"]]).all()
    indexed = sweep.load(tmp_path / "s", index=True).to_xarray()
    assert dict(indexed.sizes) == {"problem.sparsity": 2, "fit.init_scale": 2, "fit.weight_norm": 2, "seed": 2}


def test_results_do_not_depend_on_threads_and_a_changed_spec_is_refused(tmp_path):
    a = sweep.run(SPEC, tmp_path / "a", progress=False, num_threads=1)
    b = sweep.run(SPEC, tmp_path / "b", progress=False, num_threads=2)
    _same(a, b)
    with pytest.raises(sweep.StoreError, match="changed spec is refused"):
        sweep.run({**SPEC, "seeds": 3}, tmp_path / "a", progress=False)
    _same(sweep.run(SPEC, tmp_path / "a", progress=False), a)  # the same spec: nothing to do, same table


def test_the_hash_covers_the_defaults_of_the_fit_arguments(monkeypatch):
    """Writing a default out gives the hash of leaving it out; a release that changes a default changes it."""
    from implicitbias import diagonal

    s = sweep.check(SPEC)
    spelled = {**SPEC, "fit": {**SPEC["fit"], "max_steps": diagonal.FAMILY.params["max_steps"].default}}
    assert sweep.check(spelled).hash == s.hash
    param = diagonal.FAMILY.params["max_steps"]  # as if a release changed the default:
    monkeypatch.setitem(diagonal.FAMILY.params, "max_steps", dataclasses.replace(param, default=param.default + 1))
    assert sweep.check(SPEC).hash != s.hash
    assert sweep.check(spelled).hash == s.hash  # the written value pins the runs: the same as before


def test_a_store_of_another_build_is_refused_unless_allowed(tmp_path, monkeypatch):
    """The build identity (version, core variant, content hash of the core and sources) is stored; a resume
    by another build is refused with a message that says how to go on, and allowed (and recorded) on request."""
    from implicitbias.sweep import _store

    a = sweep.run(SPEC, tmp_path / "a", progress=False, num_threads=1)
    meta = sweep.read_meta(tmp_path / "a")
    ident = _store.build_identity()
    assert meta["identity"] == ident and len(ident["content"]) == 16 and ident["implicitbias"]
    other = {**ident, "content": "0" * 16}
    monkeypatch.setattr(_store, "build_identity", lambda: other)
    with pytest.raises(sweep.StoreError, match=r"another build of implicitbias.*--allow-version-change"):
        sweep.run(SPEC, tmp_path / "a", progress=False)
    _same(sweep.run(SPEC, tmp_path / "a", progress=False, allow_version_change=True), a)
    assert sweep.read_meta(tmp_path / "a")["resumed_by"] == [other]
    _same(sweep.run(SPEC, tmp_path / "a", progress=False), a)  # this build is on record now
    from implicitbias.cli import main

    monkeypatch.setattr(_store, "build_identity", lambda: {**ident, "implicitbias": "9.9"})
    spec = tmp_path / "s.toml"
    spec.write_text('family = "diagonal"\nseeds = 1\n[problem]\ngenerator = "sparse_regression"\n'
                    'n_measurements = 8\ndim = 16\nsparsity = 1\n[fit]\nrtol = 1e-5\nn_record = 2\n'
                    '[grid]\n"fit.init_scale" = [0.1]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "c"), "--no-progress"]) == 0
    monkeypatch.setattr(_store, "build_identity", lambda: ident)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "c"), "--no-progress"]) == 2
    assert main(["sweep", str(spec), "--out", str(tmp_path / "c"), "--no-progress", "--allow-version-change"]) == 0


def test_steepest_and_factorization_sweeps(tmp_path):
    spec = {"family": "steepest", "seeds": 1, "problem": {"generator": "separable", "n_samples": 10, "dim": 4},
            "fit": {"steps": 300, "lr": 0.5, "n_record": 2, "model": "linear"},
            "grid": {"fit.norm": ["l2", "linf"]}, "run": {"save_params": True}}
    df = sweep.run(spec, tmp_path / "s", progress=False)
    p = data.separable(10, 4, seed=0)
    direct = steepest.fit_many(p.X, p.y, "linear", norm=["l2", "linf"], steps=300, lr=0.5, n_record=2, seed=0)
    for (_, row), r in zip(df.iterrows(), direct):
        assert np.array_equal(np.asarray(row["params"]), r.theta)
        for n in ("l2", "linf", "l1"):
            assert row[f"margin_ratio_{n}"] == pytest.approx(r.margin(n) / reference.max_margin(p.X, p.y, n).margin)
        assert 0 < row["margin_ratio"] <= 1 + 1e-9
        assert row["margin_ratio"] == row[f"margin_ratio_{row['fit.norm']}"]
    pytest.importorskip("cvxpy")
    spec = {"family": "factorization", "seeds": 1,
            "problem": {"generator": "matrix_sensing", "shape": [4, 4], "rank": 1, "n_measurements": 10},
            "fit": {"depth": 2, "lr": 0.05, "steps": 2000, "n_record": 2}, "grid": {"fit.init_scale": [1e-3, 0.5]}}
    df = sweep.run(spec, tmp_path / "f", progress=False)
    p = data.matrix_sensing((4, 4), 1, 10, seed=0)
    best = np.linalg.svd(reference.min_nuclear_norm(p.A, p.y), compute_uv=False).sum()
    assert df["nuclear_ratio"].tolist() == pytest.approx((df["nuclear_norm"] / best).tolist())
    assert df["nuclear_ratio"].iloc[0] == pytest.approx(1.0, abs=0.02)  # small init: min nuclear norm
    assert df["nuclear_distance"].iloc[0] < 0.05


# --------------------------------------------------------------------------- crash safety
CRASH_SPEC = {**SPEC, "seeds": 8, "grid": {"fit.init_scale": [1e-3, 1e-2, 0.1], "fit.weight_norm": ["none", "joint"]},
              "fit": {"depth": 2, "rtol": 1e-7, "n_record": 2}, "problem": {**SPEC["problem"], "sparsity": 3},
              "run": {"references": False}}


def _start(out, spec=CRASH_SPEC, options="num_threads=1"):
    code = ("import json, sys; from implicitbias import sweep; "
            f"sweep.run(json.loads(sys.argv[1]), sys.argv[2], progress=False, {options})")
    # SIGINT back to its default in the child, so that Python installs its KeyboardInterrupt handler even
    # when this process was started with SIGINT ignored (a background job of a non-interactive shell)
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(spec), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_chunks(proc, parts, n, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.isdir(parts) and sum(f.endswith(".parquet") for f in os.listdir(parts)) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the sweep wrote no chunk in time")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return sweep.run(CRASH_SPEC, tmp_path_factory.mktemp("full") / "s", progress=False)


def test_sigkill_mid_sweep_then_resume_gives_the_uninterrupted_table(tmp_path, uninterrupted):
    out = tmp_path / "s"
    parts = out / "parts"
    proc = _start(out)
    _wait_for_chunks(proc, parts, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    kept = sweep.load(out)
    n_chunks = len(sweep.check(CRASH_SPEC).chunks())
    assert 0 < len(kept) < len(uninterrupted) and not kept.attrs["complete"]
    (parts / ".chunk-000007.parquet.x1y2.tmp").write_bytes(b"PAR1 torn write")  # a write cut by the kill
    done_before = {f for f in os.listdir(parts) if f.endswith(".parquet")}
    resumed = sweep.run(CRASH_SPEC, out, progress=False)
    assert sorted(os.listdir(parts)) == [f"chunk-{i:06d}.parquet" for i in range(n_chunks)]
    assert resumed["run_id"].is_unique and resumed.attrs["complete"]
    _same(resumed, uninterrupted)
    # the chunks written before the kill were kept as they were, not recomputed
    merged = resumed.merge(kept, on="run_id", suffixes=("", "_kept"))
    assert len(merged) == len(kept) and (merged["wall_time"] == merged["wall_time_kept"]).all()
    assert done_before <= set(os.listdir(parts))


def test_ctrl_c_keeps_finished_chunks_and_stops_promptly(tmp_path, uninterrupted):
    out = tmp_path / "s"
    proc = _start(out)
    _wait_for_chunks(proc, out / "parts", 1)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    assert proc.returncode != 0 and "KeyboardInterrupt" in err and "run the same sweep again to resume" in err
    kept = sweep.load(out)
    assert 0 < len(kept) < len(uninterrupted)
    assert not [f for f in os.listdir(out / "parts") if f.endswith(".tmp")]
    _same(kept, uninterrupted[uninterrupted["run_id"].isin(kept["run_id"])].reset_index(drop=True))
    _same(sweep.run(CRASH_SPEC, out, progress=False), uninterrupted)


def test_dask_local_cluster_gives_the_local_table(tmp_path, uninterrupted):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        df = sweep.run(CRASH_SPEC, tmp_path / "s", backend="dask", client=client, progress=False)
        threads = client.run(lambda: __import__("implicitbias").sweep._runner._WORKER_LOCKS.keys().__len__())
    _same(df, uninterrupted)
    assert len(threads) == 2 and all(n == 1 for n in threads.values())  # both workers computed chunks


# --------------------------------------------------------------------------- worker processes
MIXED = [  # one spec per family; the diagonal one mixes methods (chunks), weight norms and depths (blocks)
    {**SPEC, "seeds": 1, "run": {"references": False, "save_params": True, "history": ["loss"]},
     "fit": {"rtol": 1e-6, "n_record": 3, "lr": 0.05, "steps": 400},
     "grid": {"fit.method": ["flow", "descent"], "problem.sparsity": [1, 2], "fit.depth": [2, 3],
              "fit.weight_norm": ["none", "joint"], "fit.init_scale": [0.01, 0.1]}},
    {"family": "steepest", "seeds": 2, "problem": {"generator": "separable", "n_samples": 10, "dim": 4},
     "fit": {"steps": 200, "lr": 0.5, "n_record": 2}, "run": {"references": False, "save_params": True},
     "grid": {"fit.model": ["linear", "diagonal"], "fit.norm": ["l2", "linf", "l1"]}},
    {"family": "factorization", "seeds": 2, "fit": {"depth": 2, "lr": 0.05, "steps": 300, "n_record": 2},
     "problem": {"generator": "matrix_sensing", "shape": [4, 4], "rank": 1, "n_measurements": 10},
     "grid": {"fit.init_scale": [1e-3, 0.1, 0.5]}, "run": {"references": False, "save_params": True}},
]


@pytest.mark.parametrize("spec", MIXED, ids=["diagonal", "steepest", "factorization"])
def test_results_do_not_depend_on_workers_or_threads(tmp_path, spec):
    """Worker processes (one thread per chunk, several threads for the last chunks, more workers than
    cores) give the table of the one-chunk-at-a-time schedule bitwise; the store holds every chunk once."""
    one = sweep.run(spec, tmp_path / "one", progress=False, workers=1, num_threads=1)
    n_chunks = len(sweep.check(spec).chunks())
    assert n_chunks >= 2 and one.attrs["complete"]
    for k, (workers, threads) in enumerate([(2, 2), (2, 4), (3, 2)]):
        df = sweep.run(spec, tmp_path / f"w{k}", progress=False, workers=workers, num_threads=threads)
        _same(df, one)
        schedule = sweep._runner.SCHEDULE
        assert sorted(c["chunk"] for c in schedule) == list(range(n_chunks))
        # one thread per chunk while chunks outnumber the free cores; with 4 cores the last chunk gets the rest
        assert (max(c["threads"] for c in schedule) > 1) == (threads == 4)
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        sweep.run(spec, tmp_path / "bad", progress=False, workers=0)
    with pytest.raises(ValueError, match="workers is for backend='local'"):
        sweep.run(spec, tmp_path / "bad", progress=False, backend="dask", workers=2)


def test_an_error_in_a_worker_process_is_raised_and_the_finished_chunks_stay(tmp_path):
    # sparsity 30 > dim: the generator raises in the worker computing that chunk
    spec = {**SPEC, "run": {"references": False}, "grid": {"problem.sparsity": [1, 30]}}
    with pytest.raises(ValueError, match="sparsity") as info:
        sweep.run(spec, tmp_path / "s", progress=False, workers=2)
    assert "in a sweep worker process" in "".join(getattr(info.value, "__notes__", ["in a sweep worker process"]))
    assert set(sweep.load(tmp_path / "s")["problem.sparsity"]) <= {1}


# chunk 0 (N = 400, M = 200, 5000 descent steps) takes over a second, the others (N = 8 ... 19) milliseconds: with two
# workers, the later chunks are stored while chunk 0 is still in flight
SLOW_SPEC = {"family": "diagonal", "seeds": 1, "run": {"references": False},
             "problem": {"generator": "sparse_regression"},
             "fit": {"method": "descent", "lr": 0.01, "steps": 5000, "n_record": 2, "depth": 2},
             "zip": {"problem.dim": [400] + list(range(8, 20)), "problem.n_measurements": [200] + [4] * 12,
                     "problem.sparsity": [10] + [1] * 12},
             "grid": {"fit.init_scale": [1e-3, 0.1]}}


@pytest.fixture(scope="module")
def slow_uninterrupted(tmp_path_factory):
    return sweep.run(SLOW_SPEC, tmp_path_factory.mktemp("slow") / "s", progress=False, workers=1)


def _children(pid):
    """The pids of a process's children (Linux), or None where /proc does not list them."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return None


def _gone(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for c in pids:
            try:
                with open(f"/proc/{c}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(c)
            except OSError:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("stop", ["sigkill", "ctrl_c"])
def test_out_of_order_chunks_then_stop_and_resume(tmp_path, slow_uninterrupted, stop):
    """With two workers the short chunks are stored before chunk 0; kill -9 (or Ctrl-C) then leaves a gap at
    chunk 0, the worker processes die with the sweep, and the resumed sweep fills the gap: the table of an
    uninterrupted sweep, with the chunks stored before the stop kept as they were."""
    out, n_chunks = tmp_path / "s", len(sweep.check(SLOW_SPEC).chunks())
    parts = out / "parts"
    proc = _start(out, SLOW_SPEC, "workers=2, num_threads=2")
    _wait_for_chunks(proc, parts, 3)
    workers = _children(proc.pid)
    sent = time.monotonic()
    proc.send_signal(signal.SIGKILL if stop == "sigkill" else signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10
    if stop == "ctrl_c":
        assert proc.returncode != 0 and "KeyboardInterrupt" in err and "run the same sweep again to resume" in err
        assert not [f for f in os.listdir(parts) if f.endswith(".tmp")]
    if workers is not None:
        assert len(workers) == 2 and _gone(workers)
    kept = sweep.load(out)
    done = sweep._store.Store(out, sweep.check(SLOW_SPEC), n_chunks, len(slow_uninterrupted)).done()
    assert 0 not in done and len(done) >= 3 and len(done) < n_chunks  # out of order: a gap at chunk 0
    _same(kept, slow_uninterrupted[slow_uninterrupted["run_id"].isin(kept["run_id"])].reset_index(drop=True))
    resumed = sweep.run(SLOW_SPEC, out, progress=False, workers=2)
    assert sorted(os.listdir(parts)) == [f"chunk-{i:06d}.parquet" for i in range(n_chunks)]
    _same(resumed, slow_uninterrupted)
    assert sorted(c["chunk"] for c in sweep._runner.SCHEDULE) == sorted(set(range(n_chunks)) - done)
    merged = resumed.merge(kept, on="run_id", suffixes=("", "_kept"))
    assert len(merged) == len(kept) and (merged["wall_time"] == merged["wall_time_kept"]).all()


# --------------------------------------------------------------------------- phase tables, CLI
def test_phase_table_and_plot(tmp_path):
    df = pd.DataFrame({"a": [1, 1, 2, 2, 1], "b": [0.1, 0.1, 0.1, 0.2, 0.2], "ok": [True, False, True, True, True]})
    t = sweep.phase_table(df, x="a", y="b", value="ok")
    assert t.loc[0.1, 1] == 0.5 and t.loc[0.1, 2] == 1.0 and t.loc[0.2, 1] == 1.0 and t.loc[0.2, 2] == 1.0
    with pytest.raises(ValueError, match="column 'c'"):
        sweep.phase_table(df, x="a", y="c", value="ok")
    pytest.importorskip("matplotlib")
    ax = sweep.plot_phase(df, x="a", y="b", value="ok", overlay=t, title="t")
    assert np.allclose(ax.images[0].get_array(), t.to_numpy())


def test_cli_sweep(tmp_path):
    from implicitbias.cli import main

    spec = tmp_path / "s.toml"
    spec.write_text('family = "diagonal"\nseeds = 1\n[problem]\ngenerator = "sparse_regression"\n'
                    'n_measurements = 8\ndim = 16\nsparsity = 1\n[fit]\nrtol = 1e-5\nn_record = 2\n'
                    '[grid]\n"fit.init_scale" = [0.01, 0.1]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--no-progress", "--threads", "1"]) == 0
    assert len(sweep.load(tmp_path / "o")) == 2
    spec.write_text(spec.read_text().replace("sparsity = 1\n", "").replace(
        '"fit.init_scale"', '"problem.sparsity" = [1, 2]\n"fit.init_scale"'))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "w2"), "--no-progress", "--workers", "2"]) == 0
    assert main(["sweep", str(spec), "--out", str(tmp_path / "w1"), "--no-progress", "--workers", "1"]) == 0
    _same(sweep.load(tmp_path / "w2"), sweep.load(tmp_path / "w1"))
    assert [c["threads"] for c in sweep._runner.SCHEDULE] == [sweep._runner._max_threads()] * 2
    with pytest.raises(SystemExit):
        main(["sweep", str(spec), "--out", str(tmp_path / "w0"), "--workers", "0"])
    spec.write_text(spec.read_text().replace("seeds = 1", "seeds = 2"))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    spec.write_text(spec.read_text().replace("rtol", "rtoll"))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "p"), "--no-progress"]) == 2


def test_reproduce_phase_quick(tmp_path):
    pytest.importorskip("matplotlib")
    from implicitbias.cli import main
    from implicitbias.experiments import spec_path

    out = tmp_path / "phase"
    assert main(["reproduce", "phase", "--quick", "--out", str(out), "--no-progress", "--threads", "1"]) == 0
    for name in ("plain.csv", "wn.csv", "dt.csv", "recovery.png", "donoho_tanner.png"):
        assert (out / f"phase_{name}").stat().st_size > 0
    # the reproduction's runs are the rows of its specs' stores: `implicitbias sweep SPEC` gives the same table
    stores = out / "sweeps" / "quick"
    wn = sweep.load(stores / "phase_wn")
    assert main(["sweep", spec_path("phase_wn", quick=True), "--out", str(tmp_path / "direct"), "--no-progress"]) == 0
    _same(sweep.load(tmp_path / "direct"), wn)
    spec = wn.attrs["spec"]
    assert len(wn) == len(spec["seeds"]) * 1 * 2 * 2  # depths x init scales x lr ratios
    for cell in pd.read_csv(out / "phase_wn.csv").itertuples():  # the share of runs within 1% of x*
        sel = wn[(wn["fit.init_scale"] == cell[2]) & (wn["fit.lr_ratio"] == cell[3])]
        assert len(sel) == len(spec["seeds"]) and cell.p_recovered == np.mean(sel["relative_error"] <= 1e-2)
    dt = sweep.load(stores / "phase_dt")
    row = dt.iloc[-1]  # basis pursuit's success, recomputed with the reference solver
    p = data.sparse_regression(int(row["problem.n_measurements"]), 30, int(row["problem.sparsity"]),
                               seed=int(row["seed"]))
    err = np.linalg.norm(reference.basis_pursuit(p.A, p.y) - p.x_star) / np.linalg.norm(p.x_star)
    assert row["bp_relative_error"] == pytest.approx(err, rel=1e-9)
    summary = pd.read_csv(out / "phase_dt.csv")
    assert set(summary["delta"]) == {0.33, 0.67} and len(summary) == 3 * 4


def test_sweep_dependencies_are_optional(monkeypatch, tmp_path):
    code = ("import sys, implicitbias; from implicitbias import sweep, cli, experiments; "
            "bad = [m for m in ('pandas', 'pyarrow', 'distributed') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    sweep.run({**SPEC, "seeds": 1, "grid": {"problem.sparsity": [1]}}, tmp_path / "s", progress=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'implicitbias\[sweep\]'"):
        sweep.load(tmp_path / "s")
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'implicitbias\[dask\]'"):
        sweep.run({**SPEC, "seeds": 2}, tmp_path / "d", backend="dask", progress=False)
