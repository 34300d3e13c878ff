"""Recorded trajectories of the diagonal family (``record_state=True``; docs/science.md, section 4.6).

Independent routes: the recorded loss against ``0.5 ||A x_rec - y||^2`` (the
same state of the dense output), ``x_rec`` against ``scipy.integrate.solve_ivp``
on the (u, v) flow, a NumPy loop of gradient descent, and the runs with the
option off (it must not change a number).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from implicitbias.diagonal import fit, fit_many

SOLVERS = ("bdf", "rodas5", "rosw", "dopri5")
EPS = np.finfo(float).eps


def _problem(seed=0, M=5, N=9):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((M, N)) / np.sqrt(M)
    x_star = np.zeros(N)
    x_star[:2] = [1.5, -1.0]
    return A, A @ x_star, x_star


def _consistent(A, y, h):
    """The recorded loss is the loss of the recorded x (residual norms agree to rounding)."""
    X = h["x"]
    res = np.linalg.norm(X @ A.T - y, axis=1)
    bound = 64 * EPS * (np.linalg.norm(y) + np.linalg.norm(A, 2) * np.linalg.norm(X, axis=1))
    assert np.all(np.abs(res - np.sqrt(2 * h["loss"])) <= bound)


def _uv_flow(A, y, alpha, t_eval):
    n = A.shape[1]

    def rhs(_, z):
        u, v = z[:n], z[n:]
        g = A.T @ (A @ (u * u - v * v) - y)
        return np.concatenate([-2 * u * g, 2 * v * g])

    sol = solve_ivp(rhs, (0.0, t_eval[-1]), np.full(2 * n, alpha), method="DOP853", t_eval=t_eval,
                    rtol=1e-12, atol=1e-14)
    u, v = sol.y[:n].T, sol.y[n:].T
    return u * u - v * v


@pytest.mark.parametrize("solver", SOLVERS)
def test_flow_records_state_of_dense_output(solver):
    A, y, x_star = _problem()
    times = np.array([0.05, 0.3, 1.0, 2.5, 6.0])
    r = fit(A, y, init_scale=0.2, solver=solver, record_state=True, record_times=times, t_max=6.0,
            rtol=1e-10, x_star=x_star, stall_steps=0)
    h = r.history
    assert h["x"].shape == (len(h["t"]), A.shape[1]) == h["u"].shape == h["v"].shape
    _consistent(A, y, h)
    np.testing.assert_allclose(h["u"] ** 2 - h["v"] ** 2, h["x"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(h["x"] - x_star, axis=1), h["error"], rtol=1e-12, atol=1e-15)
    # x = u^2 - v^2 at u = v = 0.2: zero, up to the rounding of one product where the core fuses
    # u*u - v*v into a multiply-add (the AVX2 and AVX-512 cores: 3.3e-18 measured)
    np.testing.assert_allclose(h["x"][0], np.zeros(A.shape[1]), rtol=0, atol=2 * EPS * 0.2**2)
    at = np.searchsorted(h["t"], times)
    assert np.array_equal(h["t"][at], times)
    ref = _uv_flow(A, y, 0.2, times)
    np.testing.assert_allclose(h["x"][at], ref, rtol=0, atol=2e-8)
    np.testing.assert_allclose(h["x"][-1], r.x, rtol=1e-14, atol=1e-15)  # dual: x from u, v in Python


def test_flow_record_state_changes_nothing_else():
    A, y, x_star = _problem(1)
    for solver in SOLVERS:
        on = fit(A, y, solver=solver, record_state=True, x_star=x_star, t_max=30.0)
        off = fit(A, y, solver=solver, x_star=x_star, t_max=30.0)
        assert "x" not in off.history and "u" not in off.history
        for c in ("t", "loss", "n_grad_evals", "error"):
            np.testing.assert_array_equal(on.history[c], off.history[c])
        np.testing.assert_array_equal(on.x, off.x)


def test_weight_normalized_records():
    A, y, _ = _problem(2)
    for solver, atol in (("rosw", 0.0), ("bdf", 1e-14)):
        r = fit(A, y, weight_norm="joint", solver=solver, atol=atol, record_state=True, t_max=20.0, lr_ratio=2.0)
        h = r.history
        _consistent(A, y, h)
        np.testing.assert_allclose(h["u"] ** 2 - h["v"] ** 2, h["x"], rtol=0, atol=1e-13)
        # the factors' norm is the recorded radius (joint WN: rho = ||(u, v)||)
        np.testing.assert_allclose(np.hypot(np.linalg.norm(h["u"], axis=1), np.linalg.norm(h["v"], axis=1)),
                                   h["radius"], rtol=1e-12)
    r = fit(A, y, nonnegative=True, record_state=True, t_max=5.0, depth=3)
    assert "v" not in r.history
    np.testing.assert_allclose(r.history["u"] ** 3, r.history["x"], rtol=1e-14)


@pytest.mark.parametrize("gd_kernel", ["lanes", "generic"])
@pytest.mark.parametrize("depth", [2, 3])
def test_descent_records_match_numpy_loop(gd_kernel, depth):
    A, y, _ = _problem(3)
    lr, steps, every = 0.05, 60, 7
    r = fit(A, y, method="descent", lr=lr, steps=steps, record_every=every, depth=depth, init_scale=0.3,
            record_state=True, gd_kernel=gd_kernel)
    n = A.shape[1]
    u, v = np.full(n, 0.3), np.full(n, 0.3)
    xs, us, vs = [], [], []
    for k in range(steps + 1):
        if k % every == 0 or k == steps:
            xs.append(u**depth - v**depth)
            us.append(u.copy())
            vs.append(v.copy())
        g = A.T @ (A @ (u**depth - v**depth) - y)
        u, v = u - lr * depth * u ** (depth - 1) * g, v + lr * depth * v ** (depth - 1) * g
    h = r.history
    np.testing.assert_array_equal(h["t"], np.array([k * lr for k in range(0, steps + 1) if k % every == 0
                                                    or k == steps]))
    np.testing.assert_allclose(h["x"], np.array(xs), rtol=0, atol=1e-11)  # rounding over 60 steps
    np.testing.assert_allclose(h["u"], np.array(us), rtol=0, atol=1e-11)
    np.testing.assert_allclose(h["v"], np.array(vs), rtol=0, atol=1e-11)
    _consistent(A, y, h)


@pytest.mark.parametrize("nonneg", [False, True])
def test_sgd_records_match_numpy_loop(nonneg):
    """The stochastic methods record the same trajectory channels: SGD with batches of 2 and heavy-ball
    momentum against a NumPy loop over the kernel's own batch draws (diagonal.batch_draws)."""
    from implicitbias.diagonal import batch_draws

    A, y, _ = _problem(4)
    if nonneg:
        y = A @ np.abs(np.linalg.lstsq(A, y, rcond=None)[0])
    lr, beta, steps, every, b, seed = 0.05, 0.5, 40, 8, 2, 3
    r = fit(A, y, method="sgd", batch_size=b, momentum=beta, lr=lr, steps=steps, record_every=every,
            init_scale=0.3, seed=seed, nonnegative=nonneg, record_state=True)
    n = A.shape[1]
    u, v = np.full(n, 0.3), np.full(n, 0.3)
    du, dv = np.zeros(n), np.zeros(n)
    xs, us, vs = [], [], []
    for k in range(steps + 1):
        x = u**2 - (0 if nonneg else v**2)
        if k % every == 0 or k == steps:
            xs.append(x)
            us.append(u.copy())
            vs.append(v.copy())
        rows = np.asarray(batch_draws(seed, k, A.shape[0], b, "replacement")[0])
        g = A[rows].T @ (A[rows] @ x - y[rows])
        du = -lr * 2 * u * g + beta * du
        dv = lr * 2 * v * g + beta * dv
        u, v = u + du, v + dv
    h = r.history
    np.testing.assert_allclose(h["x"], np.array(xs), rtol=0, atol=1e-11)
    np.testing.assert_allclose(h["u"], np.array(us), rtol=0, atol=1e-11)
    if not nonneg:
        np.testing.assert_allclose(h["v"], np.array(vs), rtol=0, atol=1e-11)
    else:
        assert "v" not in h
    # the last record is the final state (x from u, v in the core, r.x in Python: equal up to a fused
    # multiply-add's rounding on the AVX2 / AVX-512 cores)
    np.testing.assert_allclose(h["x"][-1], r.x, rtol=1e-14, atol=1e-15)


def test_fit_many_entry_threads_and_blocks():
    A, y, _ = _problem(4)
    scales = [0.05, 0.1, 0.2]
    for kw in ({"method": "descent", "lr": 0.05, "steps": 50},
               {"solver": "bdf", "t_max": 10.0}, {"solver": "rosw", "t_max": 10.0}):
        many = fit_many(A, y, init_scale=scales, record_state=True, num_threads=2, block_size=2, **kw)
        threads = fit_many(A, y, init_scale=scales, record_state=True, num_threads=1, block_size=2, **kw)
        for k, s in enumerate(scales):
            one = fit(A, y, init_scale=s, record_state=True, **kw)
            for c in ("x", "u", "v", "loss", "t"):
                np.testing.assert_array_equal(many[k].history[c], threads[k].history[c])
                if kw.get("solver") == "rosw":  # a block shares its step sizes (docs/science.md, 4.7)
                    if c != "t":
                        np.testing.assert_allclose(many[k].history[c][-1], one.history[c][-1], rtol=1e-6,
                                                   atol=1e-7)
                else:  # the lanes kernel and the BDF: bitwise the run of its own
                    np.testing.assert_array_equal(many[k].history[c], one.history[c])


def test_sweep_stores_the_trajectory(tmp_path):
    from implicitbias import sweep

    spec = {"family": "diagonal", "seeds": 1, "problem": {"generator": "sparse_regression", "n_measurements": 5,
                                                         "dim": 8, "sparsity": 1},
            "fit": {"rtol": 1e-6, "t_max": 10.0, "record_state": True, "record_times": {"logspace": [-1, 1, 3]}},
            "grid": {"fit.init_scale": [0.01, 0.1]}, "run": {"history": ["t", "loss", "x"]}}
    df = sweep.run(spec, tmp_path / "s", progress=False, num_threads=1)
    for _, row in df.iterrows():
        X = np.array([list(r) for r in row["history.x"]])
        assert X.shape == (len(row["history.t"]), 8)
    back = sweep.read_csv(sweep.to_csv(tmp_path / "s", tmp_path / "s.csv"))
    for a, b in zip(df["history.x"], back["history.x"]):
        assert np.array_equal(np.array([list(r) for r in a]), np.array(b))
    off = sweep.run({**spec, "fit": {**spec["fit"], "record_state": False}}, tmp_path / "t", progress=False,
                    num_threads=1)
    assert off["history.x"].isna().all()  # not recorded: a null, as any channel a run does not record
