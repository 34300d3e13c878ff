"""Record the outputs of a fixed set of small runs, one file per core variant.

``python tests/golden/record.py`` (with ``IMPLICITBIAS_ISA=baseline|x86-64-v3|x86-64-v4`` to force the
variant) runs the cases with the core in use and writes ``tests/golden/outputs_<isa>.npz`` with the
build identity of that core; ``tests/test_golden.py`` replays the same cases and compares under the
rule of docs/numerics.md ("Golden replays: when numbers must be bitwise"). The cases cover every family,
method, solver (the default ``solver=None`` included), weight normalization, norm, optimizer, schedule
and loss at small sizes. Wall times are not recorded.

The cases' inputs (problems, initial layers, probe vectors) are generated once and stored in
``tests/golden/inputs.npz`` (``--inputs`` regenerates them, which invalidates every recording): the
generators use BLAS (``y = A @ x_star``), LAPACK (QR for balanced layers) and NumPy's SIMD-dispatched
transcendentals, whose last bits differ between machines, so the replay feeds the stored arrays instead.
The reference solvers (SciPy/HiGHS, ``ref.*``) are not core outputs and are not replayed.

The cases are written against the public API only (``fit``/``fit_many``), so the same script replays
them before and after a redesign of the internals. ``run_all()`` returns the flat dict of outputs that
``tools/portable_check.sh`` compares between two cores.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any, Callable

import numpy as np

import implicitbias as ib
from implicitbias import data, diagonal, factorization, hessian, steepest

HERE = os.path.dirname(os.path.abspath(__file__))
INPUTS = os.path.join(HERE, "inputs.npz")


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


# --------------------------------------------------------------------------- inputs
def make_inputs() -> dict[str, np.ndarray]:
    """Every array the cases feed to the package, generated with the package's own generators."""
    out: dict[str, np.ndarray] = {}
    for name, prob in (("p", data.sparse_regression(12, 24, 2, seed=3)),
                       ("pn", data.sparse_regression(12, 24, 2, seed=4, nonnegative=True))):
        out.update({f"{name}.A": prob.A, f"{name}.y": prob.y, f"{name}.x_star": prob.x_star})
    d = data.separable(10, 6, seed=2)
    out.update({"d.X": d.X, "d.y": d.y})
    for name, prob in (("ms", data.matrix_sensing((4, 5), rank=1, n_measurements=14, seed=1)),
                       ("mc", data.matrix_sensing((5, 5), rank=1, n_measurements=15, kind="completion", seed=1))):
        out.update({f"{name}.A": prob.A, f"{name}.y": prob.y, f"{name}.M_star": prob.M_star})
        for depth in (2, 3):  # the balanced initial layers of the flow cases (QR and products: LAPACK/BLAS)
            shape = prob.M_star.shape
            for j, W in enumerate(factorization.initial_layers(shape, depth, max(shape), 0.1, init="balanced")):
                out[f"{name}.balanced.L{depth}.{j}"] = W
    for j, W in enumerate(factorization.initial_layers((4, 5), 3, 4, 0.5, seed=5)):
        out[f"layers.{j}"] = W
    out["vec_init"] = np.linspace(0.02, 0.2, 24)
    out["g"] = np.random.default_rng(0).standard_normal(2 * 6)
    return out


def load_inputs(path: str = INPUTS) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _layers(inp: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [inp[f"{prefix}.{j}"] for j in range(sum(k.startswith(prefix + ".") for k in inp))]


# --------------------------------------------------------------------------- cases
def diagonal_cases(inp: dict[str, np.ndarray]) -> dict[str, Callable[[], list[Any]]]:
    A, y, x_star = inp["p.A"], inp["p.y"], inp["p.x_star"]
    An, yn, xn = inp["pn.A"], inp["pn.y"], inp["pn.x_star"]
    vec_init = inp["vec_init"]
    cases: dict[str, Callable[[], list[Any]]] = {}
    for wn in (None, "joint", "separate"):
        for depth in (2, 3):
            for solver in ("rosw", "dopri5"):
                cases[f"diag.flow.{solver}.{wn}.L{depth}"] = lambda wn=wn, depth=depth, solver=solver: (
                    diagonal.fit_many(
                    A, y, depth=depth, init_scale=[0.1, 0.05], weight_norm=wn, lr_ratio=[1.0, 10.0],
                    method="flow", solver=solver, x_star=x_star, t_max=1e3, n_record=10, rtol=1e-7))
            for kernel in ("lanes", "generic"):
                cases[f"diag.gd.{kernel}.{wn}.L{depth}"] = lambda wn=wn, depth=depth, kernel=kernel: diagonal.fit_many(
                    A, y, depth=depth, init_scale=[0.1, 0.2, 0.05], weight_norm=wn, lr_ratio=2.0,
                    method="descent", lr=[0.05, 0.02, 0.1], steps=300, x_star=x_star, n_record=15, gd_kernel=kernel)
    for wn in (None, "joint"):
        cases[f"diag.flow.nonneg.{wn}"] = lambda wn=wn: diagonal.fit_many(
            An, yn, depth=[2, 3], init_scale=0.1, weight_norm=wn, nonnegative=True, method="flow",
            solver="rosw", t_max=1e3, n_record=20)
        cases[f"diag.gd.nonneg.{wn}"] = lambda wn=wn: diagonal.fit_many(
            An, yn, depth=[2, 3], init_scale=0.1, weight_norm=wn, nonnegative=True, method="descent", lr=0.05,
            steps=200, n_record=10)
    cases["diag.flow.vector_init"] = lambda: diagonal.fit_many(A, y, init_scale=[vec_init], t_max=1e3,
                                                               n_record=10, solver="rosw")
    # the dual-coordinate flow with Rodas5 (its exact Jacobian)
    for nonneg, (Ap, yp, xp) in ((False, (A, y, x_star)), (True, (An, yn, xn))):
        cases[f"diag.flow.dual.nonneg{int(nonneg)}"] = lambda nonneg=nonneg, Ap=Ap, yp=yp, xp=xp: diagonal.fit_many(
            Ap, yp, depth=2, init_scale=[0.1, vec_init, 1e-3], nonnegative=nonneg, method="flow",
            solver="rodas5", x_star=xp, t_max=1e3, n_record=10, rtol=1e-7)
        # bdf, the default of plain flows: signed and nonnegative, depths 2 and 3, a tiny, a moderate and a
        # vector init, to the default t_max (the tiny init's saddle-to-saddle plateaus take long at depth 3)
        for depth in (2, 3):
            cases[f"diag.flow.bdf.nonneg{int(nonneg)}.L{depth}"] = (
                lambda nonneg=nonneg, Ap=Ap, yp=yp, xp=xp, depth=depth: diagonal.fit_many(
                    Ap, yp, depth=depth, init_scale=[1e-6, 0.1, vec_init], nonnegative=nonneg, method="flow",
                    solver="bdf", x_star=xp, n_record=12))
    # bdf under weight normalization (log-polar coordinates), both radii layouts, two angular rates
    for wn in ("joint", "separate"):
        for depth in (2, 3):
            cases[f"diag.flow.bdf.{wn}.L{depth}"] = lambda wn=wn, depth=depth: diagonal.fit_many(
                A, y, depth=depth, init_scale=[0.1, 0.01], weight_norm=wn, lr_ratio=[1.0, 10.0], method="flow",
                solver="bdf", atol=1e-14, x_star=x_star, t_max=1e4, n_record=10)
    # the default path of fit(): solver=None (bdf: dual coordinates plain, log-polar under weight normalization), every
    # other argument at its default but the ground truth
    cases["diag.fit.default.plain"] = lambda: [diagonal.fit(A, y, x_star=x_star)]
    cases["diag.fit.default.nonneg"] = lambda: [diagonal.fit(An, yn, nonnegative=True, depth=3, x_star=xn)]
    cases["diag.fit.default.joint"] = lambda: [diagonal.fit(A, y, weight_norm="joint", x_star=x_star)]
    cases["diag.gd.diverge"] = lambda: diagonal.fit_many(A, y, method="descent", lr=[50.0, 0.05], steps=100,
                                                         init_scale=1.0)
    cases["diag.two_problems"] = lambda: diagonal.fit_many([A, An], [y, yn], method="descent", lr=0.05,
                                                           steps=100)
    return cases


def steepest_cases(inp: dict[str, np.ndarray]) -> dict[str, Callable[[], list[Any]]]:
    X, y = inp["d.X"], inp["d.y"]
    cases: dict[str, Callable[[], list[Any]]] = {}
    norms: list[Any] = ["l2", "linf", "l1", 3.0, "spectral"]
    for model, kw in (("linear", {}), ("diagonal", {}), ("relu2", {"width": 5}), ("mlp", {"width": 4, "depth": 3})):
        for normalized in (True, False):
            cases[f"steep.{model}.norms.norm{int(normalized)}"] = lambda model=model, kw=kw, normalized=normalized: (
                steepest.fit_many(X, y, model=model, norm=norms, normalized=normalized, lr=0.05, steps=120,
                                  n_record=12, **kw))
        cases[f"steep.{model}.adam_signum"] = lambda model=model, kw=kw: steepest.fit_many(
            X, y, model=model, optimizer=["adam", "adam", "signum"], eps=[1e-8, 0.0, 1e-8], lr=0.01,
            steps=120, n_record=12, **kw)
        cases[f"steep.{model}.schedules"] = lambda model=model, kw=kw: steepest.fit_many(
            X, y, model=model, schedule=["constant", "power", "loss"], normalized=False, lr=0.05,
            loss=["exp", "logistic", "exp"], steps=120, n_record=12, **kw)
        # ReLU networks are not smooth, so their flows take many small steps: keep them short
        t_max = 1.0 if model in ("linear", "diagonal") else 0.05
        cases[f"steep.{model}.flow"] = lambda model=model, kw=kw, t_max=t_max: steepest.fit_many(
            X, y, model=model, norm=["l2", 3.0, "l2"], method="flow", normalized=[True, True, False],
            t_max=t_max, max_steps=20_000, n_record=12, rtol=1e-6, **kw)
    cases["steep.linear.target"] = lambda: steepest.fit_many(X, y, lr=0.5, steps=5000, target_log_loss=-5.0,
                                                             record_every=50)
    return cases


def factorization_cases(inp: dict[str, np.ndarray]) -> dict[str, Callable[[], list[Any]]]:
    cases: dict[str, Callable[[], list[Any]]] = {}
    methods = ["descent", "trace_penalty", "label_noise_sgd", "sam"]
    for name, key, shape in (("sensing", "ms", (4, 5)), ("completion", "mc", (5, 5))):
        Ap, yp, Mp = inp[f"{key}.A"], inp[f"{key}.y"], inp[f"{key}.M_star"]
        for depth in (1, 2, 3):  # Gaussian layers drawn by the core from the seeds (Box-Muller normals)
            cases[f"fact.{name}.L{depth}"] = lambda Ap=Ap, yp=yp, Mp=Mp, shape=shape, depth=depth: (
                factorization.fit_many(
                Ap, yp, shape=shape, depth=depth, method=methods, lr=0.02, trace_weight=0.01,
                label_noise_std=0.1, sam_radius=0.05, steps=150, M_star=Mp, n_record=10, seed=[0, 1, 2, 3]))
        cases[f"fact.{name}.flow"] = lambda Ap=Ap, yp=yp, key=key, shape=shape: factorization.fit_many(
            Ap, yp, shape=shape, depth=[2, 3], method="flow", t_max=50.0, n_record=10,
            init_layers=[_layers(inp, f"{key}.balanced.L{d}") for d in (2, 3)])
    return cases


def other_cases(inp: dict[str, np.ndarray]) -> dict[str, Callable[[], Any]]:
    A, y = inp["ms.A"], inp["ms.y"]
    layers = _layers(inp, "layers")
    g = inp["g"]
    return {
        "hess.trace": lambda: hessian.trace(layers, A, y),
        "hess.trace_gradient": lambda: hessian.trace_gradient(layers, A, y)[1],
        "hess.hvp": lambda: hessian.hvp(layers, A, y, np.ones(4 * 5 + 4 * 4 + 4 * 4)),
        "hess.hutchinson": lambda: hessian.hutchinson(layers, A, y, num_matvecs=12)[0],
        "hess.hutchpp": lambda: hessian.hutchpp(layers, A, y, num_matvecs=12)[0],
        "hess.xtrace": lambda: hessian.xtrace(layers, A, y, num_matvecs=12)[0],
        "steep.direction": lambda: [steepest.direction(g, n)[0] for n in ("l2", "linf", "l1", 3.0)],
        "fact.gradient": lambda: factorization.gradient(layers, A, y),
    }


FIELDS = {"diag": _diag_fields, "steep": _steep_fields, "fact": _fact_fields}


def run_all(inputs: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every case's outputs, flattened to ``{"<case>/<run>.<field>[.<sub>]": array}``."""
    inp = load_inputs() if inputs is None else inputs
    out: dict[str, np.ndarray] = {}
    for cases in (diagonal_cases(inp), steepest_cases(inp), factorization_cases(inp)):
        for name, fn in cases.items():
            fields = FIELDS[name.split(".")[0]]
            for k, r in enumerate(fn()):
                _flatten(f"{name}/{k}", fields(r), out)
    for name, fn in other_cases(inp).items():
        _flatten(name, fn(), out)
    return out


# --------------------------------------------------------------------------- identity and storage
# The package's Python code still uses NumPy on outputs (``x = u**L`` is NumPy's power, the
# weight-normalized direction is divided by ``np.linalg.norm``, a BLAS dot product, the default record
# times come from ``np.logspace``), and the last bits of these depend on the SIMD path NumPy dispatches
# to (float64 power is SVML on AVX-512) and on the OpenBLAS kernel chosen for the CPU (measured here:
# OPENBLAS_CORETYPE=Prescott instead of Haswell changes 51 weight-normalized outputs). Recordings and
# replays therefore run with NumPy's run-time dispatch off (its baseline loops, the same on every
# x86-64 CPU it supports) and one OpenBLAS kernel set; the variables are read when NumPy is imported,
# so they must be in the environment of the process that runs the cases (``pinned_env``).
def pinned_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: ``os.environ``) with NumPy's SIMD dispatch and the OpenBLAS kernels pinned."""
    env = dict(os.environ if base is None else base)
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join(_numpy_dispatch_targets())
    env["OPENBLAS_NUM_THREADS"] = "1"
    if platform.machine().lower() in ("x86_64", "amd64"):
        env["OPENBLAS_CORETYPE"] = "Nehalem"  # SSE4.2: NumPy's own x86-64 baseline, so every CPU has it
    return env


def _numpy_dispatch_targets() -> list[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__ as targets
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_dispatch__ as targets
    return list(targets)


def numpy_dispatch() -> str:
    """The SIMD targets NumPy dispatches to in this process ("" when pinned to its baseline loops)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return ",".join(t for t in _numpy_dispatch_targets() if features.get(t))


# What decides the bits of a replay besides the stored inputs: the build of the core in use (variant,
# the SIMD sets Eigen was compiled for, compiler and version, Eigen version, and the compile flags once
# build_info() reports them) and the Python side's numerics (NumPy's dispatch and BLAS, pinned above).
# OpenMP is not part of it: results must not depend on it (tools/portable_check.sh compares an OpenMP
# and a no-OpenMP core bitwise). NumPy's version is stored for information only (its baseline loops
# call the C library's pow/exp, which do not change between NumPy releases).
CORE_IDENTITY = ("isa", "simd", "compiler", "eigen", "compile_flags")
INFO_ONLY = ("numpy", "machine")


def identity() -> dict[str, str]:
    """The build identity of the core in use and the Python side's numerics, as stored in a recording."""
    info = ib.build_info()
    out = {k: str(info[k]) for k in CORE_IDENTITY if k in info}
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    out["blas"] = f"{blas.get('name')} {blas.get('version')} coretype={os.environ.get('OPENBLAS_CORETYPE', 'auto')}"
    out["numpy_dispatch"] = numpy_dispatch() or "baseline"
    out["numpy"] = np.__version__
    out["machine"] = platform.machine()
    return out


def save(path: str, outputs: dict[str, np.ndarray], ident: dict[str, str]) -> None:
    """One compressed file with three members (a zip member per output would cost ~240 bytes each):
    ``values`` (every numeric output, raveled and concatenated), ``strings`` and ``meta`` (JSON: the
    identity and, per key in order, its kind and shape)."""
    index, values, strings = [], [], []
    for key in sorted(outputs):
        a = outputs[key]
        if a.dtype.kind == "U":
            index.append([key, "U", list(a.shape)])
            strings.append(str(a))
        else:
            index.append([key, "f", list(a.shape)])
            values.append(np.asarray(a, dtype=np.float64).ravel())
    meta = json.dumps({"identity": ident, "index": index})
    np.savez_compressed(path, values=np.concatenate(values), strings=np.array(strings), meta=np.array(meta))


def load(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The outputs and the identity stored by :func:`save`."""
    with np.load(path) as f:
        values, strings, meta = f["values"], list(f["strings"]), json.loads(str(f["meta"]))
    out: dict[str, np.ndarray] = {}
    pos = 0
    for key, kind, shape in meta["index"]:
        if kind == "U":
            out[key] = np.array(strings.pop(0))
        else:
            n = int(np.prod(shape, dtype=np.int64))
            out[key] = values[pos:pos + n].reshape(shape)
            pos += n
    assert pos == values.size and not strings, f"{path}: index and values disagree"
    return out, meta["identity"]


def path_for(isa: str) -> str:
    return os.path.join(HERE, f"outputs_{isa}.npz")


if __name__ == "__main__":
    if os.environ.get("NPY_DISABLE_CPU_FEATURES") != pinned_env()["NPY_DISABLE_CPU_FEATURES"]:
        os.execve(sys.executable, [sys.executable, *sys.argv], pinned_env())  # NumPy reads them at import
    if "--inputs" in sys.argv[1:]:
        np.savez_compressed(INPUTS, **make_inputs())
        print(f"inputs -> {INPUTS} (every recording must be made again)", file=sys.stderr)
    ident = identity()
    outputs = run_all()
    save(path_for(ident["isa"]), outputs, ident)
    print(f"{len(outputs)} arrays for core {ident['isa']} -> {path_for(ident['isa'])}", file=sys.stderr)
