"""implicitbias.torch: the Hessian operator of a torch model against torch.autograd's dense Hessian, and the
deep-linear-regression data operator (loss, gradient, HVP, trace) against torch autograd.

Every test but the first needs PyTorch and is skipped without it (``pytest.importorskip``): the CI venv has
no torch; they run where torch is installed (e.g. the benchmark venv).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import implicitbias as ib
from implicitbias import torch as ibt


def test_without_torch_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'implicitbias\[torch\]'"):
        ibt.hessian_operator(object(), lambda o, t: o, np.zeros(2))


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _mlp(torch, dtype):
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    X = torch.randn(9, 3, generator=g, dtype=dtype)
    Y = torch.randn(9, 2, generator=g, dtype=dtype)
    return model, X, Y


def _dense_torch(torch, model, loss_fn, X, Y):
    """torch.autograd.functional.hessian of the loss in the flat parameters (named_parameters order)."""
    named = list(model.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for _, p in named])

    def f(z):
        params, i = {}, 0
        for n, p in named:
            params[n] = z[i:i + p.numel()].reshape(p.shape)
            i += p.numel()
        return loss_fn(torch.func.functional_call(model, params, (X,)), Y)

    return torch.autograd.functional.hessian(f, flat).detach().numpy().astype(np.float64)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_mlp_hessian_matches_torch_autograd(torch, loss):
    model, X, Y = _mlp(torch, torch.float64)
    if loss == "mse":
        loss_fn = torch.nn.MSELoss()
    else:
        Y = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1])
        loss_fn = torch.nn.functional.cross_entropy
    H = ibt.hessian_operator(model, loss_fn, X, Y)
    truth = _dense_torch(torch, model, loss_fn, X, Y)
    assert H.dim == sum(p.numel() for p in model.parameters()) == truth.shape[0] == 32
    scale = np.abs(truth).max()
    assert np.abs(H.dense() - truth).max() <= 1e-13 * scale
    exact = np.linalg.eigh(truth)
    top = ib.hessian.eigenvalues(H, k=3, which="both", return_vectors=True)
    np.testing.assert_allclose(top.values, exact.eigenvalues[[0, -2, -1]], rtol=0, atol=1e-10 * scale)
    assert np.all(np.abs(top.values - exact.eigenvalues[[0, -2, -1]]) <= top.residuals + 1e-13 * scale)
    # Hutch++ is exact when the rank is at most a third of the budget; here the budget covers the full space
    tr = ib.hessian.hutchpp(H, num_matvecs=3 * H.dim)
    assert abs(tr.estimate - np.trace(truth)) <= 1e-10 * scale * H.dim
    sd = ib.hessian.density(H, num_probes=8, steps=6, seed=1)
    mean, se = sd.moments([1, 2])
    moments = np.array([np.mean(exact.eigenvalues), np.mean(exact.eigenvalues ** 2)])
    assert np.all(np.abs(mean - moments) <= 3 * se)


def test_blocks_vectorized_and_looped_agree_and_float32_runs(torch):
    model, X, Y = _mlp(torch, torch.float64)
    V = np.random.default_rng(0).standard_normal((32, 4))
    a = ibt.hessian_operator(model, torch.nn.MSELoss(), X, Y) @ V
    b = ibt.hessian_operator(model, torch.nn.MSELoss(), (X,), Y, vectorize=False) @ V
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * np.abs(a).max())
    m32, X32, Y32 = _mlp(torch, torch.float32)
    H32 = ibt.hessian_operator(m32, torch.nn.MSELoss(), X32, Y32)
    truth = _dense_torch(torch, m32.double(), torch.nn.MSELoss(), X32.double(), Y32.double())
    top = ib.hessian.eigenvalues(H32, k=1, tol=1e-5, symmetry_tol=1e-4)
    assert abs(top.values[-1] - np.linalg.eigvalsh(truth)[-1]) <= 1e-4 * np.abs(truth).max()


def test_bad_arguments_are_named(torch):
    model, X, Y = _mlp(torch, torch.float64)
    with pytest.raises(ValueError, match="model"):
        ibt.hessian_operator(lambda x: x, torch.nn.MSELoss(), X, Y)
    with pytest.raises(ValueError, match="loss_fn"):
        ibt.hessian_operator(model, 3.0, X, Y)
    with pytest.raises(ValueError, match="inputs"):
        ibt.hessian_operator(model, torch.nn.MSELoss(), np.zeros((9, 3)), Y)
    frozen, _, _ = _mlp(torch, torch.float64)
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        ibt.hessian_operator(frozen, torch.nn.MSELoss(), X, Y)
    with pytest.raises(ValueError, match="scalar"):
        ibt.hessian_operator(model, lambda o, t: o, X, Y) @ np.ones(32)


class _DeepLinear:
    """The deep linear network of implicitbias.factorization in torch: bias-free layers, the package's loss."""

    def __init__(self, torch, layers):
        self.torch = torch
        self.model = torch.nn.Sequential(*[torch.nn.Linear(W.shape[1], W.shape[0], bias=False).double()
                                           for W in layers])
        with torch.no_grad():
            for lin, W in zip(self.model, layers):
                lin.weight.copy_(torch.from_numpy(W))
        self.dims = [layers[0].shape[1]] + [W.shape[0] for W in layers]

    def loss_fn(self, out, Y):  # (1/n) ||E X^T - Y^T||_F^2
        return ((out - Y) ** 2).sum() / out.shape[0]

    def to_package(self):
        """The permutation p with package_vector = torch_vector[p] (package: vec(W_j) column-major, stacked;
        torch: each weight row-major)."""
        perm, off = [], 0
        for j in range(1, len(self.dims)):
            r, c = self.dims[j], self.dims[j - 1]
            perm.append(off + np.arange(r * c).reshape(r, c).T.reshape(-1))
            off += r * c
        return np.concatenate(perm)


def test_regression_operator_matches_torch_autograd(torch):
    d = ib.data.whitened_regression(n=12, d_in=4, d_out=3, seed=2)
    layers = ib.factorization.initial_layers((3, 4), 3, 5, 1.0, "gaussian", seed=3)
    net = _DeepLinear(torch, layers)
    X, Y = torch.from_numpy(d.X), torch.from_numpy(d.Y)
    out = net.model(X)
    loss = net.loss_fn(out, Y)
    grads = torch.autograd.grad(loss, list(net.model.parameters()))
    assert abs(ib.factorization.loss(layers, d.X, d.Y) - loss.item()) <= 1e-13 * loss.item()
    for g_ib, g_t in zip(ib.factorization.gradient(layers, d.X, d.Y), grads):
        np.testing.assert_allclose(g_ib, g_t.numpy(), rtol=0, atol=1e-12 * max(1.0, np.abs(g_t.numpy()).max()))
    H_torch = ibt.hessian_operator(net.model, net.loss_fn, X, Y).dense()
    p = net.to_package()
    H_pkg_order = H_torch[np.ix_(p, p)]
    op = ib.factorization.regression_operator(d.X, d.Y)
    V = np.random.default_rng(1).standard_normal((H_torch.shape[0], 3))
    scale = np.abs(H_torch).max()
    np.testing.assert_allclose(ib.hessian.hvp(layers, op, None, V), H_pkg_order @ V, rtol=0,
                               atol=1e-12 * scale * np.abs(V).max())
    np.testing.assert_allclose(ib.hessian.dense(layers, d.X, d.Y), H_pkg_order, rtol=0, atol=1e-12 * scale)
    assert abs(ib.hessian.trace(layers, op) - np.trace(H_torch)) <= 1e-12 * abs(np.trace(H_torch))
    # the same operator's spectrum through either bridge
    ev_t = ib.hessian.eigenvalues(ibt.hessian_operator(net.model, net.loss_fn, X, Y), k=4).values
    ev_ib = ib.hessian.eigenvalues(layers, d.X, d.Y, k=4).values
    np.testing.assert_allclose(ev_t, ev_ib, rtol=0, atol=1e-10 * scale)
