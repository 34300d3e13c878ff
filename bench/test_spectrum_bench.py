"""E1 (top-10 Hessian eigenvalues) and E2 (spectral density) of deep matrix factorization.

Same model as T1 (test_factorization_bench.py): E = W_3 W_2 W_1 (d = 20, widths 20, 1200 parameters),
n = 300 Gaussian measurements, loss mean((<A_i, E> - y_i)^2), float64, at a Gaussian init (nonzero
residual: H is indefinite). The truth is numpy.linalg.eigh of the dense Hessian (exact HVPs of the
unit basis). Every program works on the same operator, the exact HVP of implicitbias:

- implicitbias: hessian.eigenvalues (block Lanczos in C++ over the C++ HVP, no Python per product);
- scipy-eigsh: scipy.sparse.linalg.eigsh (ARPACK, implicitly restarted Lanczos) on
  HessianOperator.aslinearoperator() (a Python call per block of products into the same C++ HVP);
- scipy-lobpcg: scipy.sparse.linalg.lobpcg on the same LinearOperator, no preconditioner.

The products each program used are counted and stored (extra_info["matvecs"]) with the largest error
against the dense truth; all are asked for the same relative tolerance.

E3 (top-10) and E4 (density) put the torch-based packages on the same model, written as a torch module
(float64, torch on one thread): PyHessian, hessian-eigenthings, curvlinops (+ scipy eigsh, its documented
route to eigenvalues) and scipy eigsh on a hand-written torch HVP, with implicitbias both on its C++ HVP
and on the same torch module through implicitbias.torch. Same matvec budget (E3: 100 products; E4: 10
probes x 50 Lanczos steps), one process; accuracy against the dense truth (E3: the largest error of the
top 10 relative to ||H||; E4: the L1 distance between the density and the exact spectrum smoothed by the
same kernel). Peers missing from the environment are skipped (bench/requirements.txt pins them).
"""

from __future__ import annotations

import numpy as np
import pytest
from harness import timed

D, DEPTH, N_MEAS, WIDTH, K = 20, 3, 300, 20, 10
TOL = 1e-10
ERR_TOL = 1e-8  # largest |error| of the top-10 values relative to ||H||_2


@pytest.fixture(scope="module")
def spectrum_model(ib):
    prob = ib.data.matrix_sensing((D, D), 2, N_MEAS, seed=0)
    layers = ib.factorization.initial_layers((D, D), DEPTH, WIDTH, 1.0, "gaussian", seed=1)
    H = ib.hessian.dense(layers, prob.A, prob.y)
    return prob.A, prob.y, layers, np.linalg.eigvalsh(H)


class Counting:
    """A LinearOperator's products, counted (columns)."""

    def __init__(self, op):
        self.op, self.count = op, 0

    def linear_operator(self):
        from scipy.sparse.linalg import LinearOperator

        def mm(X):
            X = np.asarray(X)
            self.count += 1 if X.ndim == 1 else X.shape[1]
            return self.op.matvec(X)
        return LinearOperator(self.op.shape, matvec=mm, matmat=mm, rmatvec=mm, dtype=np.float64)


E1_PEERS = {
    "implicitbias-block10": "hessian.eigenvalues(k=10), block Lanczos, block size 10, C++ HVP",
    "implicitbias-block1": "hessian.eigenvalues(k=10, block_size=1), single-vector Lanczos, C++ HVP",
    "scipy-eigsh": "scipy eigsh(k=10, which='LA') on the exact HVP (LinearOperator)",
    "scipy-lobpcg": "scipy lobpcg(10 columns, largest) on the exact HVP, no preconditioner",
}


@pytest.mark.benchmark(group="E1 top-10 Hessian eigenvalues")
@pytest.mark.parametrize("peer", list(E1_PEERS))
def test_e1_top_eigenvalues(benchmark, spectrum_model, peer, ib):
    A, y, layers, exact = spectrum_model
    op = ib.hessian.operator(layers, A, y)
    counter = Counting(op)
    rng = np.random.default_rng(0)
    if peer.startswith("implicitbias"):
        bs = 1 if peer.endswith("block1") else K

        def f():
            r = ib.hessian.eigenvalues(op, k=K, tol=TOL, block_size=bs, max_matvecs=op.dim)
            counter.count = r.num_matvecs
            return np.sort(r.values)
    elif peer == "scipy-eigsh":
        from scipy.sparse.linalg import eigsh

        def f():
            counter.count = 0
            return np.sort(eigsh(counter.linear_operator(), k=K, which="LA", tol=TOL, v0=rng.standard_normal(op.dim),
                                 return_eigenvectors=False))
    else:
        from scipy.sparse.linalg import lobpcg

        def f():
            counter.count = 0
            X = rng.standard_normal((op.dim, K))
            with np.errstate(all="ignore"):
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    vals, _ = lobpcg(counter.linear_operator(), X, largest=True, tol=TOL * 1e3, maxiter=2000)
            return np.sort(vals)
    vals = timed(benchmark, f, n_rounds=3, peer=peer.split("-")[0], variant=E1_PEERS[peer],
                 config=dict(d=D, L=DEPTH, n=N_MEAS, width=WIDTH, k=K, tol=TOL))
    norm = np.abs(exact).max()
    err = float(np.max(np.abs(vals - exact[-K:]))) / norm
    benchmark.extra_info.update(matvecs=counter.count, rel_error=err)
    if peer != "scipy-lobpcg":  # lobpcg is reported as measured (it may stall short of the tolerance)
        assert err <= ERR_TOL, f"{peer}: top-{K} error {err:.2e} relative to ||H||"


@pytest.mark.benchmark(group="E2 spectral density (SLQ)")
def test_e2_density(benchmark, spectrum_model, ib):
    A, y, layers, exact = spectrum_model
    op = ib.hessian.operator(layers, A, y)
    sd = timed(benchmark, lambda: ib.hessian.density(op, num_probes=10, steps=50, seed=0), n_rounds=3,
               peer="implicitbias", variant="hessian.density, 10 probes x 50 Lanczos steps, C++ HVP",
               config=dict(d=D, L=DEPTH, n=N_MEAS, width=WIDTH, probes=10, steps=50))
    mean, se = sd.moments([1, 2])
    truth = np.array([np.mean(exact), np.mean(exact**2)])
    z = np.abs(mean - truth) / se
    benchmark.extra_info.update(matvecs=sd.num_matvecs, moment_z=z.tolist())
    assert np.all(z <= 4), f"SLQ moments {mean} vs exact {truth} (standard errors {se})"


# --------------------------------------------------------------------------- E3, E4: the torch-based peers
# The same model in PyTorch (float64): parameters W1, W2, W3, predictions <A_i, W3 W2 W1>, loss MSELoss()
# (the mean over the n measurements: the package's loss exactly). Every peer builds its Hessian operator
# from this module through its own documented API and computes from one random start; the time includes
# building the operator (PyHessian's and eigenthings' gradient graph; our torch bridge's graph).
# Budget: E3 gives every solver 100 products (single-vector Lanczos needs 81 for 1e-10 here, E1); the
# "defaults" rows are what a user gets from each package's defaults. E4: 10 probes x 50 Lanczos steps each.
E3_BUDGET = 100
E3_PEERS = {
    "implicitbias-cpp": "hessian.eigenvalues(k=10, block_size=1, max_matvecs=100), C++ HVP",
    "implicitbias-torchbridge": "hessian.eigenvalues(k=10, block_size=1, max_matvecs=100) on "
                                "implicitbias.torch.hessian_operator (torch.func HVP)",
    "pyhessian-budget": "PyHessian 0.1 eigenvalues(top_n=10, maxIter=10, tol=1e-10): deflated power iteration",
    "pyhessian-defaults": "PyHessian 0.1 eigenvalues(top_n=10) with its defaults (maxIter=100, tol=1e-3)",
    "eigenthings-lanczos": "hessian-eigenthings lanczos(k=10, max_iter=100, which='LA', reorthogonalize=True)",
    "eigenthings-defaults": "hessian-eigenthings lanczos(k=10, which='LA') with its defaults (max_iter=2k)",
    "curvlinops-eigsh": "curvlinops HessianLinearOperator.to_scipy() + scipy eigsh(k=10, which='LA', tol=1e-10)",
    "torch-eigsh": "scipy eigsh(k=10, which='LA', tol=1e-10) on a hand-written torch double-backward HVP "
                   "(the locuslab/edge-of-stability recipe, float64)",
}
E4_PEERS = {
    "implicitbias-cpp": "hessian.density(num_probes=10, steps=50), C++ HVP",
    "implicitbias-torchbridge": "hessian.density(num_probes=10, steps=50) on implicitbias.torch.hessian_operator",
    "pyhessian": "PyHessian 0.1 density(iter=50, n_v=10) (torch.eig shimmed by torch.linalg.eigh: removed in torch 2)",
    "eigenthings": "hessian-eigenthings spectral_density(num_runs=10, lanczos_steps=50)",
    "curvlinops": "curvlinops lanczos_approximate_spectrum(ncv=50, num_repeats=10, exact boundaries given)",
}


def _torch_model(torch, A, y, layers):
    class Factorization(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(W.copy())) for W in layers])

        def forward(self, A):
            E = self.W[2] @ self.W[1] @ self.W[0]
            return torch.einsum("nij,ij->n", A, E)

    return Factorization(), torch.from_numpy(np.ascontiguousarray(A)), torch.from_numpy(y.copy())


class _TorchHVP:
    """The hand-written recipe: a gradient with create_graph, then one autograd.grad per product."""

    def __init__(self, torch, model, X, y):
        self.torch, self.params = torch, list(model.parameters())
        loss = torch.nn.functional.mse_loss(model(X), y)
        self.grads = torch.autograd.grad(loss, self.params, create_graph=True)
        self.dim, self.count = sum(p.numel() for p in self.params), 0

    def linear_operator(self):
        from scipy.sparse.linalg import LinearOperator

        torch = self.torch

        def mv(v):
            self.count += 1
            vs = torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1)).split([p.numel() for p in self.params])
            hv = torch.autograd.grad(self.grads, self.params, [a.reshape(p.shape) for a, p in zip(vs, self.params)],
                                     retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv]).numpy()
        return LinearOperator((self.dim, self.dim), matvec=mv, rmatvec=mv, dtype=np.float64)


@pytest.fixture(scope="module")
def torch64():
    torch = pytest.importorskip("torch")
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)  # PyHessian draws its vectors in the default dtype
    torch.set_num_threads(1)  # as implicitbias's Lanczos (one thread); tiny tensors gain nothing from more
    yield torch
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)


def _pyhessian_counting(monkeypatch):
    ph = pytest.importorskip("pyhessian.hessian")
    count = [0]
    inner = ph.hessian_vector_product

    def hvp(*a):
        count[0] += 1
        return inner(*a)
    monkeypatch.setattr(ph, "hessian_vector_product", hvp)
    return ph, count


def _eigenthings_operator(torch, model, X, y):
    he = pytest.importorskip("hessian_eigenthings")
    op = he.HessianOperator(model, [(X, y)], he.supervised_loss(torch.nn.functional.mse_loss))
    count = [0]
    inner = op.matvec

    def mv(v):
        count[0] += 1
        return inner(v)
    op.matvec = mv
    return he, op, count


@pytest.mark.benchmark(group="E3 top-10 Hessian eigenvalues, torch-based peers")
@pytest.mark.parametrize("peer", list(E3_PEERS))
def test_e3_top_eigenvalues_torch_peers(benchmark, spectrum_model, torch64, peer, ib, monkeypatch):
    torch = torch64
    A, y, layers, exact = spectrum_model
    model, X, yt = _torch_model(torch, A, y, layers)
    count = [0]
    if peer.startswith("implicitbias"):
        import implicitbias.torch as ibt

        def f():
            op = (ib.hessian.operator(layers, A, y) if peer.endswith("cpp")
                  else ibt.hessian_operator(model, torch.nn.functional.mse_loss, X, yt))
            with np.errstate(all="ignore"):
                r = ib.hessian.eigenvalues(op, k=K, tol=TOL, block_size=1, max_matvecs=E3_BUDGET, seed=0)
            count[0] = r.num_matvecs
            return r.values
    elif peer.startswith("pyhessian"):
        ph, count = _pyhessian_counting(monkeypatch)
        kw = dict(maxIter=E3_BUDGET // K, tol=1e-10) if peer.endswith("budget") else {}

        def f():
            count[0] = 0
            torch.manual_seed(0)
            return np.array(ph.hessian(model, torch.nn.functional.mse_loss, data=(X, yt), cuda=False)
                            .eigenvalues(top_n=K, **kw)[0])
    elif peer.startswith("eigenthings"):
        def f():
            he, op, c = _eigenthings_operator(torch, model, X, yt)
            kw = dict(max_iter=E3_BUDGET, reorthogonalize=True) if peer.endswith("lanczos") else {}
            vals = he.lanczos(op, k=K, which="LA", seed=0, **kw).eigenvalues.detach().numpy()
            count[0] = c[0]
            return vals
    else:
        from scipy.sparse.linalg import eigsh

        def f():
            if peer == "curvlinops-eigsh":
                from curvlinops import HessianLinearOperator

                lin = Counting(None)
                H = HessianLinearOperator(model, torch.nn.MSELoss(), list(model.parameters()),
                                          [(X, yt)]).to_scipy()
                lin.op = H
                lop = lin.linear_operator()
            else:
                lin = _TorchHVP(torch, model, X, yt)
                lop = lin.linear_operator()
            lin.count = 0
            vals = eigsh(lop, k=K, which="LA", tol=TOL, v0=np.random.default_rng(0).standard_normal(lop.shape[0]),
                         return_eigenvectors=False)
            count[0] = lin.count
            return vals
    vals = timed(benchmark, f, n_rounds=3, peer=peer.split("-")[0], variant=E3_PEERS[peer],
                 config=dict(d=D, L=DEPTH, n=N_MEAS, width=WIDTH, k=K, budget=E3_BUDGET))
    norm = np.abs(exact).max()
    err = float(np.max(np.abs(np.sort(vals) - exact[-K:]))) / norm
    benchmark.extra_info.update(matvecs=count[0], rel_error=err)
    if peer.startswith("implicitbias"):
        assert err <= ERR_TOL, f"{peer}: top-{K} error {err:.2e} relative to ||H||"


def _smoothed(grid, eigs, sigma):
    """The exact spectrum's density (1/dim) sum_j N(grid; lambda_j, sigma^2), integrating to 1."""
    g = np.asarray(grid, dtype=np.float64)
    out = np.zeros_like(g)
    for chunk in np.array_split(eigs, max(1, eigs.size // 200)):
        out += np.exp(-0.5 * ((g[:, None] - chunk[None, :]) / sigma) ** 2).sum(axis=1)
    return out / (eigs.size * sigma * np.sqrt(2 * np.pi))


def _l1(grid, density, truth):
    """The L1 distance of two densities on a uniform grid (trapezoid rule)."""
    return float(np.trapezoid(np.abs(np.asarray(density) - truth), np.asarray(grid)))


@pytest.mark.benchmark(group="E4 spectral density (SLQ), torch-based peers")
@pytest.mark.parametrize("peer", list(E4_PEERS))
def test_e4_density_torch_peers(benchmark, spectrum_model, torch64, peer, ib, monkeypatch):
    """Accuracy: the L1 distance between the peer's density and the exact spectrum smoothed by the same
    Gaussian kernel, on the peer's own grid (each package picks its width; PyHessian returns nodes and
    weights only: they are smoothed here with implicitbias's width)."""
    torch = torch64
    A, y, layers, exact = spectrum_model
    model, X, yt = _torch_model(torch, A, y, layers)
    probes, steps = 10, 50
    count = [0]
    if peer.startswith("implicitbias"):
        import implicitbias.torch as ibt

        def f():
            op = (ib.hessian.operator(layers, A, y) if peer.endswith("cpp")
                  else ibt.hessian_operator(model, torch.nn.functional.mse_loss, X, yt))
            sd = ib.hessian.density(op, num_probes=probes, steps=steps, seed=0)
            count[0] = sd.num_matvecs
            return sd.grid, sd.density, sd.width
    elif peer == "pyhessian":
        ph, count = _pyhessian_counting(monkeypatch)
        # PyHessian 0.1 calls torch.eig on the tridiagonal (removed in torch 2: it raises); the shim returns
        # what torch.eig did for a symmetric matrix (real parts, zero imaginary parts; eigenvectors as columns)
        monkeypatch.setattr(torch, "eig", lambda T, eigenvectors=True: (
            torch.stack([torch.linalg.eigh(T)[0], torch.zeros(T.shape[0])], dim=1), torch.linalg.eigh(T)[1]),
            raising=False)
        width = ib.hessian.density(ib.hessian.operator(layers, A, y), num_probes=probes, steps=steps, seed=0).width

        def f():
            count[0] = 0
            torch.manual_seed(0)
            nodes, weights = ph.hessian(model, torch.nn.functional.mse_loss, data=(X, yt), cuda=False).density(
                iter=steps, n_v=probes)
            nodes, weights = np.concatenate(nodes), np.concatenate(weights) / probes
            grid = np.linspace(nodes.min() - 5 * width, nodes.max() + 5 * width, 200)
            dens = (weights[None, :] * np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / width) ** 2)).sum(axis=1)
            return grid, dens / (width * np.sqrt(2 * np.pi)), width
    elif peer == "eigenthings":
        def f():
            he, op, c = _eigenthings_operator(torch, model, X, yt)
            r = he.spectral_density(op, num_runs=probes, lanczos_steps=steps, seed=0, num_grid_points=200)
            count[0] = c[0]
            return r.grid.numpy(), r.density.numpy(), float(r.sigma)
    else:
        from curvlinops import HessianLinearOperator, lanczos_approximate_spectrum

        lo, hi = float(exact[0]), float(exact[-1])

        def f():
            H = HessianLinearOperator(model, torch.nn.MSELoss(), list(model.parameters()), [(X, yt)])
            inner = H._matmat
            c = [0]

            def mm(M):  # a list of tensors [*N_i, K]
                c[0] += int(M[0].shape[-1])
                return inner(M)
            H._matmat = mm
            torch.manual_seed(0)
            grid, dens = lanczos_approximate_spectrum(H, steps, num_points=200, num_repeats=probes, boundaries=(lo, hi))
            count[0] = c[0]
            d = (hi - lo) * 1.1 / 2  # curvlinops' kernel: sigma = 2 / (ncv - 1) / sqrt(8 ln 3) on [-1, 1]
            return grid.numpy(), dens.numpy(), 2 / (steps - 1) / np.sqrt(8 * np.log(3.0)) * d
    grid, dens, width = timed(benchmark, f, n_rounds=3, peer=peer.split("-")[0], variant=E4_PEERS[peer],
                              config=dict(d=D, L=DEPTH, n=N_MEAS, width=WIDTH, probes=probes, steps=steps))
    err = _l1(grid, dens, _smoothed(grid, exact, width))
    benchmark.extra_info.update(matvecs=count[0], l1_error=err, kernel_width=float(width))
    if peer.startswith("implicitbias"):
        assert err < 0.2, f"{peer}: L1 error {err:.3f} of the density"
