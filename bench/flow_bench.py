"""The flow benchmark of issue 10: W2 against scipy and CVODE, the weight-normalized flow
against LSODA, and the scaling of one flow with N.  One run of everything, same tolerance
and stop rule for every entry; medians of a few repeats (the machine is shared and noisy).

    PYTHONPATH=python python bench/flow_bench.py [--repeats 5] [--scaling 100,...,5000] [--dual-max 2000]

writes bench/results_flow.json and bench/results_flow.md.  The CVODE peer needs
scikit-sundae (``pip install scikit-sundae``, e.g. into a private venv on PYTHONPATH);
it is skipped when it does not import.  Peers on the dual system get the analytic Jacobian
J = -A diag(4 (u^2 + v^2)) A^T (docs/science.md, section 1.9).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import peers

W2 = dict(M=40, N=100, sparsity=4, rtol=1e-8, atol=1e-14, target_loss=1e-20, t_max=1e6)


def _median_time(f, repeats):
    out, ts = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t)
    return out, statistics.median(ts)


def dual_system(A, y, alpha):
    """Depth-2 signed dual flow ds/dt = A x(A^T s) - y, its Jacobian, and x(s)."""
    la2 = 2.0 * np.log(alpha)

    def x_of(s):
        z = 4.0 * (A.T @ s)
        return np.exp(la2 - z) - np.exp(la2 + z)

    def fun(s):
        return A @ x_of(s) - y

    def jac(s):
        z = 4.0 * (A.T @ s)
        d = 4.0 * (np.exp(la2 - z) + np.exp(la2 + z))
        return -(A * d) @ A.T
    return fun, jac, x_of


def scipy_bdf_dual(A, y, alpha, rtol, atol, target, t_max):
    from scipy.integrate import solve_ivp
    fun, jac, x_of = dual_system(A, y, alpha)

    def event(t, s):
        r = fun(s)
        return 0.5 * r @ r - target
    event.terminal, event.direction = True, -1
    sol = solve_ivp(lambda t, s: fun(s), (0, t_max), np.zeros(A.shape[0]), method="BDF", jac=lambda t, s: jac(s),
                    rtol=rtol, atol=atol, events=event)
    status = {1: "converged", 0: "max_time"}.get(sol.status, "failed")
    return x_of(sol.y[:, -1]), status, int(sol.nfev), int(sol.njev)


def cvode_dual(A, y, alpha, rtol, atol, target, t_max):
    from sksundae.cvode import CVODE
    fun, jac, x_of = dual_system(A, y, alpha)
    n = [0, 0]

    def rhs(t, s, sp):
        n[0] += 1
        sp[:] = fun(s)

    def jacfn(t, s, sp, JJ):
        n[1] += 1
        JJ[:, :] = jac(s)

    def events(t, s, ev):
        r = fun(s)
        ev[0] = 0.5 * r @ r - target
    events.terminal, events.direction = [True], [-1]
    solver = CVODE(rhs, method="BDF", rtol=rtol, atol=atol, jacfn=jacfn, eventsfn=events, num_events=1,
                   max_num_steps=1_000_000)
    sol = solver.solve(np.array([0.0, t_max]), np.zeros(A.shape[0]))
    status = "converged" if getattr(sol, "i_events", None) is not None and len(sol.i_events) else str(sol.status)
    return x_of(sol.y[-1]), status, n[0], n[1]


def w2_table(repeats):
    import implicitbias as ib
    from implicitbias import data, reference
    rows = []
    prob = data.sparse_regression(n_measurements=W2["M"], dim=W2["N"], sparsity=W2["sparsity"], seed=0)
    A, y = prob.A, prob.y
    for alpha in (1e-2, 1e-3):
        x_lim = np.asarray(reference.diagonal_flow_limit(A, y, init_scale=alpha, depth=2))
        common = dict(rtol=W2["rtol"], atol=W2["atol"], target=W2["target_loss"], t_max=W2["t_max"])
        entries = {}
        for solver, n_record in (("rodas5", 200), ("rodas5", 2), ("bdf", 200), ("bdf", 2), ("rosw", 200)):
            def f(solver=solver, n_record=n_record, alpha=alpha):
                r = ib.diagonal.fit(A, y, init_scale=alpha, solver=solver, rtol=W2["rtol"], atol=W2["atol"],
                                    target_loss=W2["target_loss"], t_max=W2["t_max"], n_record=n_record)
                return r.x, r.status, r.n_grad_evals, 0
            label = f"implicitbias solver={solver}" + (" (default)" if solver == "bdf" else "")
            label += ", 200 record times (default)" if n_record == 200 else ", first/last point only (as the peers)"
            entries[label] = (f, repeats)
        entries["scipy LSODA, 2N system"] = (
            lambda alpha=alpha, common=common: (*peers.flow_solve_ivp(A, y, alpha, method="LSODA", **common)[:3], 0),
            max(1, repeats // 3))
        entries["scipy BDF, dual system, analytic Jacobian"] = (
            lambda alpha=alpha: scipy_bdf_dual(A, y, alpha, W2["rtol"], W2["atol"], W2["target_loss"], W2["t_max"]),
            max(1, repeats // 3))
        try:
            import sksundae  # noqa: F401
            entries["CVODE BDF (scikit-sundae), dual system, analytic Jacobian"] = (
                lambda alpha=alpha: cvode_dual(A, y, alpha, W2["rtol"], W2["atol"], W2["target_loss"], W2["t_max"]),
                max(1, repeats // 3))
        except ImportError:
            pass
        for name, (f, n) in entries.items():
            (x, status, evals, jevals), t = _median_time(f, n)
            rows.append(dict(table="W2", alpha=alpha, peer=name, seconds=t, n_grad_evals=int(evals),
                             n_jac_evals=int(jevals), status=str(status), err_to_limit=float(np.linalg.norm(x - x_lim)),
                             repeats=n))
            print(rows[-1], flush=True)
    return rows


def wn_table(repeats):
    import implicitbias as ib
    from implicitbias import data, reference
    rows = []
    prob = data.sparse_regression(n_measurements=W2["M"], dim=W2["N"], sparsity=W2["sparsity"], seed=0)
    A, y = prob.A, prob.y
    for kappa in (10.0, 100.0):
        res = {}
        # the default (bdf, log-polar coordinates) at the table's atol and at the default atol = 0, and rosw
        for solver, atol in (("bdf", W2["atol"]), ("bdf", 0.0), ("rosw", W2["atol"])):
            def f(solver=solver, kappa=kappa, atol=atol):
                return ib.diagonal.fit(A, y, init_scale=0.1, weight_norm="joint", lr_ratio=kappa, solver=solver,
                                       rtol=W2["rtol"], atol=atol, target_loss=W2["target_loss"],
                                       t_max=W2["t_max"])
            res[solver + ("" if atol else ", atol 0")] = _median_time(f, repeats)
        # the limit: the plain flow's limit at alpha_eff of the default's run (docs/science.md, section 1.7)
        x_lim = np.asarray(reference.diagonal_flow_limit(A, y, init_scale=res["bdf"][0].alpha_eff(), depth=2))
        for solver, (r, t) in res.items():
            rows.append(dict(table="WN", lr_ratio=kappa, peer=f"implicitbias solver={solver}"
                             + (" (default)" if solver.startswith("bdf") else ""), seconds=t,
                             n_grad_evals=r.n_grad_evals, status=r.status,
                             err_to_limit=float(np.linalg.norm(r.x - x_lim)), repeats=repeats))
            print(rows[-1], flush=True)
        n = max(1, repeats // 3)
        (x, status, nfev, _), t = _median_time(lambda kappa=kappa: peers.wn_flow_solve_ivp(
            A, y, 0.1, kappa, rtol=W2["rtol"], atol=W2["atol"], target=W2["target_loss"], t_max=W2["t_max"]), n)
        rows.append(dict(table="WN", lr_ratio=kappa, peer="scipy LSODA, same polar system", seconds=t,
                         n_grad_evals=nfev, status=status, err_to_limit=float(np.linalg.norm(x - x_lim)), repeats=n))
        print(rows[-1], flush=True)
    return rows


def scaling_table(sizes, dual_max):
    """One flow per N and solver (rodas5 only up to N = dual_max: it costs O(M^2 N) per step), and the
    time of one gradient evaluation (A^T s, then A x: the two M x N products) in NumPy on one thread, so that
    evals x that time is the flow's floor on this machine whatever the integrator's overhead."""
    import implicitbias as ib
    from implicitbias import data
    rows = []
    for N in sizes:
        M, s = int(0.4 * N), max(1, int(0.04 * N))
        prob = data.sparse_regression(n_measurements=M, dim=N, sparsity=s, seed=0)
        sv, xv = np.ones(M), np.ones(N)
        _, t_eval = _median_time(lambda prob=prob, sv=sv, xv=xv: prob.A @ (prob.A.T @ sv + xv), 7)
        for solver in ("rodas5", "bdf"):
            if solver == "rodas5" and N > dual_max:
                continue
            t = time.perf_counter()
            r = ib.diagonal.fit(prob.A, prob.y, init_scale=0.01, rtol=1e-8, num_threads=1, n_record=20,
                                solver=solver)
            dt = time.perf_counter() - t
            rows.append(dict(table="scaling", N=N, M=M, s=s, solver=solver, seconds=dt, n_steps=r.n_steps,
                             eval_seconds=t_eval,
                             n_grad_evals=r.n_grad_evals, status=r.status,
                             rel_residual=float(np.linalg.norm(prob.A @ r.x - prob.y) / np.linalg.norm(prob.y))))
            print(rows[-1], flush=True)
    return rows


def render(rows, meta):
    out = ["# Flow benchmark (issue 10)", "",
           f"{meta['when']}, {meta['machine']}; load average at start {meta['load']}. The machine is shared "
           "(other work may run at the same time; see the load average): times are medians of `repeats` runs and their "
           "ratios are more meaningful than their values.", "",
           "W2: M=40, N=100, s=4, depth 2, rtol 1e-8, atol 1e-14, every entry stops at loss <= 1e-20 "
           "(t_max 1e6); err = ||x - x_limit|| with x_limit = reference.diagonal_flow_limit.", ""]
    out += ["| init | peer | time (ms) | grad evals | Jacobians | status | err to limit "
            "| time / rodas5's (200 records) |",
            "|---|---|---|---|---|---|---|---|"]
    for alpha in sorted({r["alpha"] for r in rows if r["table"] == "W2"}, reverse=True):
        grp = [r for r in rows if r["table"] == "W2" and r["alpha"] == alpha]
        base = next(r["seconds"] for r in grp if "rodas5" in r["peer"] and "implicitbias" in r["peer"])  # 200 records
        for r in grp:
            out.append(f"| {alpha:g} | {r['peer']} | {1e3 * r['seconds']:.1f} | {r['n_grad_evals']} | "
                       f"{r['n_jac_evals'] or ''} | {r['status']} | {r['err_to_limit']:.1e} | "
                       f"{r['seconds'] / base:.1f}x |")
    out += ["", "WN: joint weight normalization, init 0.1, same W2 problem, tolerance and stop rule; "
            "err against the plain limit at alpha_eff of the default's run (docs/science.md, section 1.7); 'atol 0': "
            "the default atol.", "",
            "| lr_ratio | peer | time (ms) | grad evals | status | err to limit | LSODA time / this |",
            "|---|---|---|---|---|---|---|"]
    for kappa in sorted({r["lr_ratio"] for r in rows if r["table"] == "WN"}):
        grp = [r for r in rows if r["table"] == "WN" and r["lr_ratio"] == kappa]
        lsoda = next(r["seconds"] for r in grp if "LSODA" in r["peer"])
        for r in grp:
            out.append(f"| {kappa:g} | {r['peer']} | {1e3 * r['seconds']:.1f} | {r['n_grad_evals']} | "
                       f"{r['status']} | {r['err_to_limit']:.1e} | {lsoda / r['seconds']:.1f}x |")
    out += ["", "Scaling: one flow per solver (rodas5; bdf, the default; both in dual coordinates), init 0.01, "
            "M = 0.4 N, "
            "s = 0.04 N, rtol 1e-8, 1 thread, default stop rule, one run each. One eval: A^T s and A x in NumPy "
            "(one thread); evals x eval is what the gradient evaluations alone cost.", "",
            "| N | M | solver | time (s) | steps | grad evals | one eval (ms) | evals x eval (s) | status "
            "| ||Ax-y||/||y|| |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["table"] == "scaling"):
        ev = r.get("eval_seconds", float("nan"))
        out.append(f"| {r['N']} | {r['M']} | {r['solver']} | {r['seconds']:.2f} | {r['n_steps']} | "
                   f"{r['n_grad_evals']} | {1e3 * ev:.2f} | {r['n_grad_evals'] * ev:.2f} | {r['status']} | "
                   f"{r['rel_residual']:.1e} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scaling", default="100,200,500,1000,2000,5000,10000")
    ap.add_argument("--dual-max", type=int, default=2000, help="largest N run with solver dual (Rodas5)")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    meta = dict(when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=platform.processor() or
                platform.machine(), load=os.getloadavg()[0], python=sys.version.split()[0])
    rows = w2_table(args.repeats) + wn_table(args.repeats)
    rows += scaling_table([int(n) for n in args.scaling.split(",") if n], args.dual_max)
    with open(os.path.join(args.out, "results_flow.json"), "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    with open(os.path.join(args.out, "results_flow.md"), "w") as fh:
        fh.write(render(rows, meta))


if __name__ == "__main__":
    main()
