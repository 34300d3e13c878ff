"""Peer implementations for the implicitbias benchmarks.

These are the programs a researcher would otherwise write by hand: the same
model and update rule as ``implicitbias.diagonal`` (SCIENCE.md section 1),
coded directly in NumPy, PyTorch, JAX and scipy.integrate.

Model (signed diagonal linear network of depth L):
    x = u^L - v^L,  loss = 0.5 * ||A x - y||^2,  r = A x - y,  g = A^T r,
    dL/du = L u^(L-1) * g,   dL/dv = -L v^(L-1) * g,   u = v = alpha at t = 0.
Gradient descent: u <- u - lr dL/du, v <- v - lr dL/dv.

All batched peers keep the K runs that share A as the K columns of (N, K)
matrices, so every step is two matrix products (A @ X and A^T @ R).

Optional dependencies (torch, jax) are imported lazily: ``torch_available()``
and ``jax_available()`` tell whether a peer can run, and the peer functions
raise ``PeerUnavailable`` with the reason otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "PeerUnavailable",
    "torch_available",
    "jax_available",
    "gd_numpy",
    "gd_torch",
    "gd_torch_autograd",
    "make_gd_jax",
    "flow_solve_ivp",
    "IVPResult",
    "flow_limit_newton",
    "gd_lr_search",
    "LRSearchResult",
    "dgemm_gflops",
]


class PeerUnavailable(RuntimeError):
    """A peer's library is not installed (or cannot be imported)."""


def _import_error_reason(name: str) -> str | None:
    try:
        __import__(name)
    except Exception as exc:  # ImportError, or a broken install raising anything
        return f"{type(exc).__name__}: {exc}"
    return None


def torch_available() -> str | None:
    """None if torch imports, else the reason it does not."""
    return _import_error_reason("torch")


def jax_available() -> str | None:
    """None if jax (with jaxlib) imports, else the reason it does not."""
    return _import_error_reason("jax")


def _as_columns(A, y, init_scales):
    A = np.ascontiguousarray(A, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    alphas = np.atleast_1d(np.asarray(init_scales, dtype=np.float64))
    return A, y, alphas


# ---------------------------------------------------------------------------
# gradient descent, K runs sharing A, as (N, K) matrices
# ---------------------------------------------------------------------------

def gd_numpy(A, y, init_scales, *, depth=2, lr=0.05, steps=1000):
    """Vectorized NumPy GD: all runs are one (N, K) matrix; returns X (N, K)."""
    A, y, alphas = _as_columns(A, y, init_scales)
    L = int(depth)
    N = A.shape[1]
    U = np.tile(alphas, (N, 1))
    V = U.copy()
    Y = y[:, None]
    At = A.T
    c = lr * L
    if L == 2:
        for _ in range(steps):
            G = At @ (A @ (U * U - V * V) - Y)
            U -= c * U * G
            V += c * V * G
        return U * U - V * V
    for _ in range(steps):
        G = At @ (A @ (U**L - V**L) - Y)
        U -= c * U ** (L - 1) * G
        V += c * V ** (L - 1) * G
    return U**L - V**L


def _torch(num_threads):
    try:
        import torch
    except Exception as exc:
        raise PeerUnavailable(f"torch not installed ({exc})") from exc
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    return torch


def gd_torch(A, y, init_scales, *, depth=2, lr=0.05, steps=1000, num_threads=2):
    """PyTorch eager GD on CPU, float64, explicit gradient formula (no autograd)."""
    torch = _torch(num_threads)
    A, y, alphas = _as_columns(A, y, init_scales)
    L = int(depth)
    N = A.shape[1]
    with torch.no_grad():
        At = torch.from_numpy(A)
        AtT = At.T
        Y = torch.from_numpy(y)[:, None]
        U = torch.from_numpy(np.tile(alphas, (N, 1)))
        V = U.clone()
        c = lr * L
        if L == 2:
            for _ in range(steps):
                G = AtT @ (At @ (U * U - V * V) - Y)
                U -= c * U * G
                V += c * V * G
            X = U * U - V * V
        else:
            for _ in range(steps):
                G = AtT @ (At @ (U**L - V**L) - Y)
                U -= c * U ** (L - 1) * G
                V += c * V ** (L - 1) * G
            X = U**L - V**L
    return X.numpy().copy()


def gd_torch_autograd(A, y, init_scales, *, depth=2, lr=0.05, steps=1000, num_threads=2):
    """PyTorch eager GD with autograd (loss.backward()), as most users write it.

    The K runs are independent, so the gradient of the summed loss with
    respect to column k of (U, V) is the gradient of run k's own loss.
    """
    torch = _torch(num_threads)
    A, y, alphas = _as_columns(A, y, init_scales)
    L = int(depth)
    N = A.shape[1]
    At = torch.from_numpy(A)
    Y = torch.from_numpy(y)[:, None]
    U = torch.from_numpy(np.tile(alphas, (N, 1))).requires_grad_(True)
    V = torch.from_numpy(np.tile(alphas, (N, 1))).requires_grad_(True)
    for _ in range(steps):
        R = At @ (U**L - V**L) - Y
        loss = 0.5 * (R * R).sum()
        loss.backward()
        with torch.no_grad():
            U -= lr * U.grad
            V -= lr * V.grad
        U.grad = None
        V.grad = None
    with torch.no_grad():
        X = U**L - V**L
    return X.numpy().copy()


_JAX_CONFIGURED = False


def _jax():
    global _JAX_CONFIGURED
    try:
        import jax
        import jax.numpy as jnp
    except Exception as exc:
        raise PeerUnavailable(f"jax not installed ({exc})") from exc
    if not _JAX_CONFIGURED:
        jax.config.update("jax_enable_x64", True)
        # start the backend now so that no peer's "compile time" includes it
        jnp.zeros(1).block_until_ready()
        _JAX_CONFIGURED = True
    return jax, jnp


def make_gd_jax(*, depth=2, lr=0.05, steps=1000, form="vmap"):
    """A jitted JAX GD function ``f(A, y, alphas) -> X (N, K)`` (a jax array).

    ``form="vmap"``: one run is a ``lax.fori_loop`` over steps on vectors
    (N,); ``jax.vmap`` maps it over the K init scales (XLA batches the
    matrix-vector products into matrix-matrix products).
    ``form="matrix"``: the same loop written on (N, K) matrices directly.
    float64 is enabled (``jax_enable_x64``).  The first call compiles; time a
    second call for the run time.  Call ``.block_until_ready()`` on the result.
    """
    jax, jnp = _jax()
    L = int(depth)
    c = lr * L
    steps = int(steps)

    def pw(z, p):
        return z if p == 1 else (z * z if p == 2 else z**p)

    if form == "vmap":
        def one(A, y, alpha):
            N = A.shape[1]
            u0 = jnp.full((N,), alpha, dtype=jnp.float64)

            def body(_, state):
                u, v = state
                g = A.T @ (A @ (pw(u, L) - pw(v, L)) - y)
                return (u - c * pw(u, L - 1) * g, v + c * pw(v, L - 1) * g)

            u, v = jax.lax.fori_loop(0, steps, body, (u0, u0))
            return pw(u, L) - pw(v, L)

        batched = jax.vmap(one, in_axes=(None, None, 0), out_axes=1)
        return jax.jit(batched)
    if form == "matrix":
        def run(A, y, alphas):
            N = A.shape[1]
            U0 = jnp.broadcast_to(alphas[None, :], (N, alphas.shape[0])).astype(jnp.float64)
            Y = y[:, None]

            def body(_, state):
                U, V = state
                G = A.T @ (A @ (pw(U, L) - pw(V, L)) - Y)
                return (U - c * pw(U, L - 1) * G, V + c * pw(V, L - 1) * G)

            U, V = jax.lax.fori_loop(0, steps, body, (U0, U0))
            return pw(U, L) - pw(V, L)

        return jax.jit(run)
    raise ValueError(f"form must be 'vmap' or 'matrix', got {form!r}")


# ---------------------------------------------------------------------------
# gradient flow with scipy.integrate.solve_ivp
# ---------------------------------------------------------------------------

class _Budget(Exception):
    pass


@dataclass
class IVPResult:
    x: np.ndarray
    status: str            # "converged" (loss <= tol), "max_time", "budget", "failed"
    t_end: float
    nfev: int              # right-hand-side (= gradient) evaluations, incl. finite-difference Jacobians
    njev: int
    loss: float
    wall_time: float
    message: str = ""


def flow_solve_ivp(A, y, init_scale, *, depth=2, method="LSODA", rtol=1e-8, atol=1e-14,
                   tol=1e-20, t_max=1e6, max_wall=None, max_nfev=None):
    """Plain gradient flow dz/dt = -grad L(z), z = (u, v), with solve_ivp.

    Stops at the terminal event loss(z) = tol or at t_max.  ``max_wall``
    (seconds) and ``max_nfev`` cap the cost; a capped run returns the last
    evaluated state with status "budget".  No Jacobian is supplied: LSODA
    builds it by finite differences and those evaluations are in ``nfev``.
    """
    from scipy.integrate import solve_ivp

    A, y, _ = _as_columns(A, y, [init_scale])
    L = int(depth)
    N = A.shape[1]
    z0 = np.full(2 * N, float(init_scale))
    count = [0]
    last = [0.0, z0]
    t_start = time.perf_counter()

    def fun(t, z):
        count[0] += 1
        if max_nfev is not None and count[0] > max_nfev:
            raise _Budget("max_nfev")
        if max_wall is not None and (count[0] & 255) == 0 and time.perf_counter() - t_start > max_wall:
            raise _Budget("max_wall")
        u = z[:N]
        v = z[N:]
        if L == 2:
            g = A.T @ (A @ (u * u - v * v) - y)
            out = np.concatenate([-2.0 * u * g, 2.0 * v * g])
        else:
            g = A.T @ (A @ (u**L - v**L) - y)
            out = np.concatenate([-L * u ** (L - 1) * g, L * v ** (L - 1) * g])
        last[0] = t
        last[1] = z
        return out

    def loss_of(z):
        u = z[:N]
        v = z[N:]
        r = A @ (u**L - v**L) - y
        return 0.5 * float(r @ r)

    def event(t, z):
        return loss_of(z) - tol

    event.terminal = True
    event.direction = -1

    try:
        sol = solve_ivp(fun, (0.0, float(t_max)), z0, method=method, rtol=rtol, atol=atol,
                        events=event)
    except _Budget as exc:
        wall = time.perf_counter() - t_start
        z = np.array(last[1], dtype=np.float64)
        return IVPResult(x=z[:N] ** L - z[N:] ** L, status="budget", t_end=float(last[0]),
                         nfev=count[0] - 1, njev=-1, loss=loss_of(z), wall_time=wall,
                         message=f"stopped by {exc}")
    wall = time.perf_counter() - t_start
    z = sol.y[:, -1]
    if sol.status == 1:
        status = "converged"
    elif sol.status == 0:
        status = "max_time"
    else:
        status = "failed"
    return IVPResult(x=z[:N] ** L - z[N:] ** L, status=status, t_end=float(sol.t[-1]),
                     nfev=int(sol.nfev), njev=int(getattr(sol, "njev", 0)), loss=loss_of(z),
                     wall_time=wall, message=str(sol.message))


def flow_limit_newton(A, y, init_scale, *, tol=1e-14, max_iter=200):
    """Bench-local cross-check of the depth-2 signed plain-flow limit.

    x = 2 alpha^2 sinh(A^T lam) with A x = y; lam minimizes the strictly
    convex dual phi(lam) = 2 alpha^2 sum cosh(A^T lam) - <lam, y>, solved by
    damped Newton.  Returns (x, n_iterations).
    """
    A, y, _ = _as_columns(A, y, [init_scale])
    c = 2.0 * float(init_scale) ** 2
    lam = np.zeros(A.shape[0])

    def phi(l):
        with np.errstate(over="ignore"):
            return c * np.cosh(A.T @ l).sum() - l @ y

    ynorm = max(np.linalg.norm(y), 1e-300)
    it = 0
    for it in range(1, max_iter + 1):
        s = A.T @ lam
        r = A @ (c * np.sinh(s)) - y
        if np.linalg.norm(r) <= tol * ynorm:
            break
        H = (A * (c * np.cosh(s))) @ A.T
        step = np.linalg.solve(H, r)
        f0 = phi(lam)
        t = 1.0
        while not (phi(lam - t * step) <= f0) and t > 1e-14:
            t *= 0.5
        lam = lam - t * step
    return c * np.sinh(A.T @ lam), it


# ---------------------------------------------------------------------------
# fixed-step GD as a gradient-flow approximation: cheapest lr for a target error
# ---------------------------------------------------------------------------

@dataclass
class LRSearchResult:
    target: float
    found: bool
    steps: int | None             # cheapest step count that reached target (None if not)
    lr: float | None              # the lr achieving it
    max_steps: int
    steps_run: int
    check_every: int
    wall_time: float
    lrs: list = field(default_factory=list)
    final_err: list = field(default_factory=list)       # error to x_limit at the end, per lr
    min_err: list = field(default_factory=list)         # smallest error seen, per lr
    diverged: list = field(default_factory=list)
    extra_targets: dict = field(default_factory=dict)   # target -> {"steps", "lr"} (cheapest)


def gd_lr_search(A, y, init_scale, x_limit, target, *, depth=2,
                 lrs=(0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001),
                 max_steps=1_000_000, check_every=10, extra_targets=(), max_wall=None):
    """Cheapest number of GD steps (= gradient evaluations) to get within
    ``target`` of ``x_limit`` (Euclidean), searching over ``lrs``.

    All step sizes run together as the columns of one vectorized NumPy loop.
    The error is checked every ``check_every`` steps, so counts are exact to
    that resolution (a hit is reported at the check where it is seen).  The
    first column to hit the target is the cheapest (every other column would
    need more steps), so the loop stops there, or at ``max_steps``.
    ``extra_targets`` (looser errors) record their own cheapest first hits on
    the way.  Diverging columns (non-finite or exploding) are dropped.
    """
    A, y, _ = _as_columns(A, y, [init_scale])
    L = int(depth)
    N = A.shape[1]
    lrs_all = np.asarray(lrs, dtype=np.float64)
    K = lrs_all.size
    active = np.arange(K)
    U = np.full((N, K), float(init_scale))
    V = U.copy()
    Y = y[:, None]
    At = A.T
    xl = np.asarray(x_limit, dtype=np.float64)[:, None]
    final_err = np.full(K, np.nan)
    min_err = np.full(K, np.inf)
    diverged = np.zeros(K, dtype=bool)
    extras = {float(t): None for t in sorted(extra_targets, reverse=True) if t > target}
    c = (lrs_all * L)[None, :]
    t0 = time.perf_counter()
    found_steps = None
    found_lr = None
    step = 0
    blow = 1e6 * (1.0 + np.linalg.norm(xl))
    while step < max_steps and active.size:
        n = min(check_every, max_steps - step)
        for _ in range(n):
            if L == 2:
                G = At @ (A @ (U * U - V * V) - Y)
                U -= c * U * G
                V += c * V * G
            else:
                G = At @ (A @ (U**L - V**L) - Y)
                U -= c * U ** (L - 1) * G
                V += c * V ** (L - 1) * G
        step += n
        X = U**L - V**L
        err = np.sqrt(((X - xl) ** 2).sum(axis=0))
        bad = ~np.isfinite(err) | (err > blow)
        good_err = np.where(bad, np.inf, err)
        final_err[active] = good_err
        min_err[active] = np.minimum(min_err[active], good_err)
        for tgt, hit in extras.items():
            if hit is None and (good_err <= tgt).any():
                j = int(np.argmax(good_err <= tgt))
                extras[tgt] = {"steps": step, "lr": float(lrs_all[active[j]])}
        if (good_err <= target).any():
            j = int(np.argmax(good_err <= target))
            found_steps = step
            found_lr = float(lrs_all[active[j]])
            break
        if bad.any():
            diverged[active[bad]] = True
            keep = ~bad
            active = active[keep]
            U = np.ascontiguousarray(U[:, keep])
            V = np.ascontiguousarray(V[:, keep])
            c = (lrs_all[active] * L)[None, :]
        if max_wall is not None and time.perf_counter() - t0 > max_wall:
            break
    wall = time.perf_counter() - t0
    return LRSearchResult(
        target=float(target), found=found_steps is not None, steps=found_steps, lr=found_lr,
        max_steps=int(max_steps), steps_run=int(step), check_every=int(check_every),
        wall_time=wall, lrs=lrs_all.tolist(),
        final_err=[None if not np.isfinite(e) else float(e) for e in final_err],
        min_err=[None if not np.isfinite(e) else float(e) for e in min_err],
        diverged=diverged.tolist(),
        extra_targets={str(k): v for k, v in extras.items()},
    )


# ---------------------------------------------------------------------------
# machine reference
# ---------------------------------------------------------------------------

def dgemm_gflops(n=2000, repeat=3, seed=0):
    """Best-of-``repeat`` NumPy (n x n) @ (n x n) float64 rate in GFLOP/s."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    a @ b  # warm-up (thread pool start)
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9, best
