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


def _fields(r):
    return (r.status, r.n_steps, r.n_grad_evals, r.loss, r.x.tobytes(), r.u.tobytes(),
            {k: v.tobytes() for k, v in r.history.items() if k != "wall_time"})


@pytest.mark.parametrize("method", ["descent", "flow"])
def test_the_core_groups_a_batch_and_keeps_the_callers_order(sparse, method):
    """Grouping happens once, in the core: runs of two problems and two depths given interleaved come back
    in the caller's order, bitwise equal to the same runs given already grouped (the core's stable sort
    by problem and depth makes the same blocks), for any thread count."""
    other = ib.data.sparse_regression(12, 24, 2, seed=4)
    problems = [0, 1, 0, 0, 1, 0, 1, 0]
    depths = [2, 3, 3, 2, 2, 2, 3, 3]
    alphas = list(np.linspace(0.05, 0.4, len(problems)))
    kw = dict(method=method, block_size=2, lr=0.02, steps=30) if method == "descent" else \
        dict(method=method, block_size=2, solver="rosw", t_max=20.0, n_record=5)
    As = [(sparse.A, other.A)[p] for p in problems]
    ys = [(sparse.y, other.y)[p] for p in problems]
    mixed = ib.diagonal.fit_many(As, ys, depth=depths, init_scale=alphas, num_threads=2, **kw)
    order = sorted(range(len(problems)), key=lambda k: (problems[k], depths[k]))
    grouped = ib.diagonal.fit_many([As[k] for k in order], [ys[k] for k in order], depth=[depths[k] for k in order],
                                   init_scale=[alphas[k] for k in order], num_threads=1, **kw)
    for pos, k in enumerate(order):
        assert _fields(mixed[k]) == _fields(grouped[pos])
        assert mixed[k].depth == depths[k] and mixed[k].init_scale[0] == alphas[k]


def test_factorization_runs_are_grouped_by_the_core():
    ms = ib.data.matrix_sensing((3, 4), rank=1, n_measurements=12, seed=2)
    kw = dict(lr=0.02, steps=25, block_size=2, n_record=5)
    depths, seeds = [2, 3, 2, 3, 2], [0, 1, 2, 3, 4]
    mixed = ib.factorization.fit_many(ms.A, ms.y, depth=depths, seed=seeds, num_threads=2, **kw)
    order = [0, 2, 4, 1, 3]
    grouped = ib.factorization.fit_many(ms.A, ms.y, depth=[depths[k] for k in order], seed=[seeds[k] for k in order],
                                        num_threads=1, **kw)
    for pos, k in enumerate(order):
        assert mixed[k].seed == seeds[k] and mixed[k].depth == depths[k]
        for a, b in zip(mixed[k].layers, grouped[pos].layers):
            assert np.array_equal(a, b)


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


NAN = float("nan")


@pytest.mark.parametrize("bad", [
    dict(init_scale=[0.1, NAN]), dict(init_scale=np.array([[0.1] * 24, [0.1] * 23 + [NAN]])),
    dict(init_scale=[0.1, np.inf]), dict(lr_ratio=[1.0, NAN], method="flow"), dict(lr=[0.1, NAN]),
    dict(momentum=[0.0, NAN], method="sgd"), dict(sam_radius=[0.0, NAN], method="sam"),
    dict(label_noise_std=[NAN, 0.1], method="label_noise_sgd"), dict(x_star=np.full(24, NAN)),
])
def test_no_nan_slips_into_a_diagonal_run(sparse, bad):
    kw = dict(method="descent", lr=0.1, steps=3) | bad
    if kw["method"] == "flow":
        kw.pop("lr")
    with pytest.raises(ValueError):
        ib.diagonal.fit_many(sparse.A, sparse.y, **kw)


@pytest.mark.parametrize("bad", [
    dict(init_scale=[0.1, NAN]), dict(lr=[0.1, NAN]), dict(trace_weight=[NAN], method="trace_penalty"),
    dict(sam_radius=[NAN], method="sam"), dict(label_noise_std=[NAN], method="label_noise_sgd"),
    dict(init_layers=[[np.full((2, 3), NAN), np.ones((3, 2))]]), dict(M_star=np.full((3, 3), NAN)),
])
def test_no_nan_slips_into_a_factorization_run(bad):
    ms = ib.data.matrix_sensing((3, 3), rank=1, n_measurements=10, seed=1)
    kw = dict(lr=0.02, steps=3, width=2) | bad
    with pytest.raises(ValueError):
        ib.factorization.fit_many(ms.A, ms.y, **kw)


@pytest.mark.parametrize("bad", [dict(lr=[0.1, NAN]), dict(init_scale=[NAN]), dict(init=np.full(6, NAN)),
                                 dict(beta1=[NAN], optimizer="adam")])
def test_no_nan_slips_into_a_steepest_run(classes, bad):
    with pytest.raises(ValueError):
        ib.steepest.fit_many(classes.X, classes.y, steps=3, **bad)


def test_the_core_checks_every_column_of_the_runs(sparse):
    """The last line of defence: the columns handed to the core are checked there too (a NaN, a length)."""
    problem = _batch.make(core.SensingProblem, A=sparse.A, y=sparse.y, x_star=np.empty(0))
    options = _batch.make(core.DiagonalBatchOptions, method=core.Method.descent,
                          fixed=_batch.make(core.FixedStepOptions, steps=2, record_every=1))

    def columns(**change):
        cols = core.DiagonalRuns()
        cols.problem, cols.depth = np.zeros(2, np.int32), np.full(2, 2, np.int32)
        cols.weight_norm = np.zeros(2, np.int32)
        cols.init_scale, cols.lr_ratio, cols.lr = np.full(2, 0.1), np.ones(2), np.full(2, 0.05)
        for k, v in change.items():
            setattr(cols, k, v)
        return cols

    assert len(core.diagonal_batch([problem], columns(), options)) == 2
    for change in (dict(init_scale=np.array([0.1, NAN])), dict(lr_ratio=np.array([NAN, 1.0])),
                   dict(lr=np.array([0.1, np.inf])), dict(init_vectors={1: np.full(24, NAN)}),
                   dict(init_vectors={0: np.full(23, 0.1)}), dict(weight_norm=np.array([0, 7], np.int32)),
                   dict(problem=np.array([0, 1], np.int32)), dict(lr=np.ones(3))):
        with pytest.raises(ValueError):
            core.diagonal_batch([problem], columns(**change), options)
    bad_problem = _batch.make(core.SensingProblem, A=sparse.A, y=np.full(sparse.y.size, NAN), x_star=np.empty(0))
    with pytest.raises(ValueError, match="finite"):
        core.diagonal_batch([bad_problem], columns(), options)
