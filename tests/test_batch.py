"""The batch engine shared by the families: broadcasting, the result base class, the typed boundary."""

from __future__ import annotations

import numpy as np
import pytest

import implicitbias as ib
from implicitbias import _batch
from implicitbias._family import param
from implicitbias._native import core


@pytest.fixture(scope="module")
def sparse():
    return ib.data.sparse_regression(12, 24, 2, seed=3)


@pytest.fixture(scope="module")
def classes():
    return ib.data.separable(10, 6, seed=2)


def test_every_family_returns_the_common_fields(sparse, classes):
    ms = ib.data.matrix_sensing((4, 5), rank=1, n_measurements=14, seed=1)
    results = [ib.diagonal.fit(sparse.A, sparse.y, method="descent", lr=0.05, steps=20),
               ib.steepest.fit(classes.X, classes.y, steps=20),
               ib.factorization.fit(ms.A, ms.y, lr=0.02, steps=20)]
    for r in results:
        assert isinstance(r, _batch.RunResult)
        assert r.status == "max_steps" and r.success  # no target: taking every step is what was asked
        assert r.message == "used up its step budget"
        assert r.n_steps == 20 and r.n_grad_evals >= 20 and r.wall_time >= 0.0
        text = repr(r)
        assert text.startswith(type(r).__name__ + "(") and "status: 'max_steps'" in text and "history:" in text
        assert all(len(v) == len(r.history["t"]) for v in r.history.values())


def test_success_follows_the_target(sparse):
    conv = ib.diagonal.fit(sparse.A, sparse.y, init_scale=0.1, t_max=1e3)
    assert conv.status == "converged" and conv.success
    short = ib.diagonal.fit(sparse.A, sparse.y, init_scale=0.1, t_max=1.0)  # the default flow target is not met
    assert short.status == "max_time" and not short.success
    assert "t_max" in short.message
    target = ib.diagonal.fit(sparse.A, sparse.y, method="descent", lr=0.05, steps=5, target_loss=1e-30)
    assert target.status == "max_steps" and not target.success


def test_results_pickle_with_their_history(sparse):
    import pickle

    r = ib.diagonal.fit(sparse.A, sparse.y, method="descent", lr=0.05, steps=20, x_star=sparse.x_star)
    back = pickle.loads(pickle.dumps(r))
    assert back.status == r.status and np.array_equal(back.x, r.x)
    assert back.history.keys() == r.history.keys()
    assert all(np.array_equal(back.history[k], r.history[k]) for k in r.history)
    assert back.invariant_drift() == r.invariant_drift()


def test_fit_is_the_first_of_fit_many(sparse, classes):
    one = ib.diagonal.fit(sparse.A, sparse.y, depth=3, init_scale=np.full(24, 0.05), method="descent", lr=0.02,
                          steps=50)
    many = ib.diagonal.fit_many(sparse.A, sparse.y, depth=[3], init_scale=np.full((1, 24), 0.05),
                                method="descent", lr=0.02, steps=50)[0]
    assert np.array_equal(one.x, many.x) and np.array_equal(one.history["loss"], many.history["loss"])
    s1 = ib.steepest.fit(classes.X, classes.y, "linear", norm=3.0, steps=30)
    s2 = ib.steepest.fit_many(classes.X, classes.y, "linear", norm=[3.0], steps=30)[0]
    assert np.array_equal(s1.theta, s2.theta)
    with pytest.raises(ValueError, match="lr must be a single value in fit"):
        ib.diagonal.fit(sparse.A, sparse.y, method="descent", lr=[0.1, 0.2])
    with pytest.raises(TypeError, match="positional"):
        ib.diagonal.fit(sparse.A, sparse.y, 2)


def test_broadcast_checks_each_value_and_lengths():
    params = {"lr": param("lr", _batch.positive, float, per_run=True),
              "depth": param("depth", _batch.integer(2), int, per_run=True)}
    K, runs = _batch.broadcast({"lr": [0.1, 0.2, 0.1], "depth": 3}, params, [0])
    assert K == 3 and runs["lr"] == [0.1, 0.2, 0.1] and runs["depth"] == [3, 3, 3] and runs["problem"] == [0, 0, 0]
    with pytest.raises(ValueError, match="equal lengths"):
        _batch.broadcast({"lr": [0.1, 0.2], "depth": [2, 3, 4]}, params, [0])
    with pytest.raises(ValueError, match=r"^lr"):
        _batch.broadcast({"lr": [0.1, -1.0], "depth": 2}, params, [0])
    with pytest.raises(ValueError, match="must not be an empty list"):
        _batch.broadcast({"lr": [], "depth": 2}, params, [0])


def test_grouped_restores_the_callers_order():
    seen = []

    def call(order):
        seen.append(order)
        return [f"run{k}" for k in order]

    assert _batch.grouped([2, 1, 2, 0], call) == ["run0", "run1", "run2", "run3"]
    assert seen == [[3, 1, 0, 2]]  # sorted by key, order within a key kept


def test_the_boundary_is_typed():
    with pytest.raises(AttributeError):
        _batch.make(core.FixedStepOptions, stepz=3)  # a mistyped field fails loudly
    with pytest.raises(ValueError, match="not one of"):
        _batch.enum(core.Method, "gd")
    assert _batch.enum(core.Method, "descent") == core.Method.descent
    with pytest.raises(TypeError):
        core.DiagonalRun(problem=0, depth=2, nonnegative=False, weight_norm=1, init_scale=np.ones(3),
                         lr_ratio=1.0, lr=0.1)  # an integer is not a WeightNorm
    assert {m for m in core.FactorizationMethod.__members__} == {
        "descent", "flow", "trace_penalty", "label_noise_sgd", "sam"}


def test_an_initial_vector_is_one_run(classes):
    theta0 = np.linspace(-0.1, 0.1, classes.X.shape[1])
    runs = ib.steepest.fit_many(classes.X, classes.y, init=theta0, steps=10)
    assert len(runs) == 1
    two = ib.steepest.fit_many(classes.X, classes.y, init=[theta0, -theta0], steps=10)
    assert len(two) == 2 and not np.array_equal(two[0].theta, two[1].theta)
    assert np.array_equal(runs[0].theta, two[0].theta)
    # for the diagonal family a 1-D init_scale lists one scale per run; a 2-D array one vector per run
    A, y = np.eye(3)[:2], np.array([1.0, -1.0])
    assert len(ib.diagonal.fit_many(A, y, init_scale=np.array([0.1, 0.2]), method="descent", lr=0.1, steps=2)) == 2
    assert len(ib.diagonal.fit_many(A, y, init_scale=np.full((1, 3), 0.1), method="descent", lr=0.1, steps=2)) == 1
