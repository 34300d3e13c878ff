"""The command line and the weightnorm reproduction (quick mode), end to end."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

import implicitbias as ib
from implicitbias import build_info, data
from implicitbias.cli import main
from implicitbias.experiments import weightnorm


def test_reproduce_weightnorm_quick_writes_its_files(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["reproduce", "weightnorm", "--quick", "--out", str(out), "--no-progress"]) == 0
    names = sorted(os.listdir(out))
    assert names == sorted([
        "weightnorm_runs.csv", "weightnorm_curves.csv", "weightnorm_summary.json",
        "weightnorm_error_vs_scale.png", "weightnorm_trajectories.png",
    ])
    for png in ("weightnorm_error_vs_scale.png", "weightnorm_trajectories.png"):
        with open(out / png, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(out / "weightnorm_runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    cfg = weightnorm.settings(quick=True)
    assert len(rows) == len(cfg["depths"]) * len(cfg["seeds"]) * len(cfg["init_scales"]) * len(cfg["configs"])
    # every run ended in a documented state and its error is ||x - x*|| (finite)
    assert {r["status"] for r in rows} <= {"converged", "max_time", "stalled", "max_steps"}
    assert all(np.isfinite(float(r["error"])) for r in rows)
    with open(out / "weightnorm_summary.json") as fh:
        summary = json.load(fh)
    assert summary["settings"]["n_measurements"] == 40

    # the paper's claim, at alpha = 0.1, depth 2: WN (kappa 100) recovers x*, plain flow does not
    med = {(s["config"], s["depth"], s["init_scale"]): s["error_median"] for s in summary["summary"]}
    assert med[("WN k=100", 2, 0.1)] < 1e-3 < 0.1 < med[("plain", 2, 0.1)]
    # and it gets there sooner: the summary's median flow time to a loss of 1e-8 of the start
    t_tol = {(s["config"], s["depth"], s["init_scale"]): s["t_loss_1e-8_median"] for s in summary["summary"]}
    assert t_tol[("WN k=100", 2, 0.1)] < t_tol[("plain", 2, 0.1)] / 10
    assert "wrote" in capsys.readouterr().out


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
    from implicitbias.experiments import margins

    out = tmp_path / "m"
    assert main(["reproduce", "margins", "--quick", "--out", str(out), "--no-progress"]) == 0
    names = sorted(os.listdir(out))
    assert names == sorted([
        "margins_table.csv", "margins_trajectories.csv", "margins_drops.csv", "margins_summary.json",
        "margins_table.png", "margins_trajectories.png", "margins_drop_vs_lr.png",
    ])
    for png in ("margins_table.png", "margins_trajectories.png", "margins_drop_vs_lr.png"):
        with open(out / png, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(out / "margins_summary.json") as fh:
        summary = json.load(fh)
    cfg = margins.settings(quick=True)
    with open(out / "margins_table.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * len(cfg["seeds"]) * 9
    # each algorithm is best in its own norm (linear model: against the exact optimum)
    mean = {(s["model"], s["algorithm"], s["margin_norm"]): s["mean"] for s in summary["summary"]}
    for model in ("linear", "diagonal"):
        for norm in ("l2", "linf", "l1"):
            own = mean[(model, norm, norm)]
            others = [mean[(model, a, norm)] for a in ("l2", "linf", "l1") if a != norm]
            assert own > max(others), (model, norm)
    for norm in ("l2", "linf", "l1"):
        assert mean[("linear", norm, norm)] > 0.99
    # the largest smoothed-margin drop shrinks with the step (sign descent: strictly)
    drops = [d for d in summary["drops"] if d["norm"] == "linf"]
    drops.sort(key=lambda d: -d["lr"])
    assert drops[-1]["largest_drop"] < drops[0]["largest_drop"]
    # every trajectory run separates the training set
    assert all(v["accuracy"] == 1.0 for v in summary["final"].values())


def test_reproduce_flatness_quick_writes_its_files(tmp_path, capsys):
    from implicitbias.experiments import flatness

    out = tmp_path / "flat"
    assert main(["reproduce", "flatness", "--quick", "--out", str(out), "--no-progress"]) == 0
    names = sorted(os.listdir(out))
    assert names == sorted([
        "flatness_runs.csv", "flatness_estimators.csv", "flatness_summary.json",
        "flatness_nuclear.png", "flatness_trace.png",
    ])
    for png in ("flatness_nuclear.png", "flatness_trace.png"):
        with open(out / png, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    cfg = flatness.settings(quick=True)
    with open(out / "flatness_runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    per_problem = len(cfg["depths"]) * (len(cfg["configs"]) - 1) + 1
    assert len(rows) == len(cfg["n_measurements"]) * len(cfg["seeds"]) * per_problem
    assert {r["status"] for r in rows} == {"max_steps"}
    with open(out / "flatness_summary.json") as fh:
        summary = json.load(fh)
    med = {(s["config"], s["depth"], s["n"]): s for s in summary["summary"]}
    # the paper's claim at n = 160 (enough measurements), depth 2: the trace penalty finds the
    # minimum nuclear norm interpolator (and M*), GD from large initialization does not
    tp, big = med[("trace penalty", 2, 160)], med[("GD large init", 2, 160)]
    assert abs(tp["nuclear_ratio_median"] - 1) < 0.05 and tp["error_median"] < 0.05
    assert big["nuclear_ratio_median"] > 2 and big["error_median"] > 1
    # the trace at the end is at least about the bound (RIP constant well below 1 at this n)
    assert all(s["trace_over_bound_median"] > 0.8 for s in summary["summary"])
    est = summary["estimator_summary"]
    assert {e["estimator"] for e in est} == {"Hutchinson", "Hutch++", "XTrace"}
    assert all(e["rel_error_median"] < 0.5 for e in est)
    assert "wrote" in capsys.readouterr().out
