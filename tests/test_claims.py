"""The claims of the README, the docs pages and the papers, each checked on a small instance with a tolerance
that matches the claim (docs/claims.md lists every number with the test that checks it)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import implicitbias as ib
from implicitbias import factorization, hessian


# --------------------------------------------------------------------------- label-noise SGD
def _label_noise_draws(sigma: float, steps: int, seed: int) -> np.ndarray:
    """The noise xi_{k,i} of every step k, recovered from a depth-1 run (E = W_1), where one step is
    ``E' = E - lr (2/n) sum_i (<A_i, E> - y_i - sigma xi_i) A_i`` (docs/science.md, section 3.6)."""
    rng = np.random.default_rng(0)
    n, d, lr = 60, 8, 1e-3
    A = rng.standard_normal((n, d, d))
    y = np.einsum("nij,ij->n", A, rng.standard_normal((d, 1)) @ rng.standard_normal((1, d)))
    E = [0.1 * rng.standard_normal((d, d))]
    for k in range(1, steps + 1):  # k steps from the same start: the noise depends on (seed, step) only
        r = factorization.fit(A, y, depth=1, method="label_noise_sgd", label_noise_std=sigma, lr=lr, steps=k,
                              anneal_frac=1.0, final_ratio=1.0, seed=seed, init_layers=[E[0]])
        E.append(r.product)
    Amat = A.reshape(n, -1)
    xis = []
    for E0, E1 in zip(E[:-1], E[1:]):
        clean = Amat.T @ (Amat @ E0.ravel() - y)  # sum_i r_i A_i with the clean labels
        noisy = (E0 - E1).ravel() / lr * n / 2  # sum_i (r_i - sigma xi_i) A_i
        xis.append(np.linalg.lstsq(Amat.T, (clean - noisy) / sigma, rcond=None)[0])  # A^T has full column rank
    return np.array(xis)


def test_label_noise_is_fresh_at_every_step_with_the_stated_std():
    xi = _label_noise_draws(sigma=0.7, steps=60, seed=5)  # 60 steps x 60 labels
    N = xi.size
    assert abs(xi.std() - 1.0) < 0.04  # sigma exactly as stated: 4% is 3.4 standard errors at N = 3600
    assert abs(xi.mean()) < 4 / np.sqrt(N)
    assert scipy.stats.kstest(xi.ravel(), "norm").pvalue > 1e-3  # Gaussian
    # fresh at every step: consecutive steps' noise uncorrelated, never repeated
    lag1 = np.corrcoef(xi[:-1].ravel(), xi[1:].ravel())[0, 1]
    assert abs(lag1) < 4 / np.sqrt(N)
    assert min(np.max(np.abs(a - b)) for a, b in zip(xi[:-1], xi[1:])) > 1.0
    # drawn from the seed and the step number: another seed, other noise; the same seed, the same noise
    other = _label_noise_draws(sigma=0.7, steps=2, seed=6)
    assert abs(np.corrcoef(other[0], xi[0])[0, 1]) < 0.5
    np.testing.assert_allclose(_label_noise_draws(sigma=0.7, steps=2, seed=5), xi[:2], rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- diagonal networks
@pytest.mark.parametrize("seed", [0, 2])
def test_nonnegative_weight_normalized_limit_is_the_plain_limit_at_alpha_eff(seed):
    # docs/science.md 1.7: the WN flow's limit is the plain flow's limit at alpha_eff (nonnegative model
    # x = u^2); on these problems the two limits differ by 0.08-0.13, the claim holds to the integrator's
    # accuracy (measured 4e-7 to 5e-7)
    d = ib.data.sparse_regression(20, 40, 3, seed=seed, nonnegative=True)
    w = ib.diagonal.fit(d.A, d.y, nonnegative=True, weight_norm="joint", lr_ratio=10.0, init_scale=0.1)
    assert w.success
    at_eff = ib.reference.diagonal_flow_limit(d.A, d.y, w.alpha_eff(), depth=2, nonnegative=True)
    at_init = ib.reference.diagonal_flow_limit(d.A, d.y, 0.1, depth=2, nonnegative=True)
    assert np.linalg.norm(w.x - at_eff) <= 1e-5
    assert np.linalg.norm(w.x - at_init) >= 0.05  # the claim is not trivial here


def test_weight_normalization_reaches_the_loss_tolerance_sooner_at_depth_2():
    # "weight normalization converges faster": flow time to a loss of 1e-8 of its start, depth 2
    # (measured on the experiment's problem, seeds 0-2, alpha 1e-3 to 0.3: 17x-1600x sooner with lr_ratio = 100;
    # at depth 3 it is not: see the next test and docs/claims.md)
    d = ib.data.sparse_regression(40, 100, 4, seed=0)
    rec = np.logspace(-3, 9, 400)
    for alpha in (1e-2, 0.1):
        t = []
        for wn, kappa in ((None, 1.0), ("joint", 100.0)):
            r = ib.diagonal.fit(d.A, d.y, depth=2, init_scale=alpha, weight_norm=wn, lr_ratio=kappa, rtol=1e-6,
                                record_times=rec)
            reached = np.flatnonzero(r.history["loss"] <= 1e-8 * r.history["loss"][0])
            t.append(r.history["t"][reached[0]])
        assert t[1] < t[0] / 10, (alpha, t)


@pytest.mark.parametrize("alpha", [1e-2, 0.1])
def test_weight_normalization_at_depth_3_stalls_on_a_plateau(alpha):
    # At depth 3 with lr_ratio = 100 the flow stalls on a plateau of nonzero loss from t ~ 1e3 to past
    # t = 1e9 (measured: loss 0.344 at alpha <= 0.01, 4.9e-3 at alpha = 0.1; ||x|| ~ 1.4-1.5, so the
    # plateau is a saddle away from the origin: the old README's "near the saddle at the origin" was wrong)
    d = ib.data.sparse_regression(40, 100, 4, seed=0)
    r = ib.diagonal.fit(d.A, d.y, depth=3, init_scale=alpha, weight_norm="joint", lr_ratio=100.0, rtol=1e-6,
                        t_max=1e9, record_times=[1e3, 1e6, 1e9])
    assert r.status == "max_time" and not r.success
    h = r.history
    assert h["loss"][-1] == pytest.approx(h["loss"][np.searchsorted(h["t"], 1e3)], rel=1e-6)  # flat since t = 1e3
    assert r.loss > 1e-3  # far from an interpolator
    assert np.linalg.norm(r.x) > 0.5 * np.linalg.norm(d.x_star)  # and far from the origin


# --------------------------------------------------------------------------- steepest descent
def test_diagonal_network_reaches_its_predictor_lps():
    # docs/experiments.md: 0.995-0.998 of the predictor LP on the diagonal network (mean over 5 seeds; single seeds
    # measured 0.990-0.999): GD against the l1 LP, sign descent against the l_inf LP
    ratios: dict[str, list[float]] = {"l2": [], "linf": []}
    for seed in range(5):
        c = ib.data.separable(15, 20, seed=seed)
        runs = ib.steepest.fit_many(c.X, c.y, "diagonal", norm=["l2", "linf"], lr=[0.1, 0.01],
                                    schedule=["constant", "power"], steps=20_000, init_scale=0.1, n_record=5)
        lp = {"l2": ib.reference.diagonal_max_margin(c.X, c.y, "l1").margin,
              "linf": ib.reference.diagonal_max_margin(c.X, c.y, "linf").margin}
        for norm, r in zip(("l2", "linf"), runs):
            ratio = r.margin(norm) / lp[norm]
            assert 0.985 <= ratio <= 1 + 1e-9, (seed, norm, ratio)
            ratios[norm].append(ratio)
    for norm, v in ratios.items():
        assert 0.995 <= np.mean(v) <= 0.998, (norm, np.mean(v))


def test_adam_without_eps_follows_sign_descent_on_a_relu_network():
    # docs/experiments.md: on the ReLU network Adam with eps = 0 follows sign descent (large l_inf margin) rather
    # than GD; the reproduction's size gives 16-19 against GD's 2.8 (sign descent 35). On this
    # smaller instance (the reproduction's --quick size): GD 2.1, sign descent 22, Adam 7.7
    d = ib.data.digits_binary(n_samples=150, seed=0)
    gd, sign, adam = ib.steepest.fit_many(
        d.X, d.y, model="relu2", width=16, seed=0, steps=1500, optimizer=["steepest", "steepest", "adam"],
        norm=["l2", "linf", "l2"], lr=[0.1, 0.003, 0.003], schedule=["constant", "power", "power"], beta1=0.9,
        beta2=0.99, eps=0.0, n_record=5)
    assert min(r.accuracy for r in (gd, sign, adam)) == 1.0
    assert adam.margin("linf") > 2.5 * gd.margin("linf")
    assert sign.margin("linf") > adam.margin("linf")
    # and in the l2 geometry it sits with sign descent, far from GD
    assert abs(adam.margin("l2") - sign.margin("l2")) < 0.25 * abs(gd.margin("l2") - sign.margin("l2"))


# --------------------------------------------------------------------------- deep matrix factorization
@pytest.fixture(scope="module")
def trained_l3():
    """The flatness experiment's estimator point: d = 20, rank 2, n = 120, L = 3, trace penalty."""
    prob = ib.data.matrix_sensing((20, 20), 2, 120, seed=0)
    op = factorization.sensing_operator(prob.A)
    runs = factorization.fit_many(op, prob.y, depth=3, width=20, method=["trace_penalty", "descent"], init_scale=1.0,
                                  lr=0.05 / 3, trace_weight=[0.03, 0.0], seed=0, steps=10_000, anneal_frac=0.7,
                                  final_ratio=1e-3, n_record=5)
    return runs, prob, op


def test_trace_penalty_solutions_sit_on_the_trace_bound(trained_l3):
    # docs/experiments.md: trace / (2L (d0 dL)^(1/L) ||E||_*^(2(L-1)/L)) is 0.96-1.05 for the trace penalty (median
    # over seeds), 1.4-3.4 for large-init GD (measured here: 1.003 and 1.9)
    (tp, gd), _, _ = trained_l3
    assert 0.96 <= tp.trace / hessian.proxy_bound(tp.product, 3) <= 1.05
    assert 1.4 <= gd.trace / hessian.proxy_bound(gd.product, 3) <= 3.4


def test_trace_estimators_reach_the_stated_accuracy(trained_l3):
    # docs/experiments.md: near zero loss Hutch++ and XTrace become nearly exact (1e-4 to 1e-5) once their sketch
    # covers the Hessian's rank (about n = 120), Hutchinson stays at ~1% (measured at 768 products,
    # medians over 10 seeds: 2.5e-5, 1.2e-5, 0.8%; here over 3)
    (tp, _), prob, op = trained_l3
    exact = hessian.trace(tp.layers, op)

    def median_error(fn):
        return np.median([abs(fn(tp.layers, op, prob.y, num_matvecs=768, seed=s).estimate - exact) / exact
                          for s in range(3)])

    assert median_error(hessian.hutchpp) <= 1e-4
    assert median_error(hessian.xtrace) <= 1e-4
    assert 1e-3 <= median_error(hessian.hutchinson) <= 3e-2


# --------------------------------------------------------------------------- the reproductions' numbers
def test_weight_normalization_recovers_the_sparse_solution_at_alpha_0_1():
    # README, docs/experiments.md (depth 2, alpha = 0.1, median of 10 seeds): plain error 0.43, WN lr_ratio=10 5.2e-3,
    # lr_ratio=100 3.4e-7 (measured: 0.433, 5.18e-3, 3.39e-7); above alpha ~ 0.2 nothing recovers x*
    # (measured at alpha = 0.3: plain 1.10, WN 1.03). Here per seed (seeds 0-2), so with wider bounds.
    for seed in range(3):
        d = ib.data.sparse_regression(40, 100, 4, seed=seed)
        plain, wn10, wn100, plain3, wn3 = ib.diagonal.fit_many(
            d.A, d.y, x_star=d.x_star, depth=2, init_scale=[0.1, 0.1, 0.1, 0.3, 0.3],
            weight_norm=[None, "joint", "joint", None, "joint"], lr_ratio=[1.0, 10.0, 100.0, 1.0, 100.0], t_max=1e9)
        err = {k: np.linalg.norm(r.x - d.x_star) for k, r in
               (("plain", plain), ("wn10", wn10), ("wn100", wn100), ("plain3", plain3), ("wn3", wn3))}
        assert 0.2 <= err["plain"] <= 0.8, err
        assert err["wn100"] < err["wn10"] <= 3e-2, err  # lr_ratio = 10: in between (one seed gives 8e-5)
        assert err["wn100"] <= 2e-6, err
        assert min(err["plain3"], err["wn3"]) >= 0.5, err


def test_linear_model_reaches_its_own_max_margin():
    # docs/experiments.md (as corrected): GD and sign descent reach 0.999 or more of the optimum in their own norm on
    # the linear model, coordinate descent 0.998 (means over 5 seeds, the reproduction's settings;
    # measured 0.99997, 0.99949, 0.9986; single seeds down to 0.9988 and 0.9970)
    ratios: dict[str, list[float]] = {"l2": [], "linf": [], "l1": []}
    for seed in range(5):
        c = ib.data.separable(15, 20, seed=seed)
        runs = ib.steepest.fit_many(c.X, c.y, model="linear", norm=["l2", "linf", "l1"], lr=[0.1, 0.01, 0.1],
                                    steps=200_000, n_record=5)
        for r in runs:
            ratios[r.norm].append(r.margin(r.norm) / ib.reference.max_margin(c.X, c.y, r.norm).margin)
    assert np.mean(ratios["l2"]) >= 0.999 and np.mean(ratios["linf"]) >= 0.999
    assert 0.998 <= np.mean(ratios["l1"])
    assert min(min(v) for v in ratios.values()) >= 0.996 and max(max(v) for v in ratios.values()) <= 1 + 1e-9


def test_smoothed_margin_drops_at_the_reproductions_step_sizes():
    # docs/experiments.md: sign descent's largest drop falls from 1.3 at lr 2 to 1.6e-6 at lr 0.005; normalized GD
    # has no drop at all for lr <= 0.5 (the reproduction's setup: seed 0, init 0.01, time 60)
    c = ib.data.separable(15, 20, seed=0)

    def drop(norm, lr):
        r = ib.steepest.fit(c.X, c.y, "linear", norm=norm, lr=lr, init=np.full(20, 0.01), steps=round(60 / lr),
                            record_every=1)
        sm = r.history["smoothed_margin"][r.history["accuracy"] == 1.0]
        return max(0.0, float(np.max(-np.diff(sm))))

    assert 1.25 <= drop("linf", 2.0) <= 1.35
    assert 1.5e-6 <= drop("linf", 0.005) <= 1.7e-6
    assert all(drop("l2", lr) == 0.0 for lr in (0.5, 0.1, 0.005))


@pytest.fixture(scope="module")
def sensing_n160():
    """A problem of the flatness reproduction (d = 20, rank 2, n = 160, seed 0) and its minimum nuclear norm."""
    prob = ib.data.matrix_sensing((20, 20), 2, 160, seed=0)
    nuc_cvx = np.linalg.svd(ib.reference.min_nuclear_norm(prob.A, prob.y), compute_uv=False).sum()
    return prob, factorization.sensing_operator(prob.A), nuc_cvx


@pytest.fixture(scope="module")
def flatness_n160(sensing_n160):
    """Every configuration of the flatness reproduction at depth 3, 10,000 steps (and depth 1)."""
    prob, op, nuc_cvx = sensing_n160
    runs = factorization.fit_many(
        op, prob.y, depth=[3, 3, 3, 3, 3, 1], width=20, init_scale=[1.0, 1.0, 1.0, 0.1, 1.0, 1e-3],
        method=["trace_penalty", "label_noise_sgd", "sam", "descent", "descent", "descent"],
        lr=[0.05 / 3] * 5 + [0.05], trace_weight=[0.03, 0, 0, 0, 0, 0], label_noise_std=[0, 10.0, 0, 0, 0, 0],
        sam_radius=[0, 0, 0.5, 0, 0, 0], seed=0, steps=10_000, anneal_frac=0.7, final_ratio=1e-3, M_star=prob.M_star,
        n_record=5)
    names = ("trace penalty", "label noise", "SAM", "GD small init", "GD large init", "depth 1")
    return {k: (r.nuclear_norm / nuc_cvx, r.error) for k, r in zip(names, runs)}


def test_flat_solution_finders_against_the_minimum_nuclear_norm(flatness_n160):
    # docs/experiments.md (d = 20, rank 2, depths 2-4, 3 seeds), ||E||_* / ||X_cvx||_* and recovery error; measured
    # here at depth 3 (the core's draw of the layers from seed 0): 1.0002/0.011, 1.127, 1.70, 1.016, 4.74/2.04,
    # depth 1 1.59
    r = flatness_n160
    assert 1.0 - 1e-6 <= r["trace penalty"][0] <= 1.002 and r["trace penalty"][1] <= 0.035  # n >= 160
    assert 1.02 - 5e-3 <= r["label noise"][0] <= 1.16  # "comes close (1.02-1.16)"
    assert 1.3 <= r["SAM"][0] <= 1.8  # "only gets partway (1.3-1.8)"
    assert 1.0 - 1e-6 <= r["GD small init"][0] <= 1.02 + 5e-3  # "1.00-1.02 at depths 3-4"
    assert 3.0 <= r["GD large init"][0] <= 11.0 and r["GD large init"][1] > 1.0  # "3 to 11 times", error > 1
    assert r["depth 1"][0] > 1.3  # depth 1 does not move toward low rank


def test_factorization_page_example_reaches_the_minimum_nuclear_norm(sensing_n160):
    # docs/families/factorization.md's example (the same problem): f.nuclear_norm / ||X||_* ~ 1.00 (measured 0.99995)
    m, op, nuc_cvx = sensing_n160
    f = factorization.fit(op, m.y, depth=3, width=20, init_scale=1.0, method="trace_penalty", lr=0.05 / 3,
                          trace_weight=0.03, steps=10_000, M_star=m.M_star)
    assert f.nuclear_norm / nuc_cvx == pytest.approx(1.0, abs=5e-3)


def test_default_flow_target_is_a_relative_residual_of_10_rtol():
    # docs/numerics.md: a run stops at loss <= target_loss (default 50 (rtol ||y||)^2, a relative residual of 10 rtol)
    d = ib.data.sparse_regression(20, 40, 3, seed=1)
    ny = np.linalg.norm(d.y)
    for rtol in (1e-6, 1e-8):
        r = ib.diagonal.fit(d.A, d.y, init_scale=0.1, rtol=rtol)
        assert r.status == "converged"
        assert r.loss <= 50 * (rtol * ny) ** 2
        assert np.linalg.norm(d.A @ r.x - d.y) <= 10 * rtol * ny
    coarse = ib.diagonal.fit(d.A, d.y, init_scale=0.1, rtol=1e-4)
    assert coarse.loss > 50 * (1e-8 * ny) ** 2  # it stopped at its own (coarser) target


def test_weight_normalized_flow_fails_below_basis_pursuits_transition_at_small_delta():
    # docs/experiments.md, the Donoho-Tanner plane (N = 100, depth 2, alpha = 0.1, lr_ratio = 30, seeds 0-9, the
    # phase reproduction's problems and rule: recovered when ||x - x*|| <= 1% ||x*||): at M = 10, 20, 30 with
    # s = 1, 2, 3 the WN flow recovers 10%, 20%, 50% where basis pursuit recovers 100%; there alpha_eff() stays
    # near alpha (medians 0.079, 0.055; 0.006 at M = 30), while at M = 40 (s = 4) it recovers 90% with
    # alpha_eff() collapsed (median 2.5e-6). Counts are held to +-1 seed of the measured ones.
    expected = {10: (1, 0.079), 20: (2, 0.055), 30: (5, 0.006), 40: (9, 2.5e-6)}
    for M, (n_wn, alpha_eff) in expected.items():
        ds = [ib.data.sparse_regression(n_measurements=M, dim=100, sparsity=M // 10, seed=seed) for seed in range(10)]
        runs = ib.diagonal.fit_many([d.A for d in ds], [d.y for d in ds], depth=2, init_scale=0.1, weight_norm="joint",
                                    lr_ratio=30.0, rtol=1e-6, n_record=2)

        def recovered(x, d):
            return np.linalg.norm(x - d.x_star) <= 1e-2 * np.linalg.norm(d.x_star)
        assert all(recovered(ib.reference.basis_pursuit(d.A, d.y), d) for d in ds), M
        assert abs(sum(recovered(r.x, d) for r, d in zip(runs, ds)) - n_wn) <= 1, M
        median = float(np.median([np.median(r.alpha_eff()) for r in runs]))
        if M <= 20:
            assert median == pytest.approx(alpha_eff, rel=0.15), (M, median)  # near alpha = 0.1
        elif M == 30:
            assert 1e-3 <= median <= 0.02, (M, median)
        else:
            assert median <= 1e-4, (M, median)  # collapsed where it recovers


def test_weight_normalization_at_lr_ratio_1_recovers_at_depth_3_only():
    # docs/experiments.md, the recovery diagram (N = 100, M = 40, s = 4, seeds 0-19, recovered when
    # ||x - x*|| <= 1% ||x*||): with lr_ratio = 1 the WN flow recovers 2 of 20 at depth 2 (alpha = 0.01), but
    # at depth 3 18 of 20 at alpha = 0.1 and 20 of 20 at alpha = 0.01. Counts held to +-1 seed.
    ds = [ib.data.sparse_regression(n_measurements=40, dim=100, sparsity=4, seed=s) for s in range(20)]
    for depth, alpha, expected in ((2, 0.01, 2), (3, 0.1, 18), (3, 0.01, 20)):
        runs = ib.diagonal.fit_many([d.A for d in ds], [d.y for d in ds], depth=depth, init_scale=alpha,
                                    weight_norm="joint", lr_ratio=1.0, rtol=1e-6, n_record=2)
        n = sum(np.linalg.norm(r.x - d.x_star) <= 1e-2 * np.linalg.norm(d.x_star) for r, d in zip(runs, ds))
        assert abs(n - expected) <= 1, (depth, alpha, n)
