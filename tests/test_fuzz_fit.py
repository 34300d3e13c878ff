"""Fuzzing the three families' fit / fit_many (hypothesis): odd arrays, layouts and options.

Contract (tests/_fuzz.py): every call raises ValueError/TypeError naming the argument, or returns runs
whose status says what happened; the same data in another dtype or memory layout gives bitwise the
same run as its float64 copy.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import implicitbias as ib
from _fuzz import BAD_ARRAY_KINDS, LAYOUTS, ODD_SCALARS, bad_array, check_run, rejects_or_returns, relaid

_rng = np.random.default_rng(0)
_A = _rng.standard_normal((3, 5))
_XS = np.array([1.0, 0.0, -0.5, 0.0, 0.0])
_X = np.array([[1.0, 0.2, 0.1], [0.5, -1.0, 0.3], [-1.0, 0.1, 0.4], [-0.2, 1.0, -0.3]])
_LABELS = np.array([1.0, -1.0, -1.0, 1.0])
_AS = _rng.standard_normal((6, 2, 3))
_MSTAR = np.outer([1.0, -1.0], [0.5, 0.2, 0.1])
_YS = np.einsum("nij,ij->n", _AS, _MSTAR)

# family -> (fit function, arrays by name, keyword arguments of a tiny valid run, state attributes)
FAMILIES = {
    "diagonal_descent": (ib.diagonal.fit, {"A": _A, "y": _A @ _XS, "x_star": _XS, "init_scale": np.full(5, 0.1)},
                         dict(method="descent", lr=0.05, steps=5), ("x",)),
    "diagonal_flow": (ib.diagonal.fit, {"A": _A, "y": _A @ _XS, "x_star": _XS, "init_scale": np.full(5, 0.1)},
                      dict(max_steps=40, t_max=5.0), ("x",)),
    "steepest": (ib.steepest.fit, {"X": _X, "y": _LABELS, "init": np.full(3, 0.1)},
                 dict(steps=5, lr=0.1), ("theta",)),
    "steepest_relu": (ib.steepest.fit, {"X": _X, "y": _LABELS}, dict(model="relu2", width=3, steps=5, lr=0.1),
                      ("theta",)),
    "factorization": (ib.factorization.fit, {"A": _AS, "y": _YS, "M_star": _MSTAR},
                      dict(depth=2, width=2, lr=0.01, steps=5), ("product",)),
}
_NOT_OPTIONS = {"A", "X", "y", "x_star", "M_star", "init", "init_layers"}


# per-run options and a valid value of each
_GOOD_PER_RUN = {"depth": 2, "init_scale": 0.1, "lr": 0.05, "lr_ratio": 1.0, "norm": "l2", "eps": 1e-8, "beta1": 0.9,
                 "seed": 0, "width": 2, "trace_weight": 0.0, "label_noise_std": 0.0, "sam_radius": 0.0,
                 "weight_norm": None, "optimizer": "steepest"}


def _options(family: str) -> list[str]:
    fn, arrays, _, _ = FAMILIES[family]
    return [p for p in inspect.signature(fn).parameters if p not in _NOT_OPTIONS and p not in arrays]


def _call(family: str, many: bool, **changes):
    fn, arrays, base, _ = FAMILIES[family]
    if many:
        fn = {ib.diagonal.fit: ib.diagonal.fit_many, ib.steepest.fit: ib.steepest.fit_many,
              ib.factorization.fit: ib.factorization.fit_many}[fn]
    kwargs = {**arrays, **base, **changes}
    if many and "init" in kwargs:
        kwargs["init"] = [kwargs["init"]]
    if many and isinstance(kwargs.get("init_scale"), np.ndarray) and kwargs["init_scale"].ndim == 1:
        kwargs["init_scale"] = [kwargs["init_scale"]]  # one vector for every run (a bare array is one per run)
    return fn(**kwargs)


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data(), many=st.booleans())
def test_bad_arrays_are_rejected_by_name(family, data, many):
    arrays = FAMILIES[family][1]
    name = data.draw(st.sampled_from(sorted(arrays)), label="argument")
    kind = data.draw(st.sampled_from(BAD_ARRAY_KINDS), label="kind")
    if kind in ("none", "scalar") and name in ("x_star", "init_scale", "init", "M_star"):
        return  # None and a scalar are valid values of these
    bad = bad_array(kind, arrays[name])
    if kind in ("short", "long"):  # a size mismatch names either side of it
        out = rejects_or_returns(lambda: _call(family, many, **{name: bad}), tuple(arrays))
        if name in ("X", "y") or (name == "A" and family != "factorization"):  # A/X and y must agree
            assert out is None, f"{name}={kind} was accepted"
        return
    out = rejects_or_returns(lambda: _call(family, many, **{name: bad}), name)
    assert out is None, f"{name}={kind} was accepted"


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data())
def test_layouts_give_the_run_of_their_float64_copy(family, data):
    _, arrays, _, attrs = FAMILIES[family]
    name = data.draw(st.sampled_from(sorted(arrays)), label="argument")
    kind = data.draw(st.sampled_from(LAYOUTS), label="layout")
    odd, same = relaid(kind, arrays[name])
    got = rejects_or_returns(lambda: _call(family, False, **{name: odd}), name)
    # the float64 copy may itself be invalid (int or bool rounding of a positive scale to 0): then both
    # are rejected; test_valid_calls_return_results is the floor that valid data runs
    want = rejects_or_returns(lambda: _call(family, False, **{name: same}), name)
    if kind != "bool" or got is not None:  # bool sensing matrices may be refused (by name)
        assert (got is None) == (want is None), f"{name} as {kind}: accepted {got is not None}, float64: {want}"
    if got is None:
        return
    check_run(got, *attrs)
    assert got.status == want.status and got.n_steps == want.n_steps
    for a in attrs:
        np.testing.assert_array_equal(getattr(got, a), getattr(want, a))


@pytest.mark.parametrize("family", FAMILIES)
def test_valid_calls_return_results(family):
    """The floor under the fuzzing: a rule that rejected every call would pass the tests that accept a
    rejection by name, so every option at its own default, and a list of two valid per-run values, must
    return runs (not an error)."""
    fn = FAMILIES[family][0]
    params = inspect.signature(fn).parameters
    returned = 0
    for name in _options(family):
        default = params[name].default
        if default is inspect.Parameter.empty or name in FAMILIES[family][2]:  # the base run sets these
            continue
        check_run(_call(family, False, **{name: default}), *FAMILIES[family][3])
        returned += 1
    assert returned >= 8, returned  # every family has at least this many options with defaults
    for name, good in _GOOD_PER_RUN.items():
        if name in params and not (family.startswith("steepest") and name == "depth"):
            runs = _call(family, True, **{name: [good, good]})
            assert len(runs) == 2
            for run in runs:
                check_run(run, *FAMILIES[family][3])


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data(), value=ODD_SCALARS, many=st.booleans())
def test_odd_options_are_rejected_by_name_or_run_honestly(family, data, value, many):
    name = data.draw(st.sampled_from(_options(family)), label="option")
    if name in ("steps", "max_steps", "n_record") and isinstance(value, int) and not isinstance(value, bool) \
            and value > 10_000:
        value = 10_000  # a huge budget is valid and would only take time
    r = rejects_or_returns(lambda: _call(family, many, **{name: value}), name)
    if r is not None:
        for run in r if many else [r]:
            check_run(run, *FAMILIES[family][3])


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data(), value=ODD_SCALARS)
def test_one_odd_entry_in_a_list_is_rejected_or_runs(family, data, value):
    fn = FAMILIES[family][0]
    per_run = [p for p in _GOOD_PER_RUN if p in inspect.signature(fn).parameters]
    name = data.draw(st.sampled_from(per_run), label="option")
    good = _GOOD_PER_RUN[name]
    if family.startswith("steepest") and name == "depth":
        good = None
    runs = rejects_or_returns(lambda: _call(family, True, **{name: [good, value]}), name)
    if runs is not None:
        assert len(runs) == 2
        for run in runs:
            check_run(run, *FAMILIES[family][3])


@given(scale=st.sampled_from([1e150, 1e250, 1e-300, 1e-310]), family=st.sampled_from(sorted(FAMILIES)))
def test_extreme_magnitudes_end_with_an_honest_status(scale, family):
    _, arrays, _, attrs = FAMILIES[family]
    name = "X" if "X" in arrays else "A"
    r = rejects_or_returns(lambda: _call(family, False, **{name: arrays[name] * scale}), name)
    if r is not None:
        check_run(r, *attrs)
        loss = r.log_loss if hasattr(r, "log_loss") else r.loss
        assert r.status == "diverged" or np.isfinite(loss), (r.status, loss)


_magnitudes = st.sampled_from([1e-310, 1e-150, 1e-8, 1.0, 1e8, 1e150])


@given(n=st.integers(1, 4), d=st.integers(1, 5), seed=st.integers(0, 2**32 - 1), scale=_magnitudes,
       family=st.sampled_from(["diagonal_descent", "diagonal_flow", "steepest", "steepest_relu", "factorization"]),
       data=st.data())
def test_random_problems_of_any_shape_and_magnitude_run_honestly(n, d, seed, scale, family, data):
    """Random shapes (down to one sample or one feature) and magnitudes: a run with an honest status,
    or a ValueError naming the data (e.g. labels of one class for the margin-based stopping rule)."""
    rng = np.random.default_rng(seed)
    fn, _, base, attrs = FAMILIES[family]
    if family.startswith("diagonal"):
        A = rng.standard_normal((n, d)) * scale
        kwargs = {"A": A, "y": A @ rng.standard_normal(d)}
    elif family.startswith("steepest"):
        kwargs = {"X": rng.standard_normal((n, d)) * scale, "y": np.where(rng.random(n) < 0.5, -1.0, 1.0)}
    else:
        shape = (data.draw(st.integers(1, 3), label="d_out"), data.draw(st.integers(1, 3), label="d_in"))
        A = rng.standard_normal((n + 1, *shape)) * scale
        kwargs = {"A": A, "y": np.einsum("nij,ij->n", A, rng.standard_normal(shape))}
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        r = rejects_or_returns(lambda: fn(**{**base, **kwargs}), ("A", "X", "y"))
    if r is not None:
        check_run(r, *attrs)


def test_an_error_names_an_argument_only_as_a_word():
    """The matcher of rejects_or_returns: "y" inside "layer" or "A" inside "Adam" is not a name."""
    from _fuzz import names_word
    assert names_word("y", "y must be finite") and names_word("init_scale", "fit.init_scale[1] must be positive")
    assert not names_word("y", "layer 2 has the wrong shape") and not names_word("A", "Adam needs beta1 < 1")
    assert not names_word("lr", "lr_ratio must be positive")
