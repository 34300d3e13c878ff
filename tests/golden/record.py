"""Record the outputs of a fixed set of small runs, one file per core variant.

Run once per ISA variant (``IMPLICITBIAS_ISA=baseline|x86-64-v3|x86-64-v4``)
to (re)create ``tests/golden/outputs_<isa>.npz``; ``tests/test_golden.py``
replays the same cases and compares. The cases cover every family, method,
solver, weight normalization, norm, optimizer, schedule and loss at small
sizes. Wall times are not recorded.

The cases are written against the public API only (``fit_many`` with one
list entry per run), so the same script replays them before and after a
redesign of the internals.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import numpy as np

import implicitbias as ib
from implicitbias import data, diagonal, factorization, hessian, reference, steepest


def _flatten(prefix: str, value: Any, out: dict[str, np.ndarray]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "wall_time":
                continue
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
        for i, v in enumerate(value):
            _flatten(f"{prefix}.{i}", v, out)
    elif isinstance(value, str):
        out[prefix] = np.array(value)
    else:
        out[prefix] = np.asarray(value, dtype=np.float64)


def _diag_fields(r: Any) -> dict[str, Any]:
    return {"x": r.x, "u": r.u, "v": r.v, "w": r.direction, "rho": r.radius, "status": r.status, "loss": r.loss,
            "t_final": r.t_final, "n_steps": r.n_steps, "n_rejected": r.n_rejected,
            "n_grad_evals": r.n_grad_evals, "history": r.history}


def _steep_fields(r: Any) -> dict[str, Any]:
    return {"theta": r.theta, "status": r.status, "log_loss": r.log_loss, "n_steps": r.n_steps,
            "n_grad_evals": r.n_grad_evals, "t_final": r.t_final, "history": r.history}


def _fact_fields(r: Any) -> dict[str, Any]:
    return {"layers": r.layers, "status": r.status, "loss": r.loss, "trace": r.trace,
            "nuclear_norm": r.nuclear_norm, "n_steps": r.n_steps, "n_grad_evals": r.n_grad_evals,
            "t_final": r.t_final, "history": r.history}


def diagonal_cases() -> dict[str, Callable[[], list[Any]]]:
    p = data.sparse_regression(12, 24, 2, seed=3)
    pn = data.sparse_regression(12, 24, 2, seed=4, nonnegative=True)
    cases: dict[str, Callable[[], list[Any]]] = {}
    for wn in (None, "joint", "separate"):
        for depth in (2, 3):
            for solver in ("rosw", "dopri5"):
                cases[f"diag.flow.{solver}.{wn}.L{depth}"] = lambda wn=wn, depth=depth, solver=solver: (
                    diagonal.fit_many(
                    p.A, p.y, depth=depth, init_scale=[0.1, 0.05], weight_norm=wn, lr_ratio=[1.0, 10.0],
                    method="flow", solver=solver, x_star=p.x_star, t_max=1e3, n_record=10, rtol=1e-7))
            for kernel in ("lanes", "generic"):
                cases[f"diag.gd.{kernel}.{wn}.L{depth}"] = lambda wn=wn, depth=depth, kernel=kernel: diagonal.fit_many(
                    p.A, p.y, depth=depth, init_scale=[0.1, 0.2, 0.05], weight_norm=wn, lr_ratio=2.0,
                    method="descent", lr=[0.05, 0.02, 0.1], steps=300, x_star=p.x_star, n_record=15, gd_kernel=kernel)
    for wn in (None, "joint"):
        cases[f"diag.flow.nonneg.{wn}"] = lambda wn=wn: diagonal.fit_many(
            pn.A, pn.y, depth=[2, 3], init_scale=0.1, weight_norm=wn, nonnegative=True, method="flow",
            solver="rosw", t_max=1e3, n_record=20)
        cases[f"diag.gd.nonneg.{wn}"] = lambda wn=wn: diagonal.fit_many(
            pn.A, pn.y, depth=[2, 3], init_scale=0.1, weight_norm=wn, nonnegative=True, method="descent", lr=0.05,
            steps=200, n_record=10)
    vec_init = np.linspace(0.02, 0.2, 24)
    cases["diag.flow.vector_init"] = lambda: diagonal.fit_many(p.A, p.y, init_scale=[vec_init], t_max=1e3,
                                                               n_record=10, solver="rosw")
    # the dual-coordinate flow (the default for plain flows) and Rodas5 on the weight-normalized flow; depth 2
    # only, because numpy's u**L for L > 2 (which forms x) differs in the last bit between CPUs (AVX2/AVX-512)
    for nonneg, prob in ((False, p), (True, pn)):
        cases[f"diag.flow.dual.nonneg{int(nonneg)}"] = lambda nonneg=nonneg, prob=prob: diagonal.fit_many(
            prob.A, prob.y, depth=2, init_scale=[0.1, vec_init, 1e-3], nonnegative=nonneg, method="flow",
            solver="dual", x_star=prob.x_star, t_max=1e3, n_record=10, rtol=1e-7)
    cases["diag.flow.rodas5.joint"] = lambda: diagonal.fit_many(
        p.A, p.y, depth=2, init_scale=0.1, weight_norm="joint", lr_ratio=[1.0, 10.0], method="flow",
        solver="rodas5", x_star=p.x_star, t_max=1e3, n_record=10, rtol=1e-7)
    cases["diag.gd.diverge"] = lambda: diagonal.fit_many(p.A, p.y, method="descent", lr=[50.0, 0.05], steps=100,
                                                         init_scale=1.0)
    cases["diag.two_problems"] = lambda: diagonal.fit_many([p.A, pn.A], [p.y, pn.y], method="descent", lr=0.05,
                                                           steps=100)
    return cases


def steepest_cases() -> dict[str, Callable[[], list[Any]]]:
    d = data.separable(10, 6, seed=2)
    cases: dict[str, Callable[[], list[Any]]] = {}
    norms: list[Any] = ["l2", "linf", "l1", 3.0, "spectral"]
    for model, kw in (("linear", {}), ("diagonal", {}), ("relu2", {"width": 5}), ("mlp", {"width": 4, "depth": 3})):
        for normalized in (True, False):
            cases[f"steep.{model}.norms.norm{int(normalized)}"] = lambda model=model, kw=kw, normalized=normalized: (
                steepest.fit_many(d.X, d.y, model=model, norm=norms, normalized=normalized, lr=0.05, steps=120,
                                  n_record=12, **kw))
        cases[f"steep.{model}.adam_signum"] = lambda model=model, kw=kw: steepest.fit_many(
            d.X, d.y, model=model, optimizer=["adam", "adam", "signum"], eps=[1e-8, 0.0, 1e-8], lr=0.01,
            steps=120, n_record=12, **kw)
        cases[f"steep.{model}.schedules"] = lambda model=model, kw=kw: steepest.fit_many(
            d.X, d.y, model=model, schedule=["constant", "power", "loss"], normalized=False, lr=0.05,
            loss=["exp", "logistic", "exp"], steps=120, n_record=12, **kw)
        # ReLU networks are not smooth, so their flows take many small steps: keep them short
        t_max = 1.0 if model in ("linear", "diagonal") else 0.05
        cases[f"steep.{model}.flow"] = lambda model=model, kw=kw, t_max=t_max: steepest.fit_many(
            d.X, d.y, model=model, norm=["l2", 3.0, "l2"], method="flow", normalized=[True, True, False],
            t_max=t_max, max_steps=20_000, n_record=12, rtol=1e-6, **kw)
    cases["steep.linear.target"] = lambda: steepest.fit_many(d.X, d.y, lr=0.5, steps=5000, target_log_loss=-5.0,
                                                             record_every=50)
    return cases


def factorization_cases() -> dict[str, Callable[[], list[Any]]]:
    ms = data.matrix_sensing((4, 5), rank=1, n_measurements=14, seed=1)
    mc = data.matrix_sensing((5, 5), rank=1, n_measurements=15, kind="completion", seed=1)
    cases: dict[str, Callable[[], list[Any]]] = {}
    methods = ["descent", "trace_penalty", "label_noise_sgd", "sam"]
    for name, prob in (("sensing", ms), ("completion", mc)):
        for depth in (1, 2, 3):
            cases[f"fact.{name}.L{depth}"] = lambda prob=prob, depth=depth: factorization.fit_many(
                prob.A, prob.y, shape=prob.shape, depth=depth, method=methods, lr=0.02, trace_weight=0.01,
                label_noise_std=0.1, sam_radius=0.05, steps=150, M_star=prob.M_star, n_record=10,
                seed=[0, 1, 2, 3])
        cases[f"fact.{name}.flow"] = lambda prob=prob: factorization.fit_many(
            prob.A, prob.y, shape=prob.shape, depth=[2, 3], method="flow", t_max=50.0, n_record=10,
            init="balanced")
    return cases


def other_cases() -> dict[str, Callable[[], Any]]:
    p = data.sparse_regression(12, 24, 2, seed=3)
    d = data.separable(10, 6, seed=2)
    ms = data.matrix_sensing((4, 5), rank=1, n_measurements=14, seed=1)
    layers = factorization.initial_layers((4, 5), 3, 4, 0.5, seed=5)
    g = np.random.default_rng(0).standard_normal(2 * 6)
    return {
        "ref.basis_pursuit": lambda: reference.basis_pursuit(p.A, p.y),
        "ref.flow_limit.L2": lambda: reference.diagonal_flow_limit(p.A, p.y, init_scale=0.1, depth=2),
        "ref.flow_limit.L3": lambda: reference.diagonal_flow_limit(p.A, p.y, init_scale=0.1, depth=3),
        "ref.max_margin.l2": lambda: reference.max_margin(d.X, d.y, "l2").w,
        "ref.max_margin.linf": lambda: reference.max_margin(d.X, d.y, "linf").w,
        "ref.diag_max_margin.l1": lambda: reference.diagonal_max_margin(d.X, d.y, "l1").beta,
        "hess.trace": lambda: hessian.trace(layers, ms.A, ms.y),
        "hess.trace_gradient": lambda: hessian.trace_gradient(layers, ms.A, ms.y)[1],
        "hess.hvp": lambda: hessian.hvp(layers, ms.A, ms.y, np.ones(4 * 5 + 4 * 4 + 4 * 4)),
        "hess.hutchinson": lambda: hessian.hutchinson(layers, ms.A, ms.y, num_matvecs=12)[0],
        "hess.hutchpp": lambda: hessian.hutchpp(layers, ms.A, ms.y, num_matvecs=12)[0],
        "hess.xtrace": lambda: hessian.xtrace(layers, ms.A, ms.y, num_matvecs=12)[0],
        "steep.direction": lambda: [steepest.direction(g, n)[0] for n in ("l2", "linf", "l1", 3.0)],
        "fact.gradient": lambda: factorization.gradient(layers, ms.A, ms.y),
    }


FIELDS = {"diag": _diag_fields, "steep": _steep_fields, "fact": _fact_fields}


def run_all() -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for cases in (diagonal_cases(), steepest_cases(), factorization_cases()):
        for name, fn in cases.items():
            fields = FIELDS[name.split(".")[0]]
            for k, r in enumerate(fn()):
                _flatten(f"{name}/{k}", fields(r), out)
    for name, fn in other_cases().items():
        _flatten(name, fn(), out)
    return out


def numpy_simd_level() -> str:
    """The SIMD level of NumPy's float64 transcendental loops (exp, log, power) on this CPU.

    NumPy dispatches these ufuncs at run time (AVX-512 with SVML, AVX2 + FMA3,
    or the C library), and the levels differ in the last bits of some results.
    The recorded cases build their inputs with them (``init_scale ** (1 / depth)``,
    the reference solvers), so bitwise agreement is only expected between
    machines of the same level; the level is stored with the outputs.
    """
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    for level in ("AVX512_SKX", "AVX512F"):
        if features.get(level):
            return level
    return "AVX2" if features.get("AVX2") and features.get("FMA3") else "baseline"


def path_for(isa: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), f"outputs_{isa}.npz")


if __name__ == "__main__":
    isa = ib.build_info()["isa"]
    outputs = run_all()
    outputs["_env.numpy_simd"] = np.array(numpy_simd_level())
    np.savez_compressed(path_for(isa), **outputs)
    print(f"{len(outputs)} arrays for core {isa} -> {path_for(isa)}", file=sys.stderr)
