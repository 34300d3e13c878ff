"""Tests for implicitbias.factorization (training) and the matrix-sensing references.

Fixed-step methods are checked step by step against NumPy reimplementations
that use only the (separately verified, tests/test_hessian.py) gradient and
trace gradient; the flat-solution claim against the convex minimum
nuclear-norm interpolator (cvxpy).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import expected_isa_variants
from implicitbias import data, factorization, hessian, reference


def flat(layers):
    return np.concatenate([W.ravel(order="F") for W in layers])


@pytest.fixture(scope="module")
def small():
    return data.matrix_sensing((4, 5), 1, 12, seed=0)


@pytest.fixture(scope="module")
def small_completion():
    return data.matrix_sensing((4, 5), 1, 12, kind="completion", seed=0)


# --------------------------------------------------------------------------- step-by-step agreement
@pytest.mark.parametrize("kind", ["gaussian", "completion"])
@pytest.mark.parametrize("method", ["descent", "trace_penalty", "sam"])
def test_fixed_step_methods_match_a_numpy_loop(small, small_completion, kind, method):
    m = small if kind == "gaussian" else small_completion
    L, lr, steps, s0 = 3, 0.02, 6, 0.3
    init = factorization.initial_layers(m.shape, L, width=3, init_scale=0.8, seed=1)
    kw = {"trace_penalty": {"trace_weight": s0}, "sam": {"sam_radius": s0}}.get(method, {})
    anneal_frac, final_ratio = 0.5, 0.1
    r = factorization.fit(m.A, m.y, shape=m.shape, init_layers=init, method=method, lr=lr, steps=steps,
                          anneal_frac=anneal_frac, final_ratio=final_ratio, **kw)
    K_a = round(anneal_frac * steps)
    W = [w.copy() for w in init]
    for k in range(steps):
        s = s0 * final_ratio ** (k / K_a) if k < K_a else 0.0
        g = factorization.gradient(W, m.A, m.y)
        if method == "trace_penalty":
            _, tg = hessian.trace_gradient(W, m.A)
            g = [a + s * b for a, b in zip(g, tg)]
        elif method == "sam":
            nrm = np.linalg.norm(flat(g))
            Wp = [w + s * a / nrm for w, a in zip(W, g)]
            g = factorization.gradient(Wp, m.A, m.y)
        W = [w - lr * a for w, a in zip(W, g)]
    np.testing.assert_allclose(flat(r.layers), flat(W), rtol=1e-11, atol=1e-13)
    assert r.n_steps == steps and r.status == "max_steps"
    np.testing.assert_allclose(r.product, W[2] @ W[1] @ W[0], rtol=1e-11, atol=1e-13)
    assert r.loss == pytest.approx(factorization.loss(W, m.A, m.y), rel=1e-9)
    assert r.trace == pytest.approx(hessian.trace(W, m.A if kind == "gaussian" else
                                                  factorization.sensing_operator(m.A, m.shape)), rel=1e-9)


def test_label_noise_sgd_draws_fresh_noise_per_step_and_seed(small):
    kw = dict(depth=2, width=3, init_scale=0.5, lr=0.02, steps=50, anneal_frac=1.0, final_ratio=1.0)
    gd = factorization.fit(small.A, small.y, method="descent", seed=3, **kw)
    no_noise = factorization.fit(small.A, small.y, method="label_noise_sgd", label_noise_std=0.0, seed=3, **kw)
    np.testing.assert_array_equal(flat(gd.layers), flat(no_noise.layers))
    a = factorization.fit(small.A, small.y, method="label_noise_sgd", label_noise_std=0.5, seed=3, **kw)
    b = factorization.fit(small.A, small.y, method="label_noise_sgd", label_noise_std=0.5, seed=3, **kw)
    np.testing.assert_array_equal(flat(a.layers), flat(b.layers))  # reproducible
    assert not np.array_equal(flat(a.layers), flat(gd.layers))
    # the same initialization with another noise seed gives another trajectory
    init = factorization.initial_layers(small.shape, 2, width=3, init_scale=0.5, seed=3)
    c = factorization.fit(small.A, small.y, method="label_noise_sgd", label_noise_std=0.5, seed=4, init_layers=init,
                          lr=0.02, steps=50, anneal_frac=1.0, final_ratio=1.0)
    assert not np.array_equal(flat(a.layers), flat(c.layers))
    # one step: the update is GD on labels y + sigma * xi with xi ~ N(0, 1): recover xi from the step
    one = factorization.fit(small.A, small.y, method="label_noise_sgd", label_noise_std=0.5, seed=3, init_layers=init,
                            lr=1.0, steps=1, anneal_frac=1.0, final_ratio=1.0)
    g_clean = flat(factorization.gradient(init, small.A, small.y))
    delta = flat(init) - flat(one.layers) - g_clean  # = -(2/n) sigma J^T xi
    J = factorization.jacobian(init, small.A)
    xi = np.linalg.lstsq(-(2.0 / 12) * 0.5 * J.T, delta, rcond=None)[0]
    np.testing.assert_allclose(-(2.0 / 12) * 0.5 * J.T @ xi, delta, atol=1e-12)  # in the range of J^T
    assert 0.2 < np.std(xi) < 3.0


def test_noise_is_annealed_away(small):
    # anneal_frac = 0: the schedule is 0 from the start, every finder is plain GD
    kw = dict(depth=2, width=3, init_scale=0.5, lr=0.02, steps=40, anneal_frac=0.0, seed=1)
    gd = factorization.fit(small.A, small.y, method="descent", **kw)
    for method, s in (("label_noise_sgd", {"label_noise_std": 3.0}), ("trace_penalty", {"trace_weight": 3.0}),
                      ("sam", {"sam_radius": 3.0})):
        r = factorization.fit(small.A, small.y, method=method, **s, **kw)
        np.testing.assert_array_equal(flat(r.layers), flat(gd.layers))


def test_fit_many_is_bitwise_independent_of_threads_and_matches_fit(small, openmp):
    kw = dict(depth=[2, 3, 2, 3, 2], method=["descent", "trace_penalty", "label_noise_sgd", "sam", "descent"],
              init_scale=[0.3, 0.5, 0.5, 0.5, 1.0], lr=0.02, trace_weight=0.1, label_noise_std=0.3, sam_radius=0.2,
              seed=[0, 1, 2, 3, 4],
              steps=60, width=3, M_star=small.M_star)
    one = factorization.fit_many(small.A, small.y, num_threads=1, **kw)
    two = factorization.fit_many(small.A, small.y, num_threads=2, **kw)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(flat(a.layers), flat(b.layers))
        for k in a.history:
            if k != "wall_time":
                np.testing.assert_array_equal(a.history[k], b.history[k])
    single = factorization.fit(small.A, small.y, depth=3, method="sam", init_scale=0.5, lr=0.02, sam_radius=0.2, seed=3,
                               steps=60, width=3)
    np.testing.assert_array_equal(flat(single.layers), flat(one[3].layers))


def test_history_channels(small):
    r = factorization.fit(small.A, small.y, depth=2, width=3, method="descent", lr=0.02, steps=100, record_every=10,
                          M_star=small.M_star, init_scale=0.3)
    h = r.history
    assert set(h) == {"t", "loss", "n_grad_evals", "wall_time", "trace", "nuclear_norm", "effective_rank", "error"}
    assert len({v.size for v in h.values()}) == 1 and h["t"].size == 11
    np.testing.assert_allclose(h["t"], 0.02 * np.arange(0, 101, 10))
    assert h["nuclear_norm"][-1] == pytest.approx(np.linalg.svd(r.product, compute_uv=False).sum(), rel=1e-10)
    assert h["error"][-1] == pytest.approx(np.linalg.norm(r.product - small.M_star) / np.linalg.norm(small.M_star),
                                           rel=1e-10)
    s = np.linalg.svd(r.product, compute_uv=False)
    p = s / s.sum()
    assert h["effective_rank"][-1] == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-10)
    assert h["loss"][-1] < h["loss"][0]


def test_flow_converges_and_agrees_with_small_step_gd(small):
    init = factorization.initial_layers(small.shape, 2, width=3, init_scale=0.5, seed=2)
    fl = factorization.fit(small.A, small.y, method="flow", init_layers=init, t_max=2.0, rtol=1e-10)
    gd = factorization.fit(small.A, small.y, method="descent", init_layers=init, lr=1e-4, steps=20000)
    assert fl.status == "max_time" and fl.t_final == pytest.approx(2.0)
    # Euler with step h is O(h) away from the flow
    assert np.linalg.norm(fl.product - gd.product) < 1e-3 * np.linalg.norm(fl.product)
    long = factorization.fit(small.A, small.y, method="flow", init_layers=init, t_max=1e4, rtol=1e-9)
    assert long.status == "converged" and long.loss <= 1e-12 * np.mean(small.y**2)


def test_a_flow_in_a_mixed_batch_ends_as_it_does_alone(small):
    # the flow's default target (1e-12 mean(y^2)) must not depend on the other runs of the batch: a flow
    # batched with a descent run once ran to t_max where the same run alone converged
    kw = dict(depth=2, width=3, init_scale=0.5, seed=2, t_max=1e4, rtol=1e-9)
    alone = factorization.fit(small.A, small.y, method="flow", **kw)
    mixed = factorization.fit_many(small.A, small.y, method=["descent", "flow"], lr=[0.02, None], steps=50, **kw)
    assert alone.status == "converged"
    assert mixed[1].status == alone.status and mixed[1].success == alone.success
    assert (mixed[1].n_steps, mixed[1].t_final, mixed[1].loss) == (alone.n_steps, alone.t_final, alone.loss)
    np.testing.assert_array_equal(flat(mixed[1].layers), flat(alone.layers))
    for k in alone.history:
        if k != "wall_time":
            np.testing.assert_array_equal(mixed[1].history[k], alone.history[k])
    # the descent run keeps its own default (never stop early): all its steps, as alone
    descent = factorization.fit(small.A, small.y, method="descent", lr=0.02, steps=50, **kw)
    assert mixed[0].status == descent.status == "max_steps" and mixed[0].success
    np.testing.assert_array_equal(flat(mixed[0].layers), flat(descent.layers))


def test_depth_one_gd_from_zero_finds_the_min_frobenius_interpolator(small):
    r = factorization.fit(small.A, small.y, depth=1, init_layers=[np.zeros(small.shape)], method="descent", lr=0.01,
                          steps=20000)
    Amat = small.A.reshape(12, -1)
    x = np.linalg.lstsq(Amat, small.y, rcond=None)[0]
    np.testing.assert_allclose(r.product.ravel(), x, atol=1e-8)


def test_divergence_is_reported_with_the_last_finite_state(small):
    r = factorization.fit(small.A, small.y, depth=3, width=3, init_scale=1.0, method="descent", lr=50.0, steps=200)
    assert r.status == "diverged"
    assert np.isfinite(r.loss) and all(np.all(np.isfinite(W)) for W in r.layers)


# --------------------------------------------------------------------------- the claim
def test_trace_penalty_tracks_min_nuclear_norm_while_large_init_gd_does_not():
    m = data.matrix_sensing((8, 8), 1, 30, seed=0)
    X = reference.min_nuclear_norm(m.A, m.y)
    nuc_cvx = np.linalg.svd(X, compute_uv=False).sum()
    tp, gd = factorization.fit_many(m.A, m.y, depth=2, method=["trace_penalty", "descent"], init_scale=1.0, lr=0.025,
                                    trace_weight=0.03, anneal_frac=0.7, steps=3000, seed=0, M_star=m.M_star)
    ratio_tp, ratio_gd = tp.nuclear_norm / nuc_cvx, gd.nuclear_norm / nuc_cvx
    print(f"\n||E||_* / ||X_cvx||_*: trace penalty {ratio_tp:.4f}, large-init GD {ratio_gd:.4f} "
          f"(losses {tp.loss:.1e}, {gd.loss:.1e})")
    assert tp.loss < 1e-4 and gd.loss < 1e-8  # both (nearly) interpolate
    assert abs(ratio_tp - 1) < 0.10
    assert ratio_gd > 1.5
    assert tp.error < 0.05 < 0.5 < gd.error


# --------------------------------------------------------------------------- references and data
@pytest.mark.parametrize("kind", ["gaussian", "completion"])
def test_min_nuclear_norm_recovers_the_planted_matrix(kind):
    n = 40 if kind == "gaussian" else 50
    m = data.matrix_sensing((8, 8), 1, n, kind=kind, seed=2)
    X = reference.min_nuclear_norm(m.A, m.y, shape=m.shape)
    assert np.linalg.norm(X - m.M_star) < 1e-5 * np.linalg.norm(m.M_star)
    # with few measurements it interpolates with a nuclear norm below the planted one
    m = data.matrix_sensing((8, 8), 2, 12, kind=kind, seed=3)
    X = reference.min_nuclear_norm(m.A, m.y, shape=m.shape)
    pred = np.einsum("nij,ij->n", m.A, X) if kind == "gaussian" else X[m.A[:, 0], m.A[:, 1]]
    np.testing.assert_allclose(pred, m.y, atol=1e-6)
    assert np.linalg.svd(X, compute_uv=False).sum() <= np.linalg.svd(m.M_star, compute_uv=False).sum() + 1e-6


def test_matrix_sensing_generator():
    m = data.matrix_sensing((6, 5), 2, 30, seed=1)
    assert m.A.shape == (30, 6, 5) and m.y.shape == (30,) and m.M_star.shape == (6, 5)
    assert np.linalg.matrix_rank(m.M_star) == 2
    assert np.linalg.norm(m.M_star) == pytest.approx(np.sqrt(2))
    np.testing.assert_allclose(np.einsum("nij,ij->n", m.A, m.M_star), m.y)
    c = data.matrix_sensing((6, 5), 2, 30, kind="completion", seed=1)
    assert c.A.shape == (30, 2) and np.issubdtype(c.A.dtype, np.integer)
    assert len({tuple(p) for p in c.A}) == 30  # distinct entries
    np.testing.assert_allclose(c.M_star[c.A[:, 0], c.A[:, 1]], c.y)
    assert np.array_equal(data.matrix_sensing((6, 5), 2, 30, seed=1).A, m.A)
    for kwargs, name in [({"rank": 7}, "rank"), ({"n_measurements": 0}, "n_measurements"),
                         ({"kind": "other"}, "kind"), ({"shape": (3,)}, "shape"), ({"seed": -1}, "seed"),
                         ({"kind": "completion", "n_measurements": 31}, "n_measurements")]:
        args = {"shape": (6, 5), "rank": 2, "n_measurements": 30} | kwargs
        with pytest.raises(ValueError, match=name):
            data.matrix_sensing(**args)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, name", [
    ({"depth": 0}, "depth"),
    ({"trace_weight": -1.0, "method": "trace_penalty"}, "trace_weight"),
    ({"label_noise_std": -0.1, "method": "label_noise_sgd"}, "label_noise_std"),
    ({"sam_radius": -0.1, "method": "sam"}, "sam_radius"),
    ({"trace_weight": float("nan")}, "trace_weight"),
    ({"lr": None}, "lr"),
    ({"lr": -0.1}, "lr"),
    ({"method": "adam"}, "method"),
    ({"init_scale": 0.0}, "init_scale"),
    ({"init": "orthogonal"}, "init"),
    ({"width": 0}, "width"),
    ({"anneal_frac": 1.5}, "anneal_frac"),
    ({"final_ratio": 0.0}, "final_ratio"),
    ({"steps": -1}, "steps"),
    ({"seed": -3}, "seed"),
    ({"M_star": np.ones((3, 3))}, "M_star"),
    ({"init_layers": [np.ones((2, 5)), np.ones((3, 2))]}, "init_layers"),
    ({"num_threads": 0}, "num_threads"),
])
def test_fit_rejects_bad_input(small, kwargs, name):
    args = {"depth": 2, "lr": 0.01, "steps": 5} | kwargs
    with pytest.raises(ValueError, match=name):
        factorization.fit(small.A, small.y, **args)


def test_fit_rejects_bad_problems(small, small_completion):
    with pytest.raises(ValueError, match="y"):
        factorization.fit(small.A, small.y[:-1], lr=0.01, steps=1)
    with pytest.raises(ValueError, match="y"):
        factorization.fit(small.A, np.full(12, np.nan), lr=0.01, steps=1)
    with pytest.raises(ValueError, match="A"):
        factorization.fit(np.ones((12, 3)), small.y, lr=0.01, steps=1)
    with pytest.raises(ValueError, match="shape"):
        factorization.fit(small_completion.A, small_completion.y, lr=0.01, steps=1)
    with pytest.raises(ValueError, match="A"):
        factorization.fit(small_completion.A, small_completion.y, shape=(2, 2), lr=0.01, steps=1)
    with pytest.raises(ValueError, match="equal lengths"):
        factorization.fit_many(small.A, small.y, lr=0.01, steps=1, depth=[2, 3], seed=[0, 1, 2])
    with pytest.raises(ValueError, match="A"):
        reference.min_nuclear_norm(np.ones((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        reference.min_nuclear_norm(small_completion.A, small_completion.y)


def test_every_built_core_variant_imports_and_agrees():
    # each ISA variant registers its own FactorizationMeasurements type (module_local); a clash
    # would make the variants fail to import and silently fall back to the baseline core
    import importlib
    import importlib.util

    from implicitbias import _core

    m = data.matrix_sensing((4, 5), 1, 12, seed=0)
    layers = factorization.initial_layers(m.shape, 3, 3, 1.0, seed=0)
    dims, z = factorization.pack(layers)
    cols = np.ascontiguousarray(m.A).reshape(12 * 4, 5)
    ref = _core.factorization_trace(_core.FactorizationMeasurements.gaussian(4, 5, cols), dims, z)
    expected = expected_isa_variants()
    for label, name, feature in (("x86-64-v3", "_core_x86_64_v3", "avx2"), ("x86-64-v4", "_core_x86_64_v4", "avx512")):
        if importlib.util.find_spec(f"implicitbias.{name}") is None:
            assert label not in expected, f"the {label} core should have been built (IMPLICITBIAS_EXPECT_ISA)"
            continue  # a portable-only build (IMPLICITBIAS_ISA_VARIANTS=OFF)
        if not _core.cpu_supports(feature):
            continue  # built, but this CPU cannot run it
        mod = importlib.import_module(f"implicitbias.{name}")  # an import error fails the test
        t = mod.factorization_trace(mod.FactorizationMeasurements.gaussian(4, 5, cols), dims, z)
        assert t == pytest.approx(ref, rel=1e-12)
    assert hessian.trace(layers, m.A) == pytest.approx(ref, rel=1e-12)


def test_initial_layers_are_drawn_by_the_core_as_fit_draws_them():
    """fit draws a run's layers in the core from its seed: the same layers initial_layers returns (bitwise),
    for both draws, in fit_many's blocks; the balanced draw is balanced and orthogonal; the Gaussian draw
    has the fan-in variance."""
    ms = data.matrix_sensing((3, 4), rank=1, n_measurements=12, seed=2)
    for init in ("gaussian", "balanced"):
        drawn = factorization.fit_many(ms.A, ms.y, depth=3, width=5, init_scale=0.3, init=init, seed=[4, 9],
                                          lr=0.01, steps=7, n_record=3)
        for r, seed in zip(drawn, (4, 9)):
            given = factorization.fit(ms.A, ms.y, init_layers=factorization.initial_layers(
                (3, 4), 3, 5, 0.3, init, seed=seed), lr=0.01, steps=7, n_record=3, seed=seed)
            for a, b in zip(r.layers, given.layers):
                assert np.array_equal(a, b)
    a = 0.7
    W = factorization.initial_layers((4, 6), 3, 5, a, "balanced", seed=3)
    for j in range(len(W) - 1):
        assert np.allclose(W[j + 1].T @ W[j + 1], W[j] @ W[j].T, atol=1e-14)
    assert np.allclose(np.linalg.svd(W[1], compute_uv=False)[:4], a, atol=1e-14)  # m = min(dims) = 4
    G = factorization.initial_layers((300, 200), 2, 400, 2.0, "gaussian", seed=1)
    assert abs(np.std(G[0]) - 2.0 / np.sqrt(200)) < 0.01 * 2.0 / np.sqrt(200)
    assert abs(np.std(G[1]) - 2.0 / np.sqrt(400)) < 0.01 * 2.0 / np.sqrt(400)
    assert abs(np.mean(G[0])) < 3 * 2.0 / np.sqrt(200) / np.sqrt(G[0].size)
    assert not np.array_equal(factorization.initial_layers((2, 2), 1, seed=0)[0],
                              factorization.initial_layers((2, 2), 1, seed=1)[0])
    with pytest.raises(ValueError, match="overflows"):
        factorization.initial_layers((10, 10), 1, init_scale=1.7e308, seed=0)
    with pytest.raises(ValueError, match="overflows"):
        factorization.fit(ms.A, ms.y, width=10, init_scale=1.7e308, lr=0.01, steps=2)
