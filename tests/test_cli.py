"""The command line and the reproductions (quick mode), end to end."""

from __future__ import annotations

import os

import numpy as np
import pytest

import implicitbias as ib
from implicitbias import build_info, data, factorization, hessian, sweep
from implicitbias.cli import main
from implicitbias.experiments import spec_path

pd = pytest.importorskip("pandas")


def _outputs(out) -> list[str]:
    return sorted(n for n in os.listdir(out) if n != "sweeps")


def _png(path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_reproduce_weightnorm_quick_writes_its_files(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["reproduce", "weightnorm", "--quick", "--out", str(out), "--no-progress", "--csv"]) == 0
    assert _outputs(out) == sorted([
        "weightnorm_summary.csv", "weightnorm_runs.csv", "weightnorm_trajectories_runs.csv",
        "weightnorm_error_vs_scale.png", "weightnorm_trajectories.png",
    ])
    assert all(_png(out / f"weightnorm_{p}.png") for p in ("error_vs_scale", "trajectories"))
    runs = sweep.load(out / "sweeps" / "quick" / "weightnorm")  # the runs are the rows of the sweep store
    spec = sweep.read_toml(spec_path("weightnorm", quick=True))
    assert len(runs) == runs.attrs["n_runs"] == 2 * 4 * 4 * spec["seeds"] and runs.attrs["complete"]
    # every run ended in a documented state and its error is ||x - x*|| (finite)
    assert set(runs["status"]) <= {"converged", "max_time", "stalled", "max_steps"}
    assert np.all(np.isfinite(runs["error"]))
    exported = sweep.read_csv(out / "weightnorm_runs.csv")  # --csv: the store's table, lists included
    assert exported["history.loss"].tolist() == [list(v) for v in runs["history.loss"]]
    summary = pd.read_csv(out / "weightnorm_summary.csv")

    # the paper's claim, at alpha = 0.1, depth 2: WN (kappa 100) recovers x*, plain flow does not
    s = summary.set_index(["config", "depth", "init_scale"])
    assert s.loc[("WN k=100", 2, 0.1), "error_median"] < 1e-3 < 0.1 < s.loc[("plain", 2, 0.1), "error_median"]
    # and it gets there sooner: the summary's median flow time to a loss of 1e-8 of the start
    t_tol = s["t_loss_1e-8_median"]
    assert t_tol[("WN k=100", 2, 0.1)] < t_tol[("plain", 2, 0.1)] / 10
    assert "wrote" in capsys.readouterr().out
    # a store of another spec under DIR/sweeps is refused with a message, not overwritten
    meta = out / "sweeps" / "quick" / "weightnorm_trajectories" / "spec.json"
    meta.write_text(meta.read_text().replace('"hash": "', '"hash": "0'))
    assert main(["reproduce", "weightnorm", "--quick", "--out", str(out), "--no-progress"]) == 2
    assert "changed spec is refused" in capsys.readouterr().err


def test_cli_rejects_unknown_experiment_and_bad_threads(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "nonexistent"])
    with pytest.raises(SystemExit):
        main(["reproduce", "weightnorm", "--threads", "0"])


def test_info_and_build_info(capsys):
    assert main(["info"]) == 0
    info = build_info()
    assert info["isa"] in ("baseline", "native", "x86-64-v3", "x86-64-v4")
    assert info["max_threads"] >= 1
    out = capsys.readouterr().out
    for key in ("version", "isa", "simd", "openmp", "openmp_version", "max_threads", "cores_installed"):
        assert f"\n{key}: " in "\n" + out, key
    assert info["version"] == ib.__version__
    assert info["cores_installed"][0] == "baseline"
    assert info["isa"] == "native" or info["isa"] in info["cores_installed"]
    assert info["core_file"].startswith("_core")
    # OpenMP: a version exactly when it is built in, one thread without it
    assert (info["openmp_version"] is not None) == info["openmp"]
    assert info["openmp"] or info["max_threads"] == 1
    # the SIMD list is Eigen's, and an AVX2 / AVX-512 variant really uses those instructions
    assert info["simd"]
    if info["isa"] == "x86-64-v3":
        assert "AVX2" in info["simd"] and "FMA" in info["simd"]
    if info["isa"] == "x86-64-v4":
        assert "AVX512" in info["simd"]


def test_version_names_the_core_simd_and_openmp(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    line = capsys.readouterr().out.strip()
    info = build_info()
    assert line.startswith(f"implicitbias {ib.__version__} (core {info['isa']}; SIMD {info['simd']}; ")
    assert line.endswith(f"OpenMP {info['openmp_version']}, {info['max_threads']} threads)" if info["openmp"]
                         else "no OpenMP)")


def test_sparse_regression_generator():
    d = data.sparse_regression(30, 50, 5, seed=3)
    assert d.A.shape == (30, 50) and d.y.shape == (30,) and np.count_nonzero(d.x_star) == 5
    np.testing.assert_allclose(d.A @ d.x_star, d.y)
    # N(0, 1/M) entries: column norms concentrate around 1
    assert abs(np.mean(np.sum(d.A**2, axis=0)) - 1.0) < 0.1
    d2 = data.sparse_regression(30, 50, 5, seed=3)
    assert np.array_equal(d.A, d2.A)
    assert np.all(data.sparse_regression(10, 20, 4, seed=0, nonnegative=True).x_star >= 0)
    for kwargs, name in [({"n_measurements": 0}, "n_measurements"), ({"dim": -1}, "dim"),
                         ({"sparsity": 60}, "sparsity"), ({"seed": -2}, "seed"), ({"noise": -1.0}, "noise")]:
        args = {"n_measurements": 30, "dim": 50, "sparsity": 5, "seed": 0} | kwargs
        with pytest.raises(ValueError, match=name):
            data.sparse_regression(**args)


def test_reproduce_margins_quick_writes_its_files(tmp_path):
    out = tmp_path / "m"
    assert main(["reproduce", "margins", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert _outputs(out) == sorted([
        "margins_summary.csv", "margins_final.csv", "margins_drops.csv",
        "margins_table.png", "margins_trajectories.png", "margins_drop_vs_lr.png",
    ])
    assert all(_png(out / f"margins_{p}.png") for p in ("table", "trajectories", "drop_vs_lr"))
    table = sweep.load(out / "sweeps" / "quick" / "margins")
    assert len(table) == 2 * 3 * len(table.attrs["spec"]["seeds"])
    summary = pd.read_csv(out / "margins_summary.csv")
    # each algorithm is best in its own norm (linear model: against the exact optimum)
    mean = {(r.model, r.algorithm, r.margin_norm): r.mean for r in summary.itertuples()}
    for model in ("linear", "diagonal"):
        for norm in ("l2", "linf", "l1"):
            own = mean[(model, norm, norm)]
            others = [mean[(model, a, norm)] for a in ("l2", "linf", "l1") if a != norm]
            assert own > max(others), (model, norm)
    for norm in ("l2", "linf", "l1"):
        assert mean[("linear", norm, norm)] > 0.99
    # the largest smoothed-margin drop shrinks with the step (sign descent: strictly)
    drops = pd.read_csv(out / "margins_drops.csv")
    linf = drops[drops["norm"] == "linf"].sort_values("lr", ascending=False)["largest_drop"].to_numpy()
    assert linf[-1] < linf[0]
    # every trajectory run separates the training set
    assert (pd.read_csv(out / "margins_final.csv")["accuracy"] == 1.0).all()


def test_reproduce_flatness_quick_writes_its_files(tmp_path, capsys):
    out = tmp_path / "flat"
    assert main(["reproduce", "flatness", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert _outputs(out) == sorted([
        "flatness_summary.csv", "flatness_estimators.csv", "flatness_estimator_summary.csv",
        "flatness_nuclear.png", "flatness_trace.png", "flatness_sharpness.csv",
    ])
    assert all(_png(out / f"flatness_{p}.png") for p in ("nuclear", "trace"))
    runs = sweep.load(out / "sweeps" / "quick" / "flatness")
    assert len(runs) == 2 * (5 + 1) and set(runs["status"]) == {"max_steps"}
    summary = pd.read_csv(out / "flatness_summary.csv").set_index(["config", "depth", "n"])
    # the paper's claim at n = 160 (enough measurements), depth 2: the trace penalty finds the
    # minimum nuclear norm interpolator (and M*), GD from large initialization does not
    tp, big = summary.loc[("trace penalty", 2, 160)], summary.loc[("GD large init", 2, 160)]
    assert abs(tp["nuclear_ratio_median"] - 1) < 0.05 and tp["error_median"] < 0.05
    assert big["nuclear_ratio_median"] > 2 and big["error_median"] > 1
    # the trace at the end is at least about the bound (RIP constant well below 1 at this n)
    assert (summary["trace_over_bound_median"] > 0.8).all()
    est = pd.read_csv(out / "flatness_estimator_summary.csv")
    assert set(est["estimator"]) == {"Hutchinson", "Hutch++", "XTrace"}
    assert (est["rel_error_median"] < 0.5).all()
    # the flatness pair at the end of every run: the sharpness against numpy's eigh of the dense Hessian (one
    # run), within its residual bound, and never above the trace where the loss is ~0 (H ~ PSD)
    pairs = pd.read_csv(out / "flatness_sharpness.csv")
    assert len(pairs) == len(runs) and (pairs["sharpness_residual"] <= 1e-9 * pairs["sharpness"]).all()
    row = runs.sort_values("run_id").iloc[0]
    prob = data.matrix_sensing((20, 20), 2, int(row["problem.n_measurements"]), seed=int(row["seed"]))
    layers = factorization.unpack([20] * (int(row["fit.depth"]) + 1), np.asarray(row["params"]))
    top = np.linalg.eigvalsh(hessian.dense(layers, prob.A, prob.y))[-1]
    assert abs(pairs["sharpness"].iloc[0] - top) <= 1e-9 * top
    fitted = pairs[pairs["loss"] < 1e-6]
    assert len(fitted) and (fitted["sharpness"] <= fitted["trace"]).all()
    assert "wrote" in capsys.readouterr().out
