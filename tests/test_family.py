"""The family declarations (``implicitbias.<family>.FAMILY``): what a sweep reads, and the one batch assembly."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import implicitbias as ib
from implicitbias import diagonal, factorization, steepest
from implicitbias._native import core

FAMILIES = [diagonal.FAMILY, steepest.FAMILY, factorization.FAMILY]


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_the_declaration_is_the_signature(fam):
    assert isinstance(fam, ib.Family) and fam.name in ("diagonal", "steepest", "factorization")
    sig = inspect.signature(fam.fit_many)
    # fit is a real function with the same parameters (static tools see them), not *args/**kwargs
    fit_params = inspect.signature(fam.fit).parameters
    assert all(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in fit_params.values())
    assert [(p.name, p.default) for p in fit_params.values()] == [(p.name, p.default) for p in sig.parameters.values()]
    assert inspect.signature(fam.fit).return_annotation != inspect.Signature.empty
    assert fam.fit.__doc__ and "Parameters" in fam.fit.__doc__ and fam.fit_many.__doc__
    # every argument is data or a declared parameter, with the signature's default
    assert set(fam.data) | set(fam.params) == set(sig.parameters) and not set(fam.data) & set(fam.params)
    for name, p in fam.params.items():
        assert p.name == name and p.default is sig.parameters[name].default
        assert p.types, name
        if p.choices is not None:
            assert p.default in p.choices, name
        if p.check is not None:
            p.check(p.default, name)  # the default passes its own check
    assert set(fam.per_run) | set(fam.options) == set(fam.params)
    # the same arguments mean the same thing everywhere: keyword-only, default None
    for name in ("target_loss", "num_threads"):
        assert sig.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY and sig.parameters[name].default is None
        assert name in fam.options


def test_choices_come_from_the_core():
    d = diagonal.FAMILY.params
    assert d["method"].choices == tuple(core.Method.__members__)
    assert set(d["solver"].choices) == {None} | set(core.Solver.__members__) - {"automatic"}
    assert set(d["weight_norm"].choices) == {None} | set(core.WeightNorm.__members__) - {"none"}
    s = steepest.FAMILY.params
    assert s["optimizer"].choices == tuple(core.Optimizer.__members__)
    assert s["schedule"].choices == tuple(core.Schedule.__members__)
    assert s["loss"].choices == tuple(core.LossKind.__members__)
    assert set(steepest.NORMS) == set(core.NormKind.__members__) - {"lp"}
    assert factorization.FAMILY.params["method"].choices == tuple(core.FactorizationMethod.__members__)
    assert factorization._INITS == factorization.FAMILY.params["init"].choices
    for fam in FAMILIES:
        assert fam.fit_many.__module__ == fam.fit.__module__


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_checks_name_the_argument(fam):
    bad = {"integer": -7, "choice": "no-such-choice"}
    for name, p in fam.params.items():
        if p.check is None:
            continue
        value = bad["choice"] if p.choices is not None else (bad["integer"] if int in p.types else -1.5)
        if name in ("target_log_loss",):  # any real is a log-loss target
            value = float("nan")
        with pytest.raises(ValueError, match=name):
            p.check(value, name)


def test_per_run_and_batch_wide_as_declared():
    p = ib.data.sparse_regression(10, 20, 2, seed=1)
    runs = diagonal.fit_many(p.A, p.y, method="descent", lr=[0.01, 0.02], steps=5)
    assert len(runs) == 2 and diagonal.FAMILY.params["lr"].per_run
    assert not diagonal.FAMILY.params["steps"].per_run
    with pytest.raises(ValueError, match="steps"):
        diagonal.fit_many(p.A, p.y, method="descent", lr=0.01, steps=[5, 6])


def test_checked_options_are_memoized_by_type():
    p = ib.data.sparse_regression(10, 20, 2, seed=1)
    diagonal.fit(p.A, p.y, method="descent", lr=0.01, steps=1)
    with pytest.raises(ValueError, match="steps"):  # True == 1, but a bool is not a step count
        diagonal.fit(p.A, p.y, method="descent", lr=0.01, steps=True)


def test_steepest_target_loss_is_the_log_target():
    d = ib.data.separable(10, 4, seed=0)
    a = steepest.fit(d.X, d.y, lr=0.5, steps=3000, target_loss=math.exp(-5.0))
    b = steepest.fit(d.X, d.y, lr=0.5, steps=3000, target_log_loss=-5.0)
    assert a.status == b.status == "converged" and a.success and a.n_steps == b.n_steps
    np.testing.assert_array_equal(a.theta, b.theta)
    with pytest.raises(ValueError, match="target_loss or target_log_loss"):
        steepest.fit(d.X, d.y, target_loss=1e-3, target_log_loss=-5.0)
    with pytest.raises(ValueError, match="target_loss"):
        steepest.fit(d.X, d.y, target_loss=-1.0)


def test_interleaved_runs_are_grouped_as_if_given_in_order():
    # the core blocks only consecutive runs of one problem and model; the family sorts them first, so an
    # interleaved batch gives bitwise the runs of the same batch given grouped
    p = ib.data.sparse_regression(10, 20, 2, seed=1)
    q = ib.data.sparse_regression(10, 20, 2, seed=2)
    kw = dict(init_scale=[0.1, 0.2, 0.3, 0.4], t_max=50.0, block_size=2, num_threads=1)
    mixed = diagonal.fit_many([p.A, q.A, p.A, q.A], [p.y, q.y, p.y, q.y], **kw)
    order = [0, 2, 1, 3]
    grouped = diagonal.fit_many([p.A, p.A, q.A, q.A], [p.y, p.y, q.y, q.y],
                                **dict(kw, init_scale=[kw["init_scale"][k] for k in order]))
    for pos, k in enumerate(order):
        assert mixed[k].n_steps == grouped[pos].n_steps
        np.testing.assert_array_equal(mixed[k].x, grouped[pos].x)
    # a block of two differs from two runs alone (the sort is what forms blocks): to rounding only
    alone = diagonal.fit(p.A, p.y, init_scale=0.1, t_max=50.0)
    np.testing.assert_allclose(alone.x, mixed[0].x, rtol=1e-6, atol=1e-9)


def test_fit_takes_one_value_per_argument_and_fit_many_lists():
    m = ib.data.matrix_sensing((4, 4), 1, 10, seed=0)
    layers = factorization.initial_layers((4, 4), 2, 3, seed=1)
    one = factorization.fit(m.A, m.y, init_layers=layers, lr=0.01, steps=3)  # a list of layers is one run
    many = factorization.fit_many(m.A, m.y, init_layers=[layers, layers], lr=0.01, steps=3)
    assert len(many) == 2
    np.testing.assert_array_equal(one.product, many[1].product)
    with pytest.raises(ValueError, match="init_layers"):  # in fit_many a list of arrays is not one run each
        factorization.fit_many(m.A, m.y, init_layers=layers, lr=0.01, steps=3)
    with pytest.raises(ValueError, match="lr must be a single value in fit"):
        factorization.fit(m.A, m.y, lr=[0.01, 0.02], steps=3)
