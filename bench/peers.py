"""What a user would otherwise write: the benchmark workloads by hand in NumPy,
PyTorch, JAX and scipy.integrate.  No timing here (pytest-benchmark does it).

Diagonal network (docs/science.md, section 1): x = u^L - v^L, loss 0.5 ||A x - y||^2,
u = v = alpha at t = 0; the K runs sharing A are the columns of (N, K) matrices.
torch and jax are imported lazily, only by the functions that use them.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np


def rel_diff(X, ref):
    """Largest over columns of ||x - ref|| / ||ref|| (inf if anything is non-finite)."""
    X, ref = np.asarray(X, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if X.ndim == 1:
        X, ref = X[:, None], ref[:, None]
    r = np.linalg.norm(X - ref, axis=0) / np.maximum(np.linalg.norm(ref, axis=0), 1e-300)
    return float(r.max()) if np.isfinite(r).all() else float("inf")


# ------------------------------------------------------------ W1: GD on diagonal networks

def gd_numpy(A, y, alphas, *, depth=2, lr=0.05, steps=1000):
    L, N = depth, A.shape[1]
    U = np.tile(np.asarray(alphas, dtype=np.float64), (N, 1))
    V, Y, c = U.copy(), y[:, None], lr * depth
    for _ in range(steps):
        G = A.T @ (A @ (U**L - V**L) - Y)
        U -= c * U ** (L - 1) * G
        V += c * V ** (L - 1) * G
    return U**L - V**L


@contextlib.contextmanager
def torch_threads(n):
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield torch
    finally:
        torch.set_num_threads(old)


def gd_torch(A, y, alphas, *, depth=2, lr=0.05, steps=1000, autograd=False):
    """PyTorch eager, float64: the explicit gradient formula, or loss.backward()."""
    import torch
    L, N = depth, A.shape[1]
    At, Y = torch.from_numpy(A), torch.from_numpy(y)[:, None]
    U = torch.from_numpy(np.tile(np.asarray(alphas, dtype=np.float64), (N, 1)))
    V = U.clone()
    if not autograd:
        with torch.no_grad():
            for _ in range(steps):
                G = At.T @ (At @ (U**L - V**L) - Y)
                U -= lr * L * U ** (L - 1) * G
                V += lr * L * V ** (L - 1) * G
        return (U**L - V**L).numpy()
    U.requires_grad_(True)
    V.requires_grad_(True)
    for _ in range(steps):  # the runs are independent: grad of the summed loss is per run
        R = At @ (U**L - V**L) - Y
        (0.5 * (R * R).sum()).backward()
        with torch.no_grad():
            U -= lr * U.grad
            V -= lr * V.grad
        U.grad = V.grad = None
    with torch.no_grad():
        return (U**L - V**L).numpy()


def jax():
    import jax as jx
    jx.config.update("jax_enable_x64", True)
    return jx


def make_gd_jax(*, depth=2, lr=0.05, steps=1000, form="vmap"):
    """jit of a lax.fori_loop; "vmap": one run on (N,) vectors vmapped over the
    init scales, "matrix": the loop on (N, K) matrices.  f(A, y, alphas) -> X."""
    jx = jax()
    jnp, L, c = jx.numpy, depth, lr * depth

    def loop(A, Y, U0):
        def body(_, s):
            U, V = s
            G = A.T @ (A @ (U**L - V**L) - Y)
            return U - c * U ** (L - 1) * G, V + c * V ** (L - 1) * G
        U, V = jx.lax.fori_loop(0, steps, body, (U0, U0))
        return U**L - V**L

    if form == "vmap":
        one = lambda A, y, a: loop(A, y, jnp.full((A.shape[1],), a))  # noqa: E731
        return jx.jit(jx.vmap(one, in_axes=(None, None, 0), out_axes=1))
    return jx.jit(lambda A, y, a: loop(A, y[:, None], jnp.broadcast_to(a, (A.shape[1], a.shape[0]))))


# ------------------------------------------------------------ W2: gradient flow

class _Budget(Exception):
    pass


def flow_solve_ivp(A, y, alpha, *, method="LSODA", rtol=1e-8, atol=1e-14, target=1e-20,
                   t_max=1e6, max_wall=None):
    """Plain gradient flow of (u, v) with solve_ivp, depth 2, terminal event
    loss = target; no Jacobian (LSODA's finite differences count in nfev).
    Returns (x, status, nfev, t_end); status "budget" if max_wall (s) stopped it."""
    from scipy.integrate import solve_ivp
    N, t0, last, n = A.shape[1], time.perf_counter(), [0.0, None], [0]

    def fun(t, z):
        n[0] += 1
        if max_wall and n[0] % 256 == 0 and time.perf_counter() - t0 > max_wall:
            raise _Budget
        u, v = z[:N], z[N:]
        g = A.T @ (A @ (u * u - v * v) - y)
        last[:] = t, z
        return np.concatenate([-2 * u * g, 2 * v * g])

    def event(t, z):
        r = A @ (z[:N] ** 2 - z[N:] ** 2) - y
        return 0.5 * r @ r - target
    event.terminal, event.direction = True, -1
    try:
        sol = solve_ivp(fun, (0, t_max), np.full(2 * N, alpha), method=method, rtol=rtol,
                        atol=atol, events=event)
        z, status, t_end = sol.y[:, -1], {1: "converged", 0: "max_time"}.get(sol.status, "failed"), sol.t[-1]
    except _Budget:
        (t_end, z), status = last, "budget"
    return z[:N] ** 2 - z[N:] ** 2, status, n[0], float(t_end)


def wn_flow_solve_ivp(A, y, alpha, kappa, *, method="LSODA", rtol=1e-8, atol=1e-14, target=1e-20, t_max=1e6):
    """Joint weight-normalized flow of depth 2 in polar coordinates z = rho w / ||w||
    (docs/science.md, section 1.6) with solve_ivp: d rho/dt = -<w_hat, grad_z L>,
    dw/dt = -kappa rho (grad_z L - w_hat <w_hat, grad_z L>), terminal event loss = target.
    Returns (x, status, nfev, t_end)."""
    from scipy.integrate import solve_ivp
    N, n = A.shape[1], [0]

    def x_of(z):
        w = z[1:] / np.linalg.norm(z[1:])
        u, v = z[0] * w[:N], z[0] * w[N:]
        return u * u - v * v, u, v, w

    def fun(t, z):
        n[0] += 1
        x, u, v, w = x_of(z)
        g = A.T @ (A @ x - y)
        gz = np.concatenate([2 * u * g, -2 * v * g])
        s = w @ gz
        return np.concatenate([[-s], -kappa * z[0] * (gz - w * s)])

    def event(t, z):
        r = A @ x_of(z)[0] - y
        return 0.5 * r @ r - target
    event.terminal, event.direction = True, -1
    alpha = np.full(N, alpha) if np.ndim(alpha) == 0 else np.asarray(alpha, dtype=np.float64)
    rho = np.sqrt(2.0) * np.linalg.norm(alpha)
    sol = solve_ivp(fun, (0, t_max), np.concatenate([[rho], alpha / rho, alpha / rho]), method=method, rtol=rtol,
                    atol=atol, events=event)
    status = {1: "converged", 0: "max_time"}.get(sol.status, "failed")
    return x_of(sol.y[:, -1])[0], status, n[0], float(sol.t[-1])


def flow_limit_newton(A, y, alpha, tol=1e-14):
    """Depth-2 flow limit x = 2 a^2 sinh(A^T lam), A x = y, by damped Newton on the dual."""
    c, lam = 2.0 * alpha**2, np.zeros(A.shape[0])
    def phi(lam_):
        with np.errstate(over="ignore"):  # a trial step may overflow: inf is rejected by the line search
            return c * np.cosh(A.T @ lam_).sum() - lam_ @ y
    for _ in range(200):
        s = A.T @ lam
        r = A @ (c * np.sinh(s)) - y
        if np.linalg.norm(r) <= tol * np.linalg.norm(y):
            break
        step, t = np.linalg.solve((A * (c * np.cosh(s))) @ A.T, r), 1.0
        while not phi(lam - t * step) <= phi(lam) and t > 1e-14:
            t *= 0.5
        lam = lam - t * step
    return c * np.sinh(A.T @ lam)


# ------------------------------------------------------------ S1: two-layer ReLU, steepest descent

S1_ALGS = [  # (label, implicitbias optimizer, norm, lr0)
    ("GD (l2)", "steepest", "l2", 0.1), ("sign (linf)", "steepest", "linf", 0.003),
    ("coordinate (l1)", "steepest", "l1", 1.0), ("Adam", "adam", "l2", 0.003)]
K0, POWER, BETA1, BETA2, EPS = 100.0, 0.5, 0.9, 0.999, 1e-8


def split(theta, width, dim):
    return theta[:width * dim].reshape((width, dim), order="F"), theta[width * dim:]


def s1_torch(X, y, inits, width, steps):
    """Eager autograd, float64, log-sum-exp of the exponential loss; power-decay steps."""
    import torch
    Xt, yt, out = torch.tensor(X), torch.tensor(y), []
    for _, opt, norm, lr0 in S1_ALGS:
        for th in inits:
            W, a = (torch.tensor(p).requires_grad_() for p in split(th, width, X.shape[1]))
            m = [torch.zeros_like(W), torch.zeros_like(a)]
            v = [torch.zeros_like(W), torch.zeros_like(a)]
            for k in range(steps):
                loss = torch.logsumexp(-yt * (torch.relu(Xt @ W.T) @ a), 0)
                g = list(torch.autograd.grad(loss, (W, a)))
                lr = lr0 * (1 + k / K0) ** -POWER
                with torch.no_grad():
                    if opt == "adam":  # on the true gradient Loss * grad(log Loss)
                        for p, gi, mi, vi in zip((W, a), g, m, v):
                            gi *= torch.exp(loss)
                            mi.mul_(BETA1).add_(gi, alpha=1 - BETA1)
                            vi.mul_(BETA2).addcmul_(gi, gi, value=1 - BETA2)
                            p -= lr * (mi / (1 - BETA1 ** (k + 1))) / (torch.sqrt(vi / (1 - BETA2 ** (k + 1))) + EPS)
                    elif norm == "l2":
                        nrm = torch.sqrt((g[0] ** 2).sum() + (g[1] ** 2).sum())
                        W -= lr * g[0] / nrm
                        a -= lr * g[1] / nrm
                    elif norm == "linf":
                        W -= lr * torch.sign(g[0])
                        a -= lr * torch.sign(g[1])
                    else:  # l1: the first largest |g_j| in theta's (column-major) order
                        flat = torch.cat([g[0].T.reshape(-1), g[1]])
                        j = int(torch.argmax(flat.abs()))
                        if j < W.numel():
                            W[j % width, j // width] -= lr * torch.sign(flat[j])
                        else:
                            a[j - W.numel()] -= lr * torch.sign(flat[j])
            out.append(np.concatenate([W.detach().numpy().reshape(-1, order="F"), a.detach().numpy()]))
    return out


def s1_jax(X, y, width, steps):
    """One jit(vmap over seeds(fori_loop)) per algorithm; returns f(inits) -> thetas."""
    jx = jax()
    jnp = jx.numpy
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    vg = jx.value_and_grad(lambda p: jx.scipy.special.logsumexp(-yj * (jx.nn.relu(Xj @ p[0].T) @ p[1])))
    fns = []
    for _, opt, norm, lr0 in S1_ALGS:
        def body(k, s, opt=opt, norm=norm, lr0=lr0):
            (W, a), m, v = s
            loss, g = vg((W, a))
            lr = lr0 * (1 + k / K0) ** -POWER
            if opt == "adam":
                g = [gi * jnp.exp(loss) for gi in g]
                m = [BETA1 * mi + (1 - BETA1) * gi for mi, gi in zip(m, g)]
                v = [BETA2 * vi + (1 - BETA2) * gi * gi for vi, gi in zip(v, g)]
                step = [lr * (mi / (1 - BETA1 ** (k + 1.0))) / (jnp.sqrt(vi / (1 - BETA2 ** (k + 1.0))) + EPS)
                        for mi, vi in zip(m, v)]
            elif norm == "l2":
                nrm = jnp.sqrt(jnp.sum(g[0] ** 2) + jnp.sum(g[1] ** 2))
                step = [lr * gi / nrm for gi in g]
            elif norm == "linf":
                step = [lr * jnp.sign(gi) for gi in g]
            else:
                flat = jnp.concatenate([g[0].T.reshape(-1), g[1]])
                j = jnp.argmax(jnp.abs(flat))
                e = jnp.zeros_like(flat).at[j].set(lr * jnp.sign(flat[j]))
                step = [e[:g[0].size].reshape(g[0].shape[1], g[0].shape[0]).T, e[g[0].size:]]
            return (W - step[0], a - step[1]), m, v

        def run(W, a, body=body):
            z = [jnp.zeros_like(W), jnp.zeros_like(a)]
            return jx.lax.fori_loop(0, steps, body, ((W, a), z, z))[0]
        fns.append(jx.jit(jx.vmap(run)))

    def f(inits):
        Ws, As = (jnp.asarray(np.stack([split(th, width, X.shape[1])[i] for th in inits])) for i in (0, 1))
        out = []
        for fn in fns:
            W, a = jx.block_until_ready(fn(Ws, As))
            out += [np.concatenate([np.asarray(W[s]).reshape(-1, order="F"), np.asarray(a[s])])
                    for s in range(len(inits))]
        return out
    return f


def normalized_gd_numpy(X, y, lr, steps):
    """S2: linear model, exponential loss, normalized GD from w = 0."""
    w = np.zeros(X.shape[1])
    for _ in range(steps):
        q = y * (X @ w)
        e = np.exp(-(q - q.min()))
        g = X.T @ (-y * e)
        w -= lr * g / np.linalg.norm(g)
    return w


# ------------------------------------------------------------ T1/T2: deep matrix factorization

def product(ws):
    E = ws[0]
    for W in ws[1:]:
        E = W @ E
    return E


def factorization_step_numpy(layers, A, y, lr):
    """One GD step on mean((<A_i, W_L..W_1> - y_i)^2)."""
    r = np.einsum("nij,ij->n", A, product(layers)) - y
    G = 2.0 / len(y) * np.einsum("n,nij->ij", r, A)
    out = []
    for j, W in enumerate(layers):
        P = product(layers[:j]) if j else np.eye(layers[0].shape[1])
        S = product(layers[j + 1:]) if j + 1 < len(layers) else np.eye(W.shape[0])
        out.append(W - lr * S.T @ G @ P.T)
    return out


def torch_factorization(A, y):
    """(loss, closed-form Hessian trace) as torch functions of the layer list."""
    import torch
    At, yt, n, d = torch.tensor(A), torch.tensor(y), len(y), A.shape[2]

    def loss(ws):
        return torch.mean((torch.einsum("nij,ij->n", At, product(ws)) - yt) ** 2)

    def trace(ws):  # (2/n) sum_j sum_i ||S_j^T A_i P_{j-1}^T||_F^2, batched matmuls
        total = 0.0
        for j in range(len(ws)):
            P = product(ws[:j]) if j else torch.eye(d, dtype=torch.float64)
            S = product(ws[j + 1:]) if j + 1 < len(ws) else torch.eye(ws[-1].shape[0], dtype=torch.float64)
            B = S.T @ At @ P.T
            total = total + torch.sum(B * B)
        return 2.0 / n * total
    return loss, trace


def torch_hutchinson(loss, layers, probes=100):
    """Hutchinson estimate, Rademacher probes through autograd double backward."""
    import torch
    ws = [torch.tensor(W, requires_grad=True) for W in layers]
    gen = torch.Generator().manual_seed(0)
    grads = torch.autograd.grad(loss(ws), ws, create_graph=True)
    acc = 0.0
    for _ in range(probes):
        vs = [torch.randint(0, 2, W.shape, generator=gen).to(torch.float64) * 2 - 1 for W in ws]
        hv = torch.autograd.grad(grads, ws, grad_outputs=vs, retain_graph=True)
        acc += sum(float(torch.sum(a * b)) for a, b in zip(vs, hv))
    return acc / probes


def torch_func_basis_trace(loss, layers, chunk=200):
    """Exact trace: sum of HVPs (vmap of jvp-of-grad) over the unit basis, in chunks."""
    import torch
    from torch.func import grad, jvp, vmap
    shapes = [W.shape for W in layers]
    z0 = torch.cat([torch.tensor(W).reshape(-1) for W in layers])

    def loss_flat(z):
        ws, off = [], 0
        for sh in shapes:
            ws.append(z[off:off + sh[0] * sh[1]].reshape(sh))
            off += sh[0] * sh[1]
        return loss(ws)
    eye, total = torch.eye(z0.numel(), dtype=torch.float64), 0.0
    for s in range(0, z0.numel(), chunk):
        hv = vmap(lambda v: jvp(grad(loss_flat), (z0,), (v,))[1])(eye[s:s + chunk])
        total += float(torch.sum(hv * eye[s:s + chunk]))
    return total


def torch_trace_penalty_train(loss, trace, layers, *, lr, weight, steps, anneal_frac, final_ratio):
    """SGD on loss + s_k * trace, s_k = weight * final_ratio^(k/K_a) for k < K_a, then 0."""
    import torch
    ws, K_a = [torch.tensor(W, requires_grad=True) for W in layers], round(anneal_frac * steps)
    for k in range(steps):
        obj = loss(ws) + (weight * final_ratio ** (k / K_a) * trace(ws) if k < K_a else 0.0)
        with torch.no_grad():
            for W, g in zip(ws, torch.autograd.grad(obj, ws)):
                W -= lr * g
    return [W.detach().numpy() for W in ws]
