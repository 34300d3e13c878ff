"""A PyTorch bridge (optional extra ``implicitbias[torch]``): the Hessian of a ``torch.nn.Module``'s loss.

:func:`hessian_operator` builds, for a model, a loss and one batch, the
operator ``v -> H v`` of the Hessian of ``loss_fn(model(*inputs), targets)``
with respect to the model's trainable parameters (flattened in the order of
``model.named_parameters()``), as a :class:`implicitbias.hessian.HessianOperator`:
:func:`implicitbias.hessian.eigenvalues`, :func:`~implicitbias.hessian.density`
and the trace estimators (:func:`~implicitbias.hessian.hutchinson`,
:func:`~implicitbias.hessian.hutchpp`, :func:`~implicitbias.hessian.xtrace`)
run on it as on the package's own models (docs/torch.md).

The products are exact (to the model's floating-point precision): reverse-over-reverse
automatic differentiation with :mod:`torch.func` (the ``vjp`` of ``grad`` at
the batch, its graph built once when the operator is made; each product is
one backward pass through it, about the cost of a gradient; ``H v = (v^T H)^T``
since ``H`` is symmetric), vectorized over the columns of a block with
``torch.func.vmap`` (a loop over the columns when the model does not support
``vmap``). Vectors cross from NumPy (float64) to the parameters' dtype and
back: a float32 model gives float32-rounded products, whose asymmetry (about
1e-7 relative) may need ``symmetry_tol=1e-4`` in ``eigenvalues`` / ``density``.

PyTorch is imported when :func:`hessian_operator` is called (``import
implicitbias.torch`` does not import it); without it the call raises an
ImportError saying how to install it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import hessian
from ._native import core

MISSING = "implicitbias.torch needs PyTorch: pip install 'implicitbias[torch]' (or a torch build of your choice)"

__all__ = ["hessian_operator"]


def _import_torch() -> Any:
    try:
        import torch
        import torch.func  # torch >= 2.0
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return torch


def hessian_operator(model: Any, loss_fn: Callable[[Any, Any], Any], inputs: Any, targets: Any = None, *,
                     vectorize: bool = True) -> hessian.HessianOperator:
    """The Hessian of a PyTorch model's loss on one batch as a :class:`~implicitbias.hessian.HessianOperator`.

    Parameters
    ----------
    model : torch.nn.Module
        Its parameters with ``requires_grad=True`` are the variables, stacked
        (each flattened, row-major) in the order of ``model.named_parameters()``;
        the operator's size ``dim`` is their total number of entries. Buffers
        (e.g. batch-norm statistics) are held fixed at their current values.
    loss_fn : callable ``loss_fn(outputs, targets) -> scalar tensor``
        E.g. ``torch.nn.MSELoss()`` or ``torch.nn.functional.cross_entropy``.
    inputs : tensor or tuple of tensors
        The batch: ``outputs = model(*inputs)`` (a single tensor is ``(inputs,)``).
    targets : anything ``loss_fn`` takes (default None).
    vectorize : bool
        Compute the products of a block of vectors with ``torch.func.vmap``
        (default); with False, or when ``vmap`` fails for this model, one
        product per column.

    Returns
    -------
    HessianOperator
        ``H @ v`` for a vector of ``dim`` entries or a ``(dim, k)`` block
        (float64 NumPy in and out), ``kind == "callable"``; ``H.dense()`` forms
        the matrix from ``dim`` products (small models).
    """
    torch = _import_torch()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model)}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable as loss_fn(outputs, targets), got {type(loss_fn)}")
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise ValueError("inputs must be a tensor or a non-empty tuple of tensors (the model's arguments)")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no parameters with requires_grad=True")
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    dtype, device = named[0][1].dtype, named[0][1].device
    if any(p.dtype != dtype for _, p in named) or not dtype.is_floating_point:
        raise ValueError(f"model's parameters must share one floating-point dtype, got {[p.dtype for _, p in named]}")
    primal = tuple(p.detach() for _, p in named)
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    dim = int(sum(sizes))

    def loss(*params: Any) -> Any:
        out = torch.func.functional_call(model, ({**dict(zip(names, params)), **buffers}), args)
        value = loss_fn(out, targets)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ValueError("loss_fn must return a scalar tensor")
        return value.reshape(())

    grad = torch.func.grad(loss, argnums=tuple(range(len(primal))))
    _, pullback = torch.func.vjp(grad, *primal)  # the gradient's graph, built once: H v = (v^T H)^T (H symmetric)

    def product(vec: Any) -> Any:  # one flat tensor -> one flat tensor
        cotangent = tuple(t.reshape(s) for t, s in zip(torch.split(vec, sizes), shapes))
        return torch.cat([h.reshape(-1) for h in pullback(cotangent)])

    batched = torch.func.vmap(product, in_dims=1, out_dims=1)
    state = {"vectorize": bool(vectorize)}

    def apply(V: np.ndarray) -> np.ndarray:
        X = torch.as_tensor(np.ascontiguousarray(V), dtype=dtype, device=device)
        if state["vectorize"] and X.shape[1] > 1:
            try:
                HX = batched(X)
            except Exception:  # a module vmap cannot batch: one product per column from now on
                state["vectorize"] = False
                HX = torch.stack([product(X[:, j]) for j in range(X.shape[1])], dim=1)
        else:
            HX = torch.stack([product(X[:, j]) for j in range(X.shape[1])], dim=1)
        return np.asarray(HX.detach().cpu().double().numpy(), dtype=np.float64)

    return hessian.HessianOperator(core.callable_operator(apply, dim, True))
