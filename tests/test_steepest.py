"""Steepest descent on homogeneous classifiers: direction maps, models, log-domain
losses, one step of every optimizer against NumPy, margins against the exact
max-margin solvers, batching, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import implicitbias as ib
from implicitbias import steepest
from implicitbias._native import core
from implicitbias.steepest import _core_model


def _loss(name):
    return core.LossKind.__members__[name]

# ----------------------------------------------------------------------------
# NumPy references


def np_direction(g, norm, shapes=None):
    """g# and ||g||_* written out directly from docs/science.md, section 2.3."""
    if norm == "l2":
        return g.copy(), np.linalg.norm(g)
    if norm == "linf":
        return np.abs(g).sum() * np.sign(g), np.abs(g).sum()
    if norm == "l1":
        j = int(np.argmax(np.abs(g)))  # numpy's argmax returns the first maximal index
        out = np.zeros_like(g)
        out[j] = g[j]
        return out, np.abs(g).max()
    if norm == "spectral":
        out, parts, dual = [], [], 0.0
        off = 0
        for r, c in shapes:
            G = g[off:off + r * c].reshape((r, c), order="F")
            U, s, Vt = np.linalg.svd(G, full_matrices=False)
            k = int(np.sum(s > s[0] * 1e-12))
            parts.append((U[:, :k] @ Vt[:k]).reshape(-1, order="F"))
            dual += s.sum()
            off += r * c
        return dual * np.concatenate(parts), dual
    p = float(norm)
    q = p / (p - 1)
    dual = np.sum(np.abs(g) ** q) ** (1 / q)
    return dual ** (2 - q) * np.sign(g) * np.abs(g) ** (q - 1), dual


def np_outputs(model, theta, X, shapes):
    d = X.shape[1]
    if model == "linear":
        return X @ theta
    if model == "diagonal":
        return X @ (theta[:d] ** 2 - theta[d:] ** 2)
    mats, off = [], 0
    for r, c in shapes:
        mats.append(theta[off:off + r * c].reshape((r, c), order="F"))
        off += r * c
    h = X.T
    for W in mats[:-1]:
        h = np.maximum(W @ h, 0.0)
    return (mats[-1] @ h).ravel()


def np_norm(theta, norm, shapes):
    if norm == "l2":
        return np.linalg.norm(theta)
    if norm == "linf":
        return np.abs(theta).max()
    if norm == "l1":
        return np.abs(theta).sum()
    off, best = 0, 0.0
    for r, c in shapes:
        best = max(best, np.linalg.norm(theta[off:off + r * c].reshape((r, c), order="F"), 2))
        off += r * c
    return best


MODELS = [
    ("linear", None, None),
    ("diagonal", None, None),
    ("relu2", 5, None),
    ("mlp", 4, 3),
    ("mlp", 3, 4),
]


def model_shapes(model, d, width, depth):
    return steepest._model_spec(model, d, width, depth)[4]


def core_model(model, d, width, depth):
    kind, dep, wid, *_ = steepest._model_spec(model, d, width, depth)
    return kind, dep, wid


@pytest.fixture
def small_data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((9, 4))
    y = np.where(rng.standard_normal(9) > 0, 1.0, -1.0)
    return X, y


@pytest.fixture(scope="module")
def separable():
    return ib.data.separable(n_samples=15, dim=20, seed=0)


# ----------------------------------------------------------------------------
# direction maps


@pytest.mark.parametrize("norm", ["l2", "linf", "l1", 1.5, 3.0, 7.0])
def test_direction_matches_numpy_and_dual_identities(norm):
    rng = np.random.default_rng(0)
    for _ in range(5):
        g = rng.standard_normal(13) * 10 ** rng.uniform(-3, 3)
        gs, dual = ib.steepest.direction(g, norm)
        ref, ref_dual = np_direction(g, norm)
        np.testing.assert_allclose(gs, ref, rtol=1e-12, atol=1e-300)
        assert dual == pytest.approx(ref_dual, rel=1e-12)
        # ||g#|| = ||g||_*  and  <g#, g> = ||g||_*^2
        primal = {"l2": 2, "linf": np.inf, "l1": 1}.get(norm, norm)
        assert np.linalg.norm(gs, ord=primal) == pytest.approx(dual, rel=1e-12)
        assert gs @ g == pytest.approx(dual ** 2, rel=1e-12)


def test_spectral_direction_matches_numpy_svd():
    rng = np.random.default_rng(1)
    shapes = [(4, 3), (4, 4), (1, 4)]
    g = rng.standard_normal(sum(r * c for r, c in shapes))
    gs, dual = ib.steepest.direction(g, "spectral", shapes)
    ref, ref_dual = np_direction(g, "spectral", shapes)
    np.testing.assert_allclose(gs, ref, rtol=1e-10, atol=1e-12)
    assert dual == pytest.approx(ref_dual, rel=1e-12)
    # the primal norm of g# (largest spectral norm over blocks) equals the dual norm
    assert np_norm(gs, "spectral", shapes) == pytest.approx(dual, rel=1e-10)
    assert gs @ g == pytest.approx(dual ** 2, rel=1e-10)
    # a rank-deficient block: U V^T only over the nonzero singular values
    G = np.outer(rng.standard_normal(4), rng.standard_normal(3))
    gs2, d2 = ib.steepest.direction(G.reshape(-1, order="F"), "spectral", [(4, 3)])
    np.testing.assert_allclose(gs2.reshape((4, 3), order="F"), G, rtol=1e-10)  # rank one: g# = G
    assert d2 == pytest.approx(np.linalg.norm(G), rel=1e-12)


def test_l1_tie_rule_takes_the_first_index():
    g = np.array([0.5, -2.0, 2.0, 1.0, -2.0])
    gs, dual = ib.steepest.direction(g, "l1")
    np.testing.assert_array_equal(gs, [0, -2.0, 0, 0, 0])
    assert dual == 2.0


def test_param_norms_match_numpy():
    rng = np.random.default_rng(2)
    shapes = [(3, 5), (1, 3)]
    th = rng.standard_normal(18)
    for norm in ("l2", "linf", "l1", "spectral"):
        assert ib.steepest.param_norm(th, norm, shapes) == pytest.approx(np_norm(th, norm, shapes), rel=1e-12)
    assert ib.steepest.param_norm(th, 3.0) == pytest.approx(np.sum(np.abs(th) ** 3) ** (1 / 3), rel=1e-12)


# ----------------------------------------------------------------------------
# models and losses


@pytest.mark.parametrize("model,width,depth", MODELS)
def test_outputs_gradient_and_euler_identity(model, width, depth, small_data):
    X, _ = small_data
    d = X.shape[1]
    shapes = model_shapes(model, d, width, depth)
    kind, dep, wid = core_model(model, d, width, depth)
    degree = steepest._model_spec(model, d, width, depth)[3]
    rng = np.random.default_rng(5)
    theta = rng.standard_normal(sum(r * c for r, c in shapes))
    f = core.homogeneous_outputs(_core_model(kind, dep, wid), X, theta)
    np.testing.assert_allclose(f, np_outputs(model, theta, X, shapes), rtol=1e-12, atol=1e-12)
    c = rng.standard_normal(X.shape[0])
    G, _ = core.homogeneous_grad_sum(_core_model(kind, dep, wid), X, theta, c)
    # central differences of sum_i c_i f(x_i)
    h = 1e-6
    fd = np.array([(c @ np_outputs(model, theta + h * e, X, shapes) - c @ np_outputs(model, theta - h * e, X, shapes))
                   / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-7)
    # Euler: <theta, grad f> = L f for a degree-L homogeneous model
    assert theta @ G == pytest.approx(degree * (c @ f), rel=1e-12, abs=1e-12)
    # homogeneity itself
    spec = _core_model(kind, dep, wid)
    np.testing.assert_allclose(core.homogeneous_outputs(spec, X, 1.7 * theta), 1.7**degree * f, rtol=1e-12)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_log_domain_loss_and_scaled_gradient(loss, small_data):
    X, y = small_data
    rng = np.random.default_rng(6)
    theta = rng.standard_normal(X.shape[1])

    def np_loss(th):
        q = y * (X @ th)
        return np.sum(np.exp(-q)) if loss == "exp" else np.sum(np.log1p(np.exp(-q)))

    ll, gt, _q = core.classification_loss(_core_model("linear", 2, 0), X, y, theta, _loss(loss))
    assert ll == pytest.approx(np.log(np_loss(theta)), rel=1e-13)
    h = 1e-6
    fd = np.array([(np_loss(theta + h * e) - np_loss(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(gt * np.exp(ll), fd, rtol=1e-6)
    # far below the double range, on labels separable by construction (those of a random w): the
    # log-loss is still exact and the scaled gradient (gradient / Loss) finite and exact
    y_sep = np.where(X @ theta > 0, 1.0, -1.0)
    qs = y_sep * (X @ theta)
    assert qs.min() > 0
    big = 2000.0 * theta / qs.min()  # every margin >= 2000: Loss <= 9 e^-2000 ~ 1e-868
    ll_big, gt_big, qb = core.classification_loss(_core_model("linear", 2, 0), X, y_sep, big, _loss(loss))
    assert np.isfinite(ll_big) and ll_big < -1990 and np.all(np.isfinite(gt_big))
    ref = -qb.min() + np.log(np.sum(np.exp(-(qb - qb.min()))))  # exp and logistic agree here to 1e-800
    assert ll_big == pytest.approx(ref, rel=1e-12)
    soft = np.exp(-(qb - qb.min())) / np.sum(np.exp(-(qb - qb.min())))  # gradient / Loss = -X^T (y * softmax(-q))
    np.testing.assert_allclose(gt_big, -X.T @ (y_sep * soft), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------
# one step of every optimizer against NumPy


def _np_loss_grad(theta, X, y, loss):
    q = y * (X @ theta)
    if loss == "exp":
        L = np.sum(np.exp(-q))
        g = X.T @ (-y * np.exp(-q))
    else:
        L = np.sum(np.log1p(np.exp(-q)))
        g = X.T @ (-y / (1 + np.exp(q)))
    return L, g


@pytest.mark.parametrize("loss", ["exp", "logistic"])
@pytest.mark.parametrize("norm", ["l2", "linf", "l1", 3.0])
@pytest.mark.parametrize("normalized", [True, False])
def test_steepest_steps_match_numpy(loss, norm, normalized, small_data):
    X, y = small_data
    theta0 = np.random.default_rng(7).standard_normal(X.shape[1]) * 0.3
    lr, steps = 0.05, 3
    r = ib.steepest.fit(X, y, "linear", norm=norm, normalized=normalized, lr=lr, loss=loss, steps=steps,
                        init=theta0, schedule="power", decay_k0=2.0, decay_power=0.7)
    th = theta0.copy()
    for k in range(steps):
        _, g = _np_loss_grad(th, X, y, loss)
        gs, dual = np_direction(g, norm)
        lr_k = lr * (1 + k / 2.0) ** -0.7
        th = th - (lr_k * gs / dual if normalized else lr_k * gs)
    np.testing.assert_allclose(r.theta, th, rtol=1e-12, atol=1e-14)
    assert r.n_steps == steps and r.n_grad_evals == steps + 1


@pytest.mark.parametrize("eps", [0.0, 1e-8, 0.3])
@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_adam_and_signum_match_numpy(eps, beta1, small_data):
    X, y = small_data
    theta0 = np.random.default_rng(8).standard_normal(X.shape[1]) * 0.3
    lr, beta2, steps = 0.02, 0.99, 4
    r = ib.steepest.fit(X, y, "linear", lr=lr, steps=steps, init=theta0, optimizer="adam", beta1=beta1,
                        beta2=beta2, eps=eps)
    s = ib.steepest.fit(X, y, "linear", lr=lr, steps=steps, init=theta0, optimizer="signum", beta1=beta1)
    th, m, v = theta0.copy(), 0.0, 0.0
    ths, ms = theta0.copy(), 0.0
    for k in range(1, steps + 1):
        _, g = _np_loss_grad(th, X, y, "exp")
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        th = th - lr * (m / (1 - beta1 ** k)) / (np.sqrt(v / (1 - beta2 ** k)) + eps)
        _, gs = _np_loss_grad(ths, X, y, "exp")
        ms = beta1 * ms + (1 - beta1) * gs
        ths = ths - lr * np.sign(ms)
    np.testing.assert_allclose(r.theta, th, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s.theta, ths, rtol=1e-12, atol=1e-14)


def test_loss_based_schedule_matches_numpy_with_retries(small_data):
    X, _ = small_data
    rng = np.random.default_rng(9)
    w_true = rng.standard_normal(X.shape[1])
    y = np.sign(X @ w_true)
    theta0 = np.zeros(X.shape[1])
    lr, growth, backoff, steps = 3.0, 1.5, 0.5, 6
    r = ib.steepest.fit(X, y, "linear", norm="l2", normalized=False, lr=lr, schedule="loss", steps=steps,
                        init=theta0, lr_growth=growth, lr_backoff=backoff)
    th, c, evals, retries, t = theta0.copy(), 1.0, 1, 0, 0.0
    L, g = _np_loss_grad(th, X, y, "exp")
    for _ in range(steps):
        while True:  # lr_k = lr c / Loss: the update is lr c g / Loss
            cand = th - lr * c * g / L
            Lc, gc = _np_loss_grad(cand, X, y, "exp")
            evals += 1
            if Lc < L:
                th, L, g, t, c = cand, Lc, gc, t + lr * c, c * growth
                break
            c *= backoff
            retries += 1
    assert retries >= 2  # lr = 3 with growth 1.5 overshoots: the schedule must back off
    np.testing.assert_allclose(r.theta, th, rtol=1e-12)
    assert r.n_grad_evals == evals == 1 + steps + retries
    assert r.status == "max_steps" and r.n_steps == steps
    assert r.t_final == pytest.approx(t, rel=1e-14)  # the clock of 2.5: lr c_k of each accepted step


# ----------------------------------------------------------------------------
# log domain: far below 1e-300


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_runs_continue_far_below_1e_300(loss, separable):
    X, y = separable.X, separable.y
    r = ib.steepest.fit(X, y, "linear", norm="l2", normalized=True, lr=0.5, loss=loss, steps=20000, n_record=50)
    h = r.history
    assert r.status == "max_steps"
    assert np.all(np.isfinite(h["log_loss"])) and np.all(np.isfinite(r.theta))
    assert h["log_loss"][-1] < -5000  # the loss is exp(-5000): far below 1e-300
    # (the margins are 0/0 = NaN at the start theta = 0 only)
    assert np.isnan(h["margin_l2"][0]) and np.all(np.isfinite(h["margin_l2"][1:]))
    assert np.all(np.isfinite(h["smoothed_margin"][1:]))
    # the margin is kept (and still improving) while the loss underflows
    assert h["margin_l2"][-1] >= h["margin_l2"][np.argmax(h["log_loss"] < -700)] - 1e-12
    opt = ib.reference.max_margin(X, y, "l2").margin
    assert h["margin_l2"][-1] > 0.99 * opt
    # exp loss: smoothed <= gamma <= smoothed + log(n) / ||theta||^L
    if loss == "exp":
        sm, g, nrm = h["smoothed_margin"][1:], h["margin_l2"][1:], h["param_norm"][1:]
        assert np.all(sm <= g + 1e-12)
        assert np.all(g <= sm + np.log(len(y)) / nrm + 1e-12)


# ----------------------------------------------------------------------------
# margins against the exact optima


def test_linear_each_algorithm_wins_in_its_own_norm(separable):
    X, y = separable.X, separable.y
    opt = {n: ib.reference.max_margin(X, y, n).margin for n in ("l2", "linf", "l1")}
    runs = ib.steepest.fit_many(X, y, model="linear", norm=["l2", "linf", "l1"], normalized=True,
                                lr=[0.1, 0.01, 0.1], steps=100_000, n_record=10)
    table = {r.norm: {n: r.margin(n) / opt[n] for n in opt} for r in runs}
    for alg, row in table.items():
        assert row[alg] >= 0.99, (alg, row)
        for other, val in row.items():
            if other != alg:
                assert val < row[alg] - 0.02, (alg, row)


def test_diagonal_gd_parameter_l2_margin_reaches_predictor_l1_max_margin(separable):
    X, y = separable.X, separable.y
    ref = ib.reference.diagonal_max_margin(X, y, "l1").margin
    r = ib.steepest.fit(X, y, "diagonal", norm="l2", normalized=True, lr=0.1, steps=100_000, init_scale=0.01,
                        n_record=10)
    assert r.margin("l2") == pytest.approx(ref, rel=0.01)
    assert r.margin("l2") <= ref * (1 + 1e-9)  # ||(u, v)||_2^2 >= ||u^2 - v^2||_1 bounds it above


def test_flow_matches_small_step_descent(separable):
    X, y = separable.X, separable.y
    # normalized l2 flow to time T equals normalized GD with tiny steps up to O(lr)
    T = 5.0
    fl = ib.steepest.fit(X, y, "linear", norm="l2", normalized=True, method="flow", t_max=T, rtol=1e-10,
                         init=np.full(X.shape[1], 0.05))
    gd = ib.steepest.fit(X, y, "linear", norm="l2", normalized=True, lr=1e-3, steps=5000,
                         init=np.full(X.shape[1], 0.05))
    assert fl.status == "max_time"
    assert np.linalg.norm(fl.theta - gd.theta) / np.linalg.norm(fl.theta) < 2e-3
    assert fl.t_final == pytest.approx(T)
    # and the lp flow runs with its own geometry
    lp = ib.steepest.fit(X, y, "linear", norm=[3.0][0], normalized=False, method="flow", t_max=50.0)
    assert lp.status == "max_time" and lp.history["log_loss"][-1] < lp.history["log_loss"][0]


def _largest_drop(X, y, norm, lr):
    """The largest one-step fall of the smoothed margin after perfect accuracy (0 if none)."""
    r = ib.steepest.fit(X, y, "linear", norm=norm, normalized=True, lr=lr, steps=int(40 / lr), record_every=1)
    sm = r.history["smoothed_margin"][r.history["accuracy"] == 1.0]
    assert sm.size > 10, "never reached perfect accuracy"
    return max(0.0, float(np.max(-np.diff(sm))))


def test_smoothed_margin_drop_shrinks_with_the_step(separable):
    # sign descent has a drop, and it shrinks faster than the step (measured 0.19, 0.021, 1.7e-4)
    drops = [_largest_drop(separable.X, separable.y, "linf", lr) for lr in (0.4, 0.1, 0.02)]
    assert drops[0] > 0.05
    assert drops[1] < drops[0] / 4 and drops[2] < drops[1] / 4
    # README: normalized GD has no drop at all for lr <= 0.5
    assert all(_largest_drop(separable.X, separable.y, "l2", lr) <= 1e-12 for lr in (0.5, 0.1))


def test_adam_tracks_sign_descent(separable):
    X, y = separable.X, separable.y
    opt = ib.reference.max_margin(X, y, "linf").margin
    runs = ib.steepest.fit_many(X, y, optimizer=["adam", "adam", "signum"], beta1=[0.0, 0.9, 0.0],
                                beta2=0.9, eps=0.0, lr=0.01, steps=50_000, n_record=10)
    for r in runs:
        assert r.status == "max_steps" and r.log_loss < -1000  # eps = 0: no underflow trouble below 1e-300
        assert r.margin("linf") / opt > 0.99, r.optimizer
        assert r.margin("linf") / opt > r.margin("l2") / ib.reference.max_margin(X, y, "l2").margin


# ----------------------------------------------------------------------------
# batches


def test_fit_many_equals_separate_fits_and_is_thread_independent(separable, openmp):
    X, y = separable.X, separable.y
    Xd = ib.data.digits_binary(n_samples=60, seed=1)
    kw = dict(model=["linear", "diagonal", "relu2", "relu2"], norm=["linf", "l2", "l1", "spectral"],
              lr=[0.01, 0.05, 0.05, 0.05], width=[None, None, 6, 6], seed=[0, 0, 1, 2], steps=300, n_record=5)
    Xs, ys = [X, X, Xd.X, Xd.X], [y, y, Xd.y, Xd.y]
    one = ib.steepest.fit_many(Xs, ys, num_threads=1, **kw)
    two = ib.steepest.fit_many(Xs, ys, num_threads=2, **kw)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.theta, b.theta)
        np.testing.assert_array_equal(a.history["margin_l2"], b.history["margin_l2"])
    for k, r in enumerate(one):
        single = ib.steepest.fit(Xs[k], ys[k], kw["model"][k], norm=kw["norm"][k], lr=kw["lr"][k],
                                 width=kw["width"][k], seed=kw["seed"][k], steps=300, n_record=5)
        np.testing.assert_array_equal(single.theta, r.theta)


def test_relu_network_trains_on_digits_and_records_spectral_margin():
    d = ib.data.digits_binary(n_samples=120, seed=0)
    r = ib.steepest.fit(d.X, d.y, "relu2", width=16, norm="l2", lr=0.1, steps=2000, seed=0)
    h = r.history
    assert r.accuracy == 1.0
    assert "margin_spectral" in h and h["margin_spectral"][-1] > 0
    assert h["margin_l2"][-1] > h["margin_l2"][np.argmax(h["accuracy"] == 1.0)]
    assert len(r.params["layers"]) == 2 and r.params["layers"][0].shape == (16, 64)


# ----------------------------------------------------------------------------
# bad input


def test_bad_input_raises_value_error_naming_the_argument(small_data):
    X, y = small_data
    fit = ib.steepest.fit
    with pytest.raises(ValueError, match="y must contain labels"):
        fit(X, np.where(y > 0, 1.0, 0.0))
    with pytest.raises(ValueError, match="norm"):
        fit(X, y, norm="l3")
    with pytest.raises(ValueError, match="p must be > 1"):
        fit(X, y, norm=[1.0][0])
    with pytest.raises(ValueError, match="p must be > 1"):
        fit(X, y, norm=0.5)
    with pytest.raises(ValueError, match="lr"):
        fit(X, y, lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        fit(X, y, lr=-1.0)
    with pytest.raises(ValueError, match="X contains NaN"):
        fit(np.where(np.eye(9, 4) > 0, np.nan, X), y)
    with pytest.raises(ValueError, match="y contains NaN"):
        fit(X, np.r_[y[:-1], np.inf])
    with pytest.raises(ValueError, match="y must have length"):
        fit(X, y[:-1])
    with pytest.raises(ValueError, match="model"):
        fit(X, y, model="cnn")
    with pytest.raises(ValueError, match="width"):
        fit(X, y, model="relu2")
    with pytest.raises(ValueError, match="depth"):
        fit(X, y, model="mlp", width=3, depth=1)
    with pytest.raises(ValueError, match="beta1"):
        fit(X, y, optimizer="adam", beta1=1.0)
    with pytest.raises(ValueError, match="eps"):
        fit(X, y, optimizer="adam", eps=-1e-8)
    with pytest.raises(ValueError, match="schedule='loss'"):
        fit(X, y, schedule="loss", normalized=True)
    with pytest.raises(ValueError, match="method='flow'"):
        fit(X, y, norm="linf", method="flow")
    with pytest.raises(ValueError, match="init"):
        fit(X, y, init=np.zeros(3))
    # non-separable data asked to reach zero loss
    Xn = np.vstack([X, X[:1]])
    yn = np.r_[y, -y[:1]]
    with pytest.raises(ValueError, match="not separable"):
        fit(Xn, yn, model="relu2", width=4, target_log_loss=-50.0)
    rng = np.random.default_rng(0)
    Xl = rng.standard_normal((30, 2))
    yl = np.where(rng.standard_normal(30) > 0, 1.0, -1.0)
    with pytest.raises(ValueError, match="not linearly separable"):
        fit(Xl, yl, target_log_loss=-50.0)
    with pytest.raises(ValueError, match="all-zero rows"):
        fit(np.vstack([X, np.zeros(4)]), np.r_[y, 1.0], model="relu2", width=3, target_log_loss=-10.0)
    # without a target the same data train normally (the loss just stays positive)
    assert fit(Xl, yl, steps=10).status == "max_steps"


def test_diverging_run_ends_as_diverged_with_finite_state(small_data):
    X, y = small_data
    # unnormalized GD on the exp loss with a huge step from a bad start overflows
    theta0 = -50.0 * np.linalg.lstsq(X, y, rcond=None)[0]
    r = ib.steepest.fit(X, y, "linear", normalized=False, lr=1e6, steps=50, init=theta0)
    assert r.status == "diverged"
    assert np.all(np.isfinite(r.theta)) and np.isfinite(r.log_loss)


def test_target_log_loss_stops_a_run(separable):
    r = ib.steepest.fit(separable.X, separable.y, "linear", lr=0.1, steps=100_000, target_log_loss=-100.0)
    assert r.status == "converged" and r.log_loss <= -100.0 and r.n_steps < 100_000


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_mlp_gradient_with_concentrated_weights_matches_numpy(depth):
    """Late in training most softmax weights are (near) zero: the backward pass
    then runs on the active samples only; it must give the same gradient."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((40, 5))
    width = 6
    shapes = model_shapes("mlp", 5, width, depth)
    theta = rng.standard_normal(sum(r * c for r, c in shapes))
    c = np.zeros(40)
    c[[3, 17, 29]] = rng.standard_normal(3)
    c[5] = 1e-30  # below 2^-64 of the largest weight: skipped (adds less than rounding)
    G, _ = core.homogeneous_grad_sum(_core_model("mlp", depth, width), X, theta, c)
    h = 1e-6
    fd = np.array([(c @ np_outputs("mlp", theta + h * e, X, shapes) - c @ np_outputs("mlp", theta - h * e, X, shapes))
                   / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-7)
    c_dense = c.copy()
    c_dense[c_dense == 0] = 1e-3 * rng.standard_normal(int(np.sum(c_dense == 0)))
    G_dense, _ = core.homogeneous_grad_sum(_core_model("mlp", depth, width), X, theta, c_dense)
    # linearity in c: grad(c_dense) - grad(c) = grad(c_dense - c) (dense path both ways)
    G_diff, _ = core.homogeneous_grad_sum(_core_model("mlp", depth, width), X, theta, c_dense - c + 0.0)
    np.testing.assert_allclose(G_dense - G, G_diff, rtol=1e-9, atol=1e-12)
    f = core.homogeneous_outputs(_core_model("mlp", depth, width), X, theta)
    assert theta @ G == pytest.approx(depth * (c @ f), rel=1e-12)


@pytest.mark.parametrize("normalized", [True, False])
def test_spectral_steps_on_a_relu_network_match_numpy(normalized):
    d = ib.data.digits_binary(n_samples=30, seed=2)
    width = 5
    shapes = model_shapes("relu2", 64, width, None)
    theta = ib.steepest.init_params("relu2", 64, width=width, seed=3)
    lr, steps = (0.05 if normalized else 1e-4), 3
    r = ib.steepest.fit(d.X, d.y, "relu2", width=width, norm="spectral", normalized=normalized, lr=lr,
                        steps=steps, init=theta)
    th = theta.copy()
    for _ in range(steps):
        ll, gt, _ = core.classification_loss(_core_model("mlp", 2, width), d.X, d.y, th, _loss("exp"))
        gs, dual = np_direction(gt, "spectral", shapes)
        th = th - (lr * gs / dual if normalized else lr * np.exp(ll) * gs)
    assert r.status == "max_steps" and r.log_loss < r.history["log_loss"][0]
    np.testing.assert_allclose(r.theta, th, rtol=1e-10, atol=1e-13)


def test_plain_python_lists_are_one_data_set(separable):
    X, y = separable.X, separable.y
    a = ib.steepest.fit(X, y, steps=50)
    b = ib.steepest.fit(X.tolist(), y.tolist(), steps=50)
    np.testing.assert_array_equal(a.theta, b.theta)
    two = ib.steepest.fit_many([X, X[:10]], [y, y[:10]], steps=50)
    np.testing.assert_array_equal(two[0].theta, a.theta)
    assert two[1].X.shape == (10, X.shape[1])
