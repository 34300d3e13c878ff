#!/usr/bin/env python
"""Benchmark implicitbias against the programs users write by hand.

Every workload runs implicitbias and each peer (bench/peers.py) in this one
process, times each with time.perf_counter (best of --repeat), checks that
they compute the same thing, and reports wall times and ratios.

    python bench/run_bench.py                       # everything (a few minutes)
    python bench/run_bench.py --quick               # 10x fewer steps, smaller budgets
    python bench/run_bench.py --only W1-small,W2 --repeat 5 --out bench/results.json

Writes the JSON (--out, default bench/results.json) and a Markdown report
beside it (same name, .md), and prints the Markdown to stdout.

Ratios are "time / implicitbias time" (> 1: implicitbias is faster) and, for
W2, gradient evaluations of fixed-step GD / those of implicitbias's flow.
Missing optional peers (torch, jax) are reported as "not installed"; if
implicitbias itself (its compiled ``_core``) cannot be imported, its rows say
so and ratios are given against the NumPy peer instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402

AGREE_RTOL = 1e-8
WORKLOADS = ("W1-small", "W1-large", "W2")


# ---------------------------------------------------------------------------
# implicitbias import (installed package first, then the source tree)
# ---------------------------------------------------------------------------

def load_implicitbias():
    """Return (ib_module_or_None, data_module, reason_if_unavailable)."""
    reason = None
    ib = None
    try:
        import implicitbias  # noqa: F401
    except Exception:
        sys.path.insert(0, str(REPO / "python"))
    try:
        import implicitbias as ib_mod
        import implicitbias._core  # noqa: F401
        import implicitbias.diagonal  # noqa: F401
        ib = ib_mod
    except Exception as exc:
        reason = f"implicitbias not importable ({type(exc).__name__}: {exc})"
    try:
        from implicitbias import data as data_mod
    except Exception:
        # the package __init__ needs the compiled core: load data.py from the
        # source tree as a submodule of a bare stand-in package instead
        import importlib
        import types
        pkg = types.ModuleType("_implicitbias_src")
        pkg.__path__ = [str(REPO / "python" / "implicitbias")]
        sys.modules["_implicitbias_src"] = pkg
        data_mod = importlib.import_module("_implicitbias_src.data")
    return ib, data_mod, reason


def load_reference():
    try:
        import implicitbias.reference as ref
        ref.diagonal_flow_limit  # noqa: B018
        return ref, None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def settle(seconds=0.3):
    """Let spinning BLAS/OpenMP worker threads of the previous peer go idle."""
    time.sleep(seconds)


def best_of(fn, repeat, long_single):
    """Run fn() up to ``repeat`` times; stop repeating once one run exceeds
    ``long_single`` seconds.  Returns (best, all_times, last_output)."""
    times = []
    out = None
    for _ in range(max(1, repeat)):
        settle()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if times[-1] > long_single:
            break
    return min(times), times, out


def rel_diff(X, ref):
    """Largest over runs (columns) of ||x - x_ref|| / ||x_ref||."""
    X = np.asarray(X, dtype=np.float64)
    num = np.linalg.norm(X - ref, axis=0)
    den = np.maximum(np.linalg.norm(ref, axis=0), 1e-300)
    r = num / den
    return float(np.max(r)) if np.all(np.isfinite(r)) else float("inf")


def short_error(exc, limit=400):
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + " ..."


def short_tb(limit=2000):
    text = traceback.format_exc(limit=4)
    return text if len(text) <= limit else text[:limit // 2] + "\n...\n" + text[-limit // 2:]


def jsonable(o):
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else None if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    return o


def fmt(v, spec=".3g", none="–"):
    if v is None:
        return none
    if isinstance(v, str):
        return v
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def machine_info():
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.processor() or "",
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import scipy
        info["scipy"] = scipy.__version__
    except Exception:
        pass
    for name in ("torch", "jax", "jaxlib"):
        try:
            mod = __import__(name)
            info[name] = mod.__version__
        except Exception:
            info[name] = None
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    return info


# ---------------------------------------------------------------------------
# W1: many GD runs sharing one sensing matrix
# ---------------------------------------------------------------------------

W1_CONFIGS = {
    # sparsity for W1-large is not part of the brief: s/M = 0.1 as in W1-small
    "W1-small": dict(M=40, N=100, sparsity=4, depth=2, K=16, steps=20_000, lr=0.05),
    "W1-large": dict(M=200, N=1000, sparsity=20, depth=2, K=16, steps=2_000, lr=0.05),
}


def run_w1(name, args, ib, data, ib_reason):
    cfg = dict(W1_CONFIGS[name])
    if args.quick:
        cfg["steps"] //= 10
    M, N, K, steps, lr, depth = cfg["M"], cfg["N"], cfg["K"], cfg["steps"], cfg["lr"], cfg["depth"]
    prob = data.sparse_regression(n_measurements=M, dim=N, sparsity=cfg["sparsity"], seed=args.seed)
    A, y = prob.A, prob.y
    alphas = np.logspace(-3, -0.5, K)
    cfg["init_scales"] = alphas.tolist()
    cfg["seed"] = args.seed
    flops_per_run = 4.0 * M * N * K * steps  # two (M x N)(N x K)-sized products per step
    rows = []

    def record(impl, variant, fn, *, compile_fn=None, note=""):
        row = {"impl": impl, "variant": variant, "note": note}
        try:
            if compile_fn is not None:
                settle()
                t0 = time.perf_counter()
                compile_fn()
                row["first_call_s"] = time.perf_counter() - t0
            best, times, X = best_of(fn, args.repeat, args.long_single)
            row.update(time_s=best, times_s=times, gflops=flops_per_run / best / 1e9,
                       status="ok")
            if compile_fn is not None:
                row["compile_s"] = max(row["first_call_s"] - best, 0.0)
            row["_X"] = np.asarray(X, dtype=np.float64)
        except peers.PeerUnavailable as exc:
            row.update(status="not installed", reason=str(exc))
        except Exception as exc:
            row.update(status="error", reason=short_error(exc),
                       traceback=short_tb())
        rows.append(row)
        print(f"  [{name}] {impl} {variant}: {row.get('status')} "
              f"{fmt(row.get('time_s'), '.4f')} s", file=sys.stderr, flush=True)
        return row

    # implicitbias
    if ib is not None:
        def ib_fit(num_threads):
            def f():
                rs = ib.diagonal.fit_many(A, y, depth=depth, init_scale=list(alphas), method="gd",
                                          lr=lr, steps=steps, num_threads=num_threads)
                f.statuses = [getattr(r, "status", None) for r in rs]
                return np.column_stack([np.asarray(r.x) for r in rs])
            return f
        fa = ib_fit(None)
        r = record("implicitbias", "fit_many, num_threads=None", fa)
        r["run_status"] = getattr(fa, "statuses", None)
        fb = ib_fit(1)
        r = record("implicitbias", "fit_many, num_threads=1", fb)
        r["run_status"] = getattr(fb, "statuses", None)
    else:
        rows.append({"impl": "implicitbias", "variant": "fit_many", "status": "unavailable",
                     "reason": ib_reason})

    record("numpy", "(N,K) matrices, 2 GEMMs/step",
           lambda: peers.gd_numpy(A, y, alphas, depth=depth, lr=lr, steps=steps))

    tr = peers.torch_available()
    if tr is None:
        record("torch", "eager, explicit grad, 2 threads",
               lambda: peers.gd_torch(A, y, alphas, depth=depth, lr=lr, steps=steps, num_threads=2))
        record("torch", "eager, autograd, 2 threads",
               lambda: peers.gd_torch_autograd(A, y, alphas, depth=depth, lr=lr, steps=steps,
                                               num_threads=2))
        record("torch", "eager, explicit grad, 1 thread",
               lambda: peers.gd_torch(A, y, alphas, depth=depth, lr=lr, steps=steps, num_threads=1))
        record("torch", "eager, autograd, 1 thread",
               lambda: peers.gd_torch_autograd(A, y, alphas, depth=depth, lr=lr, steps=steps,
                                               num_threads=1))
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
    else:
        rows.append({"impl": "torch", "variant": "eager", "status": "not installed", "reason": tr})

    jr = peers.jax_available()
    if jr is None:
        for form, label in (("vmap", "jit(vmap(fori_loop))"), ("matrix", "jit(fori_loop), (N,K) matrices")):
            fn = peers.make_gd_jax(depth=depth, lr=lr, steps=steps, form=form)

            def call(fn=fn):
                return np.asarray(fn(A, y, alphas).block_until_ready())
            record("jax", label, call, compile_fn=call,
                   note="time = later calls; compile = first call - time")
    else:
        rows.append({"impl": "jax", "variant": "jit", "status": "not installed", "reason": jr})

    # agreement and divergence checks, against the NumPy peer
    ref_row = next((r for r in rows if r["impl"] == "numpy" and "_X" in r), None)
    ib_row = next((r for r in rows if r["impl"] == "implicitbias" and "time_s" in r), None)
    base_row = ib_row or ref_row
    checks = {}
    if ref_row is not None:
        Xref = ref_row["_X"]
        R = A @ Xref - y[:, None]
        loss_final = 0.5 * (R * R).sum(axis=0)
        loss_init = 0.5 * float(y @ y)  # x(0) = alpha^L - alpha^L = 0
        checks = {
            "all_finite": bool(np.isfinite(Xref).all()),
            "diverged_runs": int(np.sum(~np.isfinite(loss_final) | (loss_final > loss_init))),
            "loss_init": loss_init,
            "loss_final": loss_final.tolist(),
            "err_to_x_star": np.linalg.norm(Xref - prob.x_star[:, None], axis=0).tolist(),
        }
    for r in rows:
        if "_X" in r and ref_row is not None:
            r["max_rel_diff_vs_numpy"] = rel_diff(r["_X"], ref_row["_X"])
            r["agrees"] = r["max_rel_diff_vs_numpy"] <= AGREE_RTOL
        if "time_s" in r:
            if ib_row is not None:
                r["ratio_vs_implicitbias"] = r["time_s"] / ib_row["time_s"]
            if ref_row is not None:
                r["ratio_vs_numpy"] = r["time_s"] / ref_row["time_s"]
    compared = [r for r in rows if "agrees" in r]
    checks["all_agree_to"] = AGREE_RTOL
    checks["all_agree"] = bool(compared) and all(r["agrees"] for r in compared)
    for r in rows:
        r.pop("_X", None)
    return {"config": cfg, "flops_per_run": flops_per_run,
            "ratio_baseline": "implicitbias" if ib_row else "numpy" if base_row else None,
            "checks": checks, "rows": rows}


# ---------------------------------------------------------------------------
# W2: gradient flow to its limit
# ---------------------------------------------------------------------------

W2_CONFIG = dict(M=40, N=100, sparsity=4, depth=2, init_scales=[1e-2, 1e-3],
                 rtol=1e-8, atol=1e-14, tol=1e-20, t_max=1e6)


def ib_flow_solvers(ib, args):
    """'default' (no solver argument) plus the --ib-flow-solvers that the API accepts."""
    import inspect
    try:
        params = inspect.signature(ib.diagonal.fit).parameters
    except (TypeError, ValueError):
        params = {}
    out = ["default"]
    if "solver" in params:
        default = params["solver"].default
        for s in (x.strip() for x in args.ib_flow_solvers.split(",")):
            if s and s != default and s not in out:
                out.append(s)
    return out


def run_w2(args, ib, data, ib_reason):
    cfg = dict(W2_CONFIG)
    cfg["seed"] = args.seed
    cfg["ivp_budget_s"] = args.ivp_budget
    cfg["gd_max_steps"] = args.gd_max_steps
    M, N, depth = cfg["M"], cfg["N"], cfg["depth"]
    prob = data.sparse_regression(n_measurements=M, dim=N, sparsity=cfg["sparsity"], seed=args.seed)
    A, y = prob.A, prob.y
    ref, ref_reason = load_reference()
    out = {"config": cfg, "cases": []}
    for alpha in cfg["init_scales"]:
        case = {"init_scale": alpha, "rows": []}
        print(f"  [W2] alpha={alpha:g}", file=sys.stderr, flush=True)
        # --- the predicted limit
        x_newton, newton_its = peers.flow_limit_newton(A, y, alpha)
        limit_source = None
        x_lim = None
        if ref is not None:
            try:
                x_lim = np.asarray(ref.diagonal_flow_limit(A, y, init_scale=alpha, depth=depth),
                                   dtype=np.float64)
                limit_source = "implicitbias.reference.diagonal_flow_limit"
            except Exception as exc:
                ref_reason = f"{type(exc).__name__}: {exc}"
        if x_lim is None:
            lim = peers.flow_solve_ivp(A, y, alpha, depth=depth, method="LSODA", rtol=1e-12,
                                       atol=1e-14, tol=cfg["tol"], t_max=cfg["t_max"],
                                       max_wall=max(args.ivp_budget, 60.0))
            x_lim = lim.x
            limit_source = (f"final point of solve_ivp LSODA rtol=1e-12 atol=1e-14 "
                            f"(status {lim.status}, t={lim.t_end:.4g}, loss={lim.loss:.3g}); "
                            f"implicitbias.reference unavailable: {ref_reason}")
        case["limit_source"] = limit_source
        case["limit_vs_newton"] = float(np.linalg.norm(x_lim - x_newton))
        case["newton_iterations"] = newton_its
        case["limit_residual"] = float(np.linalg.norm(A @ x_lim - y))
        case["limit_err_to_x_star"] = float(np.linalg.norm(x_lim - prob.x_star))

        def err(x):
            return float(np.linalg.norm(np.asarray(x) - x_lim))

        # --- implicitbias flow
        ib_row = None
        if ib is not None:
            for solver in ib_flow_solvers(ib, args):
                extra = {} if solver == "default" else {"solver": solver}
                row = {"impl": "implicitbias",
                       "variant": "fit(method='flow')" if solver == "default"
                       else f"fit(method='flow', solver='{solver}')"}
                try:
                    def f(extra=extra):
                        return ib.diagonal.fit(A, y, depth=depth, init_scale=alpha, method="flow",
                                               tol=cfg["tol"], t_max=cfg["t_max"], rtol=cfg["rtol"],
                                               atol=cfg["atol"], **extra)
                    best, times, r = best_of(f, args.repeat, args.long_single)
                    hist = getattr(r, "history", {}) or {}
                    t_hist = np.asarray(hist.get("t", [np.nan]))
                    l_hist = np.asarray(hist.get("loss", [np.nan]))
                    row.update(status=str(r.status), time_s=best, times_s=times,
                               reported_wall_time_s=getattr(r, "wall_time", None),
                               n_grad_evals=int(r.n_grad_evals),
                               t_end=float(t_hist[-1]) if t_hist.size else None,
                               loss=float(l_hist[-1]) if l_hist.size else None,
                               err_to_limit=err(r.x))
                    if ib_row is None:  # the default solver is the one compared against
                        ib_row = row
                except Exception as exc:
                    row.update(status="error", reason=short_error(exc), traceback=short_tb())
                case["rows"].append(row)
                print(f"  [W2] implicitbias {solver}: {row.get('status')} "
                      f"{fmt(row.get('time_s'), '.3f')} s evals={row.get('n_grad_evals')}",
                      file=sys.stderr, flush=True)
        else:
            case["rows"].append({"impl": "implicitbias", "variant": "fit(method='flow')",
                                 "status": "unavailable", "reason": ib_reason})

        # --- solve_ivp peers
        ivp_rows = {}
        for method in ("LSODA", "RK45"):
            row = {"impl": "scipy", "variant": f"solve_ivp {method}"}
            try:
                def f(method=method):
                    return peers.flow_solve_ivp(A, y, alpha, depth=depth, method=method,
                                                rtol=cfg["rtol"], atol=cfg["atol"], tol=cfg["tol"],
                                                t_max=cfg["t_max"], max_wall=args.ivp_budget)
                best, times, r = best_of(f, args.repeat, min(args.long_single, args.ivp_budget / 2))
                row.update(status=r.status, time_s=best, times_s=times, n_grad_evals=r.nfev,
                           njev=r.njev, t_end=r.t_end, loss=r.loss, err_to_limit=err(r.x),
                           message=r.message)
                ivp_rows[method] = row
            except Exception as exc:
                row.update(status="error", reason=short_error(exc))
            case["rows"].append(row)
            print(f"  [W2] {method}: {row.get('status')} {fmt(row.get('time_s'), '.3f')} s "
                  f"nfev={row.get('n_grad_evals')}", file=sys.stderr, flush=True)

        # --- fixed-step GD: cheapest step count reaching the flow's error
        flow_row = ib_row or ivp_rows.get("LSODA")
        target_source = (f"implicitbias {ib_row['variant']}" if ib_row is not None
                         else "solve_ivp LSODA (rtol 1e-8) as a stand-in for implicitbias flow")
        target = flow_row["err_to_limit"] if flow_row else None
        gd = {"target_source": target_source, "target": target}
        if target is not None:
            target_eff = max(target, 1e-15)
            s = peers.gd_lr_search(A, y, alpha, x_lim, target_eff, depth=depth,
                                   max_steps=args.gd_max_steps, check_every=10,
                                   extra_targets=(1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
                                   max_wall=args.gd_budget)
            gd.update(s.__dict__)
            if s.found:
                gd["steps_needed"] = s.steps
                gd["how"] = f"measured (lr={s.lr:g}, check every {s.check_every} steps)"
            else:
                # GD's limit differs from the flow's by a bias ~ c * lr (first order);
                # extrapolate with the smallest observed err/lr, time = the flow's t_end.
                cands = [(e / lr, lr) for e, lr, dv in zip(s.min_err, s.lrs, s.diverged)
                         if e is not None and not dv]
                # flow time to reach the limit: the earliest t_end among flow runs that met
                # the loss tolerance (a run stopped by t_max or a budget says nothing about it)
                conv = [r for r in [ib_row, *ivp_rows.values()]
                        if r is not None and r.get("status") == "converged" and r.get("t_end")]
                T_row = min(conv, key=lambda r: r["t_end"]) if conv else flow_row
                T = T_row.get("t_end")
                gd["flow_time_source"] = f"{T_row['impl']} {T_row['variant']} ({T_row['status']})"
                if cands and T:
                    c_hat, lr_at = min(cands)
                    lr_need = target_eff / c_hat
                    gd["bias_per_lr"] = c_hat
                    gd["lr_needed"] = lr_need
                    gd["steps_needed"] = T / lr_need
                    gd["how"] = (f"extrapolated: not reached in {s.steps_run} steps; "
                                 f"error floor ~ {c_hat:.3g} * lr (from lr={lr_at:g}), "
                                 f"so lr ~ {lr_need:.3g} over flow time t={T:.4g} "
                                 f"(from {gd['flow_time_source']})")
                else:
                    gd["steps_needed"] = None
                    gd["how"] = f"not reached in {s.steps_run} steps"
            if gd.get("steps_needed") and ib_row is not None:
                gd["ratio_vs_implicitbias_flow"] = gd["steps_needed"] / ib_row["n_grad_evals"]
            if gd.get("steps_needed") and "LSODA" in ivp_rows:
                gd["ratio_vs_lsoda"] = gd["steps_needed"] / ivp_rows["LSODA"]["n_grad_evals"]
        case["gd"] = gd
        print(f"  [W2] GD: {gd.get('how')} steps={fmt(gd.get('steps_needed'))}",
              file=sys.stderr, flush=True)

        for row in case["rows"]:
            if "time_s" in row and ib_row is not None:
                row["ratio_vs_implicitbias"] = row["time_s"] / ib_row["time_s"]
                row["evals_ratio_vs_implicitbias"] = row["n_grad_evals"] / ib_row["n_grad_evals"]
        out["cases"].append(case)
    return out


# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------

def why(row, limit=120):
    reason = row.get("reason")
    if not reason or row.get("status") in ("not installed", "unavailable"):
        return ""
    reason = reason.replace("|", "/").replace("\n", " ")
    return " (" + (reason if len(reason) <= limit else reason[:limit] + " ...") + ")"


def markdown(res):
    L = []
    meta = res["meta"]
    L.append("# implicitbias benchmarks\n")
    L.append(f"Machine: {meta.get('cpu')}, {meta.get('cpu_count')} cores; Python {meta.get('python')}, "
             f"NumPy {meta.get('numpy')}, SciPy {meta.get('scipy')}, torch {meta.get('torch') or 'not installed'}, "
             f"jax {meta.get('jax') or 'not installed'}. Load average at start: "
             f"{', '.join(fmt(v, '.2f') for v in (meta.get('loadavg_at_start') or []))}. "
             f"Mode: {'quick' if meta.get('quick') else 'full'}, best of {meta.get('repeat')}.\n")
    if meta.get("implicitbias_unavailable"):
        L.append(f"**implicitbias was not importable**: {meta['implicitbias_unavailable']}. "
                 "Ratios below are against the NumPy peer.\n")
    dg = res.get("dgemm")
    if dg:
        L.append(f"NumPy DGEMM {dg['n']}x{dg['n']} (best of {dg['repeat']}): "
                 f"**{dg['gflops']:.1f} GFLOP/s** ({dg['time_s']:.3f} s).\n")
    for name in ("W1-small", "W1-large"):
        w = res["workloads"].get(name)
        if not w:
            continue
        c = w["config"]
        L.append(f"## {name}: GD, M={c['M']}, N={c['N']}, s={c['sparsity']}, depth {c['depth']}, "
                 f"{c['K']} init scales in [1e-3, 10^-0.5] sharing A, {c['steps']} steps, lr {c['lr']}\n")
        base = w.get("ratio_baseline") or "numpy"
        L.append(f"| implementation | variant | time (s) | compile (s) | GFLOP/s | time / {base} | "
                 f"max rel diff vs NumPy |")
        L.append("|---|---|---:|---:|---:|---:|---:|")
        for r in w["rows"]:
            if "time_s" not in r:
                L.append(f"| {r['impl']} | {r['variant']} | {r['status']}{why(r)} | | | | |")
                continue
            ratio = r.get("ratio_vs_implicitbias", r.get("ratio_vs_numpy"))
            L.append(f"| {r['impl']} | {r['variant']} | {r['time_s']:.4f} | {fmt(r.get('compile_s'), '.3f')} | "
                     f"{r['gflops']:.2f} | {fmt(ratio, '.2f')} | {fmt(r.get('max_rel_diff_vs_numpy'), '.1e')}"
                     f"{'' if r.get('agrees', True) else ' (DISAGREES)'} |")
        ch = w.get("checks", {})
        if ch:
            L.append(f"\nAll implementations agree with NumPy to {ch.get('all_agree_to'):g} relative: "
                     f"{ch.get('all_agree')}. "
                     f"All final states finite: {ch.get('all_finite')}; runs whose loss ended above "
                     f"its initial value (diverged): {ch.get('diverged_runs')}. GFLOP/s counts "
                     f"4*M*N*K flops per step (the two products).\n")
    w = res["workloads"].get("W2")
    if w:
        c = w["config"]
        L.append(f"## W2: gradient flow to its limit, M={c['M']}, N={c['N']}, s={c['sparsity']}, "
                 f"depth {c['depth']}, rtol {c['rtol']:g}, atol {c['atol']:g}, stop at loss <= {c['tol']:g} "
                 f"or t = {c['t_max']:g}\n")
        for case in w["cases"]:
            L.append(f"### init scale {case['init_scale']:g}\n")
            L.append(f"Limit: {case['limit_source']} (distance to the bench's own Newton solve of the "
                     f"dual: {case['limit_vs_newton']:.2e}; ||limit - x*|| = {case['limit_err_to_x_star']:.3g}).\n")
            L.append("| method | status | time (s) | gradient evals | t reached | final loss | "
                     "‖x − x_limit‖ | time / implicitbias | evals / implicitbias |")
            L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for r in case["rows"]:
                if "time_s" not in r:
                    L.append(f"| {r['impl']} {r['variant']} | {r['status']}{why(r)} | | | | | | | |")
                    continue
                L.append(f"| {r['impl']} {r['variant']} | {r['status']} | {r['time_s']:.3f} | "
                         f"{r['n_grad_evals']} | {fmt(r.get('t_end'), '.4g')} | {fmt(r.get('loss'), '.2e')} | "
                         f"{fmt(r.get('err_to_limit'), '.2e')} | {fmt(r.get('ratio_vs_implicitbias'), '.2f')} | "
                         f"{fmt(r.get('evals_ratio_vs_implicitbias'), '.3g')} |")
            gd = case.get("gd", {})
            if gd.get("target") is not None:
                L.append(f"\nFixed-step GD to the same error ({gd['target']:.2e}, from {gd['target_source']}): "
                         f"**{fmt(gd.get('steps_needed'), '.3g')} gradient evaluations**, {gd.get('how')}. "
                         f"GD / implicitbias flow: {fmt(gd.get('ratio_vs_implicitbias_flow'), '.3g')}; "
                         f"GD / LSODA: {fmt(gd.get('ratio_vs_lsoda'), '.3g')}. Search wall time "
                         f"{gd.get('wall_time', 0):.1f} s.")
                ex = gd.get("extra_targets") or {}
                if ex:
                    parts = [f"{float(t):.0e}: {v['steps']} (lr {v['lr']:g})" if v else f"{float(t):.0e}: not reached"
                             for t, v in ex.items()]
                    L.append("Cheapest GD steps to looser errors: " + "; ".join(parts) + ".")
                if gd.get("lrs"):
                    parts = [f"lr {lr:g}: {'diverged' if dv else fmt(e, '.2e')}"
                             for lr, e, dv in zip(gd["lrs"], gd["min_err"], gd["diverged"])]
                    L.append("Smallest GD error to the limit seen per lr: " + "; ".join(parts) + ".\n")
    return "\n".join(L) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10x fewer steps and smaller budgets (smoke run)")
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--repeat", type=int, default=3, help="best of K timings (default 3)")
    p.add_argument("--out", default=str(HERE / "results.json"), help="JSON output path")
    p.add_argument("--seed", type=int, default=0, help="problem seed (default 0)")
    p.add_argument("--long-single", type=float, default=20.0,
                   help="do not repeat a measurement whose single run took longer (s)")
    p.add_argument("--ivp-budget", type=float, default=None,
                   help="wall-time cap per solve_ivp run in W2 (s; default 60, quick 10)")
    p.add_argument("--gd-max-steps", type=int, default=None,
                   help="cap on GD steps in the W2 lr search (default 1e6, quick 1e5)")
    p.add_argument("--gd-budget", type=float, default=None,
                   help="wall-time cap on the W2 GD search per init scale (s; default 120, quick 15)")
    p.add_argument("--ib-flow-solvers", default="dopri5",
                   help="implicitbias flow solvers to time in W2 besides the default "
                        "(comma-separated; default: dopri5)")
    p.add_argument("--no-dgemm", action="store_true", help="skip the DGEMM reference measurement")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose from {WORKLOADS}")
    if args.ivp_budget is None:
        args.ivp_budget = 10.0 if args.quick else 60.0
    if args.gd_max_steps is None:
        args.gd_max_steps = 100_000 if args.quick else 1_000_000
    if args.gd_budget is None:
        args.gd_budget = 15.0 if args.quick else 120.0

    ib, data, ib_reason = load_implicitbias()
    meta = machine_info()
    meta.update(quick=args.quick, repeat=args.repeat, seed=args.seed,
                implicitbias_unavailable=ib_reason,
                implicitbias_file=getattr(ib, "__file__", None) if ib else None,
                started=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if meta.get("loadavg_at_start") and meta["loadavg_at_start"][0] > 0.5:
        print(f"warning: load average {meta['loadavg_at_start'][0]:.2f}: other processes are "
              "running; timings (especially multi-threaded ones) will be disturbed",
              file=sys.stderr)
    res = {"meta": meta, "workloads": {}}
    if not args.no_dgemm:
        n = 1000 if args.quick else 2000
        gf, t = peers.dgemm_gflops(n=n, repeat=3)
        res["dgemm"] = {"n": n, "repeat": 3, "gflops": gf, "time_s": t}
        print(f"  DGEMM {n}: {gf:.1f} GFLOP/s", file=sys.stderr, flush=True)
    for name in only:
        print(f"== {name}", file=sys.stderr, flush=True)
        if name.startswith("W1"):
            res["workloads"][name] = run_w1(name, args, ib, data, ib_reason)
        else:
            res["workloads"][name] = run_w2(args, ib, data, ib_reason)
    meta["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(jsonable(res), indent=1) + "\n")
    md = markdown(res)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
