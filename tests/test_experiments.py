"""The one pipeline: every result's to_row(), the reproductions' shipped specs, the store's CSV export."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from implicitbias import data, diagonal, factorization, steepest, sweep
from implicitbias.experiments import REGISTRY, spec_path, specs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"
BASE = ["status", "success", "n_steps", "n_grad_evals", "t_final", "wall_time"]
COLUMNS = {  # docs/sweeps.md, "Columns": what to_row() gives per family
    "diagonal": BASE + ["depth", "init_scale", "lr_ratio", "weight_norm", "nonnegative", "method", "lr", "loss",
                        "n_rejected", "radius", "radius_u", "radius_v", "alpha_eff"],
    "steepest": BASE + ["model", "norm", "optimizer", "degree", "log_loss", "accuracy", "margin_l2", "margin_linf",
                        "margin_l1", "margin_spectral"],
    "factorization": BASE + ["method", "depth", "width", "init_scale", "init", "lr", "strength", "seed", "loss",
                             "trace", "nuclear_norm", "effective_rank", "error"],
}


def _results() -> dict[str, list]:
    p = data.sparse_regression(6, 10, 1, seed=0)
    s = data.separable(8, 3, seed=0)
    m = data.matrix_sensing((3, 3), 1, 6, seed=0)
    return {
        "diagonal": diagonal.fit_many(p.A, p.y, weight_norm=[None, "joint", "separate"], rtol=1e-4, n_record=2)
        + [diagonal.fit(p.A, p.y, method="descent", lr=0.1, steps=20, init_scale=np.linspace(0.1, 0.2, 10))],
        "steepest": steepest.fit_many(s.X, s.y, model=["linear", "relu2"], width=[None, 4], steps=30, n_record=2),
        "factorization": factorization.fit_many(factorization.sensing_operator(m.A), m.y, depth=2, steps=20,
                                                method=["descent", "flow"], lr=[0.05, None], n_record=2),
    }


def test_to_row_has_the_documented_columns_of_each_family():
    docs = DOCS.read_text()
    results_of = _results()
    for family, results in results_of.items():
        for r in results:
            row = r.to_row()
            assert list(row) == COLUMNS[family], family
            for k, v in row.items():  # flat scalars, never None (a column keeps one type)
                assert isinstance(v, (bool, int, float, str, np.integer, np.floating)), (family, k, v)
            assert row["status"] == r.status and row["n_grad_evals"] == r.n_grad_evals
        for column in COLUMNS[family]:
            assert f"`{column}`" in docs, f"docs/sweeps.md does not name the column {column}"
    d = results_of["diagonal"]
    assert d[0].to_row()["weight_norm"] == "none" and np.isnan(d[0].to_row()["radius"])
    assert d[1].to_row()["radius"] == d[1].radius and d[1].to_row()["alpha_eff"] == d[1].alpha_eff()[0]
    assert np.isnan(d[2].to_row()["alpha_eff"]) and d[2].to_row()["radius_u"] == d[2].radius[0]
    assert np.isnan(d[3].to_row()["init_scale"]) and d[3].to_row()["lr"] == 0.1  # coordinates' scales differ
    s = results_of["steepest"]
    assert s[0].to_row()["margin_spectral"] == s[0].margin("l2")  # one block: the spectral norm is the l2 norm
    assert s[1].to_row()["margin_spectral"] == s[1].margin("spectral") and s[1].to_row()["norm"] == "l2"


def test_every_shipped_spec_checks_and_has_a_quick_version():
    names = specs()
    assert sorted(n for m in REGISTRY.values() for n in m.SPECS) == names
    for name in names:
        for quick in (False, True):
            spec = sweep.check(sweep.read_toml(spec_path(name, quick)))
            assert spec.runs()
    with pytest.raises(ValueError, match="no spec named 'nope'"):
        spec_path("nope")


def test_csv_export_round_trips_scalars_and_lists(tmp_path):
    spec = {"family": "diagonal", "seeds": 2, "problem": {"generator": "sparse_regression", "n_measurements": 6,
                                                         "dim": 10, "sparsity": 1},
            "fit": {"rtol": 1e-4, "record_times": {"logspace": [-1, 1, 3]}},
            "grid": {"fit.weight_norm": ["none", "joint"]},
            "run": {"save_params": True, "history": ["t", "loss", "radius"]}}
    df = sweep.run(spec, tmp_path / "s", progress=False, num_threads=1)
    assert [list(t[1:4]) for t in df["history.t"]] == [[0.1, 1.0, 10.0]] * 4  # start, record_times, end
    assert df["history.radius"].isna().tolist() == [True, True, False, False]  # plain (2 seeds): no radius
    path = sweep.to_csv(tmp_path / "s", tmp_path / "s.csv")
    back = sweep.read_csv(path)
    assert list(back.columns) == list(df.columns)
    for c in df.columns:
        if c == "params" or c.startswith("history."):
            assert [None if v is None else list(v) for v in df[c]] == back[c].tolist(), c
        else:
            assert np.array_equal(df[c].to_numpy(), back[c].to_numpy()) or df[c].isna().equals(back[c].isna()), c
    assert os.path.getsize(path) > 0
    with pytest.raises(sweep.SpecError, match=r"run.history: 'curvature' is not a recorded channel"):
        sweep.check({**spec, "run": {"history": ["curvature"]}})
    with pytest.raises(sweep.SpecError, match=r"fit.record_times: must be a non-empty list of numbers"):
        sweep.check({**spec, "fit": {"record_times": "often"}})


def test_a_reproduction_summarizes_the_stored_rows(tmp_path):
    """margins' drops: the summary's largest drop is the one of the stored smoothed-margin history."""
    from implicitbias.experiments import margins

    df = sweep.run(spec_path("margins_drops", quick=True), tmp_path / "d", progress=False, num_threads=1)
    drops = margins.summarize({"margins": _tiny_margins(tmp_path), "margins_trajectories": df.iloc[:0],
                               "margins_drops": df})["drops"]
    r = df.iloc[0]
    sm = np.asarray(r["history.smoothed_margin"])[np.flatnonzero(np.asarray(r["history.accuracy"]) == 1.0)[0]:]
    assert drops["raw_largest_drop"].iloc[0] == np.max(-np.diff(sm))
    p = data.separable(15, 20, seed=0)  # the same run, directly
    direct = steepest.fit(p.X, p.y, "linear", norm=r["fit.norm"], lr=r["fit.lr"], init=np.full(20, 0.01),
                          steps=int(r["fit.steps"]), record_every=1)
    assert np.array_equal(direct.history["smoothed_margin"], np.asarray(r["history.smoothed_margin"]))
    assert re.fullmatch(r"\d+", str(drops["steps"].iloc[0]))


def _tiny_margins(tmp_path):
    spec = sweep.read_toml(spec_path("margins", quick=True))
    spec["fit"]["steps"] = 50
    spec["seeds"] = 1
    return sweep.run(spec, tmp_path / "m", progress=False, num_threads=1)


def test_reproduce_saddles_quick(tmp_path):
    """saddles: the stored trajectories sit on the limit staircase (reference.saddle_sequence) at alpha = 1e-60,
    their distance to it shrinks from alpha = 1e-5, and the stored x is the run's own (its loss, a direct fit)."""
    from implicitbias.experiments import reproduce, saddles
    from implicitbias.reference import basis_pursuit, saddle_sequence

    paths = reproduce(saddles, str(tmp_path), quick=True, progress=False, num_threads=1, figures=False)
    assert sorted(os.path.basename(p) for p in paths) == ["saddles", "saddles_distance.csv", "saddles_staircase.csv"]
    df = sweep.load(tmp_path / "sweeps" / "quick" / "saddles")
    A, y = saddles.problem_of(df)
    seq = saddle_sequence(A, y)
    np.testing.assert_allclose(seq.saddles[-1], basis_pursuit(A, y), atol=1e-8)
    assert np.round(seq.times[1:], 2).tolist() == [0.34, 2.84, 5.36, 8.86, 13.31, 24.86]  # docs/experiments.md
    assert seq.losses[-1] < 1e-25
    import pandas as pd

    dist = pd.read_csv(tmp_path / "saddles_distance.csv")
    tiny, big = dist[dist["init_scale"] == 1e-60], dist[dist["init_scale"] == 1e-5]
    assert len(tiny) == len(big) == seq.n_jumps + 1 >= 5
    assert tiny["distance"].max() < 1e-6 < big["distance"].max()
    assert np.all(tiny["distance"].to_numpy()[1:] < big["distance"].to_numpy()[1:])
    stairs = pd.read_csv(tmp_path / "saddles_staircase.csv")
    np.testing.assert_allclose(stairs["tau_start"], seq.times)
    spec = sweep.read_toml(spec_path("saddles", quick=True))
    for _, r in df.iterrows():
        X = np.array([list(v) for v in r["history.x"]])
        loss = 0.5 * np.sum((X @ A.T - y) ** 2, axis=1)
        # to rounding: at alpha = 1e-60 x = 2 alpha^2 sinh(z) with |z| ~ 70 amplifies the rounding of z = A^T s
        np.testing.assert_allclose(np.sqrt(2 * loss), np.sqrt(2 * np.asarray(r["history.loss"])), rtol=0,
                                   atol=1e-11)
    r = df[df["fit.init_scale"] == 1e-60].iloc[0]
    k = spec["zip"][0]["fit.init_scale"].index(1e-60)
    direct = diagonal.fit(A, y, init_scale=1e-60, t_max=spec["zip"][0]["fit.t_max"][k],
                          record_times=np.linspace(*spec["zip"][0]["fit.record_times"][k]["linspace"][:2],
                                                   spec["zip"][0]["fit.record_times"][k]["linspace"][2]),
                          **{n: v for n, v in spec["fit"].items()}, num_threads=1)
    np.testing.assert_array_equal(direct.history["x"], np.array([list(v) for v in r["history.x"]]))


def test_reproduce_stepsize_quick(tmp_path):
    """stepsize: the store's rows are direct fit_many calls on the rescaled problem (entry_std = 0.5: the
    default draws times sqrt(M) / 2), a converged run ends at the limit its own bookkeeping predicts
    (independently recomputed here), SGD with batch 1 just below divergence ends far closer to basis pursuit
    than GD at any step (docs/experiments.md, "Step size"), GD gets worse as its step grows, and heavy ball
    at equal lambda ends closer together than GD at the next lambda."""
    import pandas as pd

    from implicitbias.experiments import reproduce, stepsize
    from implicitbias.reference import basis_pursuit, diagonal_flow_limit

    paths = reproduce(stepsize, str(tmp_path), quick=True, progress=False, num_threads=1, figures=False)
    assert sorted(os.path.basename(p) for p in paths) == [
        "stepsize_curves.csv", "stepsize_gd", "stepsize_momentum", "stepsize_momentum.csv", "stepsize_sgd",
        "stepsize_window.csv"]
    d = data.sparse_regression(20, 30, 3, seed=0, entry_std=0.5)
    np.testing.assert_allclose(d.A, data.sparse_regression(20, 30, 3, seed=0).A * np.sqrt(20) / 2, rtol=1e-15)
    with pytest.raises(ValueError, match="entry_std"):
        data.sparse_regression(20, 30, 3, entry_std=-1.0)
    x_bp = basis_pursuit(d.A, d.y)
    sgd = sweep.load(tmp_path / "sweeps" / "quick" / "stepsize_sgd")
    spec = sweep.read_toml(spec_path("stepsize_sgd", quick=True))
    lrs, bs = spec["zip"][0]["fit.lr"], spec["zip"][0]["fit.batch_size"]
    runs = diagonal.fit_many(d.A, d.y, x_star=d.x_star, lr=lrs, batch_size=bs, num_threads=1,
                             **{k: v for k, v in spec["fit"].items()})
    for r, (_, row) in zip(runs, sgd.sort_values("run_id").iterrows()):
        assert r.status == row["status"] and r.n_steps == row["n_steps"]
        assert np.linalg.norm(r.x - x_bp) == row["bp_distance"]
        if r.status != "diverged":
            assert np.abs(np.log(0.1 / r.alpha_eff())).sum() == pytest.approx(row["alpha_gain"], rel=1e-12)
    for name in ("stepsize_gd", "stepsize_momentum"):  # the quick SGD runs stop at max_steps
        df = sweep.load(tmp_path / "sweeps" / "quick" / name)
        conv = df[df["status"] == "converged"]
        assert len(conv) >= 2 and conv["effective_limit_distance"].max() < 1e-8
    gd = sweep.load(tmp_path / "sweeps" / "quick" / "stepsize_gd")
    spec = sweep.read_toml(spec_path("stepsize_gd", quick=True))
    r = diagonal.fit(d.A, d.y, lr=spec["grid"]["fit.lr"][2], num_threads=1, **spec["fit"])
    assert r.status == "converged"
    pred = diagonal_flow_limit(d.A, d.y, r.alpha_eff(), log_alpha_ratio=r.log_alpha_ratio())
    assert np.linalg.norm(r.x - pred) < 1e-10
    assert np.linalg.norm(r.x - x_bp) == gd.sort_values("run_id")["bp_distance"].iloc[2]

    window = pd.read_csv(tmp_path / "stepsize_window.csv").set_index("config")
    assert window.loc["SGD b=1", "distance_best"] < 0.02 < 0.3 < window.loc["GD", "distance_best"]
    assert window.loc["SGD b=1", "gamma_rel_best"] >= 0.8  # just below divergence
    assert window.loc["GD", "distance_last_stable"] > window.loc["GD", "distance_small_step"]
    assert window.loc["SGD b=1", "gain_best"] > 10 * window.loc["GD", "gain_best"]
    mom = pd.read_csv(tmp_path / "stepsize_momentum.csv")
    first = mom.iloc[0]
    assert first["n_converged"] == 2 and first["spread"] < 0.5 * first["step_to_next_lambda"]
