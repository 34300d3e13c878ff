"""Fuzzing the functions outside fit/fit_many (hypothesis): data generators, Hessian and trace
estimators, factorization helpers, steepest-descent geometry and the reference solvers.

Contract (tests/_fuzz.py): odd arrays and options are rejected with ValueError/TypeError naming the
argument, or the function returns finite numbers (no crash, no silent NaN).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import implicitbias as ib
from _fuzz import BAD_ARRAY_KINDS, ODD_SCALARS, bad_array, rejects_or_returns

_rng = np.random.default_rng(1)
_LAYERS = [_rng.standard_normal((2, 3)) * 0.5, _rng.standard_normal((2, 2)) * 0.5]
_AS = _rng.standard_normal((5, 2, 3))
_YS = _rng.standard_normal(5)
_A = _rng.standard_normal((3, 5))
_Y = _A @ np.array([1.0, 0.0, -0.5, 0.0, 0.0])
_X = np.array([[1.0, 0.2, 0.1], [0.5, -1.0, 0.3], [-1.0, 0.1, 0.4], [-0.2, 1.0, -0.3]])
_LABELS = np.array([1.0, -1.0, -1.0, 1.0])
_G = _rng.standard_normal(6)


def _layers_with(bad, i=0):
    layers = list(_LAYERS)
    layers[i] = bad
    return layers


# name -> (function, valid keyword arguments, array arguments, scalar options)
ENTRIES = {
    "sparse_regression": (ib.data.sparse_regression, dict(n_measurements=4, dim=6, sparsity=2), (),
                          ("n_measurements", "dim", "sparsity", "seed", "nonnegative", "noise")),
    "separable": (ib.data.separable, dict(n_samples=5, dim=3), (), ("n_samples", "dim", "seed", "margin", "sparsity")),
    "matrix_sensing": (ib.data.matrix_sensing, dict(shape=(3, 3), rank=1, n_measurements=5), (),
                       ("shape", "rank", "n_measurements", "kind", "seed")),
    "trace": (ib.hessian.trace, dict(layers=_LAYERS, A=_AS, y=_YS), ("layers", "A", "y"), ()),
    "trace_gradient": (ib.hessian.trace_gradient, dict(layers=_LAYERS, A=_AS, y=_YS), ("layers", "A", "y"), ()),
    "hvp": (ib.hessian.hvp, dict(layers=_LAYERS, A=_AS, y=_YS, v=np.ones(10)), ("layers", "A", "y", "v"), ()),
    "dense": (ib.hessian.dense, dict(layers=_LAYERS, A=_AS, y=_YS), ("layers", "A", "y"), ()),
    "proxy": (ib.hessian.proxy, dict(layers=_LAYERS), ("layers",), ()),
    "proxy_bound": (ib.hessian.proxy_bound, dict(M=np.eye(2, 3), depth=2), ("M",), ("depth",)),
    "hutchinson": (ib.hessian.hutchinson, dict(layers=_LAYERS, A=_AS, y=_YS, num_matvecs=4), ("layers", "A", "y"),
                   ("num_matvecs", "seed", "probe", "dim", "block")),
    "hutchpp": (ib.hessian.hutchpp, dict(layers=_LAYERS, A=_AS, y=_YS, num_matvecs=6), ("layers", "A", "y"),
                ("num_matvecs", "seed", "probe", "dim", "block")),
    "xtrace": (ib.hessian.xtrace, dict(layers=_LAYERS, A=_AS, y=_YS, num_matvecs=6), ("layers", "A", "y"),
               ("num_matvecs", "seed", "probe", "dim", "block")),
    "sensing_operator": (ib.factorization.sensing_operator, dict(A=_AS), ("A",), ("shape",)),
    "loss": (ib.factorization.loss, dict(layers=_LAYERS, A=_AS, y=_YS), ("layers", "A", "y"), ()),
    "gradient": (ib.factorization.gradient, dict(layers=_LAYERS, A=_AS, y=_YS), ("layers", "A", "y"), ()),
    "jacobian": (ib.factorization.jacobian, dict(layers=_LAYERS, A=_AS), ("layers", "A"), ()),
    "balanced_factorization": (ib.factorization.balanced_factorization, dict(M=np.eye(2, 3), depth=2), ("M",),
                               ("depth", "width")),
    "initial_layers": (ib.factorization.initial_layers, dict(shape=(2, 3), depth=2), (),
                       ("shape", "depth", "width", "init_scale", "init", "seed")),
    "product": (ib.factorization.product, dict(layers=_LAYERS), ("layers",), ()),
    "init_params": (ib.steepest.init_params, dict(model="relu2", dim=3, width=2), (),
                    ("model", "dim", "width", "depth", "init_scale", "seed")),
    "direction": (ib.steepest.direction, dict(g=_G), ("g",), ("norm",)),
    "param_norm": (ib.steepest.param_norm, dict(theta=_G), ("theta",), ("norm",)),
    "basis_pursuit": (ib.reference.basis_pursuit, dict(A=_A, y=_Y), ("A", "y", "weights"), ("nonnegative",)),
    "diagonal_flow_limit": (ib.reference.diagonal_flow_limit, dict(A=_A, y=_Y, init_scale=0.1),
                            ("A", "y"), ("init_scale", "depth", "nonnegative", "tol", "max_iter")),
    "hyperbolic_entropy": (ib.reference.hyperbolic_entropy, dict(x=np.array([1.0, -0.5, 0.0]), init_scale=0.1),
                           ("x",), ("init_scale",)),
    "max_margin": (ib.reference.max_margin, dict(X=_X, y=_LABELS), ("X", "y"), ("norm",)),
    "diagonal_max_margin": (ib.reference.diagonal_max_margin, dict(X=_X, y=_LABELS), ("X", "y"), ("norm",)),
    # added with the new dynamics and the Hessian's spectrum
    "batch_draws": (ib.diagonal.batch_draws, dict(seed=1, step=3, n_measurements=5, batch_size=2), (),
                    ("seed", "step", "n_measurements", "batch_size", "sampling")),
    "saddle_sequence": (ib.reference.saddle_sequence, dict(A=_A, y=_Y), ("A", "y"), ("tol", "max_jumps")),
    "eigenvalues": (ib.hessian.eigenvalues, dict(target=_LAYERS, A=_AS, y=_YS, k=2), ("A", "y"),
                    ("k", "which", "block_size", "tol", "max_matvecs", "seed", "symmetry_tol")),
    "density": (ib.hessian.density, dict(target=_LAYERS, A=_AS, y=_YS, num_probes=2, steps=5), ("A", "y"),
                ("num_probes", "steps", "width", "probe", "seed", "symmetry_tol")),
    "diagonal_operator": (ib.hessian.diagonal_operator, dict(u=np.full(5, 0.5), v=np.full(5, 0.3), A=_A, y=_Y),
                          ("u", "v", "A", "y"), ("depth",)),
    "regression_operator": (ib.factorization.regression_operator, dict(X=_X, Y=_X[:, :2]), ("X", "Y"), ()),
    "whitened_regression": (ib.data.whitened_regression, dict(n=6, d_in=3, d_out=2), (),
                            ("n", "d_in", "d_out", "seed")),
}


def _finite(out, where="output"):
    """Every number in ``out`` (arrays, floats, tuples, lists, dataclasses) is finite."""
    if isinstance(out, ib.hessian.TraceEstimate):  # stderr is NaN when undefined (a single probe)
        assert np.isfinite(out.estimate) and not np.isinf(out.stderr), out
    elif dataclasses.is_dataclass(out):
        for f in dataclasses.fields(out):
            _finite(getattr(out, f.name), f"{where}.{f.name}")
    elif isinstance(out, (list, tuple)):
        for i, v in enumerate(out):
            _finite(v, f"{where}[{i}]")
    elif isinstance(out, (float, int, np.ndarray, np.floating)) and not isinstance(out, bool):
        assert np.all(np.isfinite(out)), f"{where} is not finite: {out}"


def _no_nan(out, where="output"):
    if dataclasses.is_dataclass(out):
        out = [getattr(out, f.name) for f in dataclasses.fields(out)]
    if isinstance(out, (list, tuple)):
        for i, v in enumerate(out):
            _no_nan(v, f"{where}[{i}]")
    elif isinstance(out, (float, np.ndarray, np.floating)):
        assert not np.any(np.isnan(out)), f"{where} has NaN: {out}"


def _bad(name, kind, kwargs):
    if name == "layers":
        return _layers_with(bad_array(kind, _LAYERS[0]))
    good = kwargs.get(name, np.ones(5) if name == "weights" else None)
    return bad_array(kind, np.asarray(good))


@pytest.mark.parametrize("entry", [e for e in ENTRIES if ENTRIES[e][2]])
@given(data=st.data())
def test_bad_arrays_are_rejected_by_name(entry, data):
    fn, kwargs, arrays, _ = ENTRIES[entry]
    name = data.draw(st.sampled_from(arrays), label="argument")
    kind = data.draw(st.sampled_from(BAD_ARRAY_KINDS), label="kind")
    if kind == "ndim" and name == "v" and entry == "hvp":
        return  # v of shape (n_params, 1) is one direction as a matrix: valid
    if kind == "none" and (name in ("y", "weights") or (entry, name) == ("diagonal_operator", "v")):
        return  # None is a valid y (trace at zero residual), weights, and v (the nonnegative model)
    if kind == "empty" and entry in ("direction", "param_norm", "hyperbolic_entropy"):
        return  # an empty vector has norm 0, direction () and entropy 0: valid answers
    if kind in ("short", "long"):  # one size too few or many: valid on its own, or a mismatch naming a side
        out = rejects_or_returns(fn, (*arrays, "layer", "shape"), **{**kwargs, name: _bad(name, kind, kwargs)})
        if out is not None:
            _finite(out)
        return
    out = rejects_or_returns(fn, (name, "layer"), **{**kwargs, name: _bad(name, kind, kwargs)})
    assert out is None, f"{entry}({name}={kind}) was accepted: {out}"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if ENTRIES[e][3]])
@given(data=st.data(), value=ODD_SCALARS)
def test_odd_options_are_rejected_by_name_or_give_finite_numbers(entry, data, value):
    fn, kwargs, _, options = ENTRIES[entry]
    name = data.draw(st.sampled_from(options), label="option")
    if isinstance(value, int) and not isinstance(value, bool) and value > 50:
        value = 50  # a huge size is valid and would only take memory
    if name == "norm" and isinstance(value, float) and value > 50:
        value = 50.0  # large p: test_lp_norm_with_a_large_p_is_finite
    if entry in ("hyperbolic_entropy", "diagonal_flow_limit") and isinstance(value, float) and value > 1e100:
        value = 1e100  # alpha^2 overflows beyond 1e154 (the entropy is about -2 alpha^2 per coordinate)
    try:
        with warnings.catch_warnings():
            # Lanczos stopped by a small budget (max_matvecs, steps) warns with its residuals: documented
            warnings.simplefilter("ignore", RuntimeWarning)
            out = rejects_or_returns(fn, name, **{**kwargs, name: value})
    except RuntimeError as exc:  # a reference solver that says it did not converge / ran out of its budget
        assert (entry == "diagonal_flow_limit" and "did not converge" in str(exc)) or (
            entry == "saddle_sequence" and "max_jumps" in str(exc)), exc
        return
    if out is not None:
        _finite(out)


def test_lp_norm_with_a_large_p_is_finite():
    g = np.array([3.0, -2.0, 1.0])
    assert np.isclose(ib.steepest.param_norm(g, 6960.0), 3.0)
    assert np.isclose(ib.steepest.param_norm(g * 1e-3, 1.0001), 6e-3, rtol=1e-3)


@given(scale=st.sampled_from([1e-310, 1e-200, 1e40, 1e100, 1e200]), entry=st.sampled_from(
    ["trace", "trace_gradient", "hvp", "loss", "gradient", "proxy", "hutchpp", "product"]))
def test_extreme_layers_give_finite_numbers_or_a_named_error(scale, entry):
    """Finite numbers (the loss and trace scale like ``scale^4`` here), or a ValueError naming the
    layers when the result overflows; the NumPy-level product and proxy may overflow to inf, never NaN."""
    fn, kwargs, _, _ = ENTRIES[entry]
    with np.errstate(over="ignore", invalid="ignore"):
        out = rejects_or_returns(fn, "layers", **{**kwargs, "layers": [w * scale for w in _LAYERS]})
    if out is not None and entry not in ("product", "proxy"):
        _finite(out)
    elif out is not None:
        _no_nan(out)
    if scale <= 1e40:
        assert out is not None, "finite inputs with a representable result were refused"


def test_an_operator_matvec_with_a_bad_dim_is_rejected_by_name():
    for est in (ib.hessian.hutchinson, ib.hessian.hutchpp, ib.hessian.xtrace):
        for dim in (None, 0, -1, 2.5, "3"):
            assert rejects_or_returns(est, "dim", lambda v: v, dim=dim, num_matvecs=6) is None
        assert rejects_or_returns(est, "matvec", lambda v: np.full(v.shape[0] + 1, np.nan), dim=4,
                                  num_matvecs=6) is None
