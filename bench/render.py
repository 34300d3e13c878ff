#!/usr/bin/env python
"""Render pytest-benchmark JSON (pytest bench/ --benchmark-json=F) as Markdown tables.

    python bench/render.py bench/results.json [-o bench/results.md]
    python bench/render.py bench/results_after.json --readme --exclude W2   # the README's table

``--readme``: one compact table (workload, implicitbias, fastest peer, ratio) under a caption that
names the date, the CPU, the core and the size of the run; tests/test_readme.py checks that the
README holds exactly this output.

Workloads: the best (min) time per implementation, implicitbias (its fastest variant) against the
fastest peer, ratio = peer / implicitbias (> 1: implicitbias is faster), and GFLOP/s as a fraction of
the NumPy DGEMM peak where the workload counts flops.  Call overhead: MEAN time per call, and per
run for fit_many (time / runs), quiet and with one core busy.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

DASH = "\u2013"  # an en dash: the empty cell of a table


def fmt_t(s):
    return f"{s * 1e6:.0f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def gflops(b, t):
    flops = (b["extra_info"].get("config") or {}).get("flops")
    return flops / t / 1e9 if flops else None


def load(info, when):
    v = info.get(f"loadavg_at_{when}")
    return f"{v[0]:.2f}" if v else "?"


def header(doc):
    m = doc.get("machine_info", {})
    i = m.get("implicitbias_bench", {})
    build = i.get("implicitbias_build") or {}
    lines = [f"Machine: {i.get('cpu_model', m.get('cpu', {}).get('brand_raw', '?'))}, {i.get('cpu_count')} cores, "
             f"SIMD {', '.join(i.get('simd', [])) or '?'}; implicitbias {i.get('implicitbias')} "
             f"(core `{build.get('isa', '?') if isinstance(build, dict) else build}`), NumPy {i.get('numpy')}, "
             f"SciPy {i.get('scipy')}, torch {i.get('torch') or 'not installed'}, "
             f"jax {i.get('jax') or 'not installed'}; "
             f"size `{i.get('bench_size')}`; load average (1 min) at start {load(i, 'start')}, "
             f"at end {load(i, 'end')}; {doc.get('datetime', '')}."]
    if i.get("note"):
        lines.append(f"\nNote: {i['note']}")
    peaks = [b["extra_info"]["dgemm_gflops"] for b in doc["benchmarks"] if "dgemm_gflops" in b["extra_info"]]
    if peaks:
        lines.append(f"\nNumPy DGEMM peak: **{peaks[0]:.1f} GFLOP/s**.")
    return peaks[0] if peaks else None, lines


def workloads(groups, peak):
    L = ["| workload | implicitbias | fastest peer | peer time | peer / implicitbias "
         "| implicitbias GFLOP/s (of peak) |",
         "|---|---:|---|---:|---:|---:|"]
    detail = ["| workload | implementation | variant | min | mean | rounds | GFLOP/s (of peak) | notes |",
              "|---|---|---|---:|---:|---:|---:|---|"]
    for g, bs in groups.items():
        best_ib, best_peer = _best(bs)  # a capped run is no time-to-solution
        t_ib = best_ib["stats"]["min"] if best_ib else None
        t_p = best_peer["stats"]["min"] if best_peer else None
        gf = gflops(best_ib, t_ib) if best_ib else None
        peer_name = (best_peer["extra_info"]["peer"] + " " + best_peer["extra_info"].get("variant", "")
                     if best_peer else DASH)
        L.append(f"| {g} | {fmt_t(t_ib) if t_ib else DASH} | "
                 f"{peer_name} | "
                 f"{fmt_t(t_p) if t_p else DASH} | {f'{t_p / t_ib:.2f}' if t_ib and t_p else DASH} | "
                 f"{f'{gf:.1f} ({gf / peak:.0%})' if gf and peak else DASH} |")
        for b in sorted(bs, key=lambda b: b["stats"]["min"]):
            e, s = b["extra_info"], b["stats"]
            gf = gflops(b, s["min"])
            notes = ", ".join(f"{k} {v:.2g}" if isinstance(v, float) else f"{k} {v}" for k, v in e.items()
                              if k in ("status", "n_grad_evals", "err_to_limit", "first_call_s", "rel_error",
                                       "max_rel_diff_vs_numpy", "max_rel_diff_at_check_steps", "n_steps",
                                       "products_s"))
            detail.append(f"| {g} | {e.get('peer')} | {e.get('variant', '')} | {fmt_t(s['min'])} | "
                          f"{fmt_t(s['mean'])} | "
                          f"{s['rounds']} | {f'{gf:.1f} ({gf / peak:.0%})' if gf and peak else DASH} | {notes} |")
    return L + ["", "All rows (sorted by min time):", ""] + detail


def overhead(groups):
    cells = defaultdict(dict)
    for bs in groups.values():
        for b in bs:
            e = b["extra_info"]
            key = (e["call"], "auto" if e["num_threads"] is None else str(e["num_threads"]))
            cells[key][e["condition"]] = b["stats"]["mean"] / e.get("runs", 1)
    L = ["| call | num_threads | quiet, mean | one core busy, mean |", "|---|---|---:|---:|"]
    for (call, th), c in sorted(cells.items()):
        per = " per run" if call.endswith("fit_many") else ""
        L.append(f"| `{call}`{per} | {th} | {fmt_t(c['quiet']) if 'quiet' in c else DASH} | "
                 f"{fmt_t(c['busy']) if 'busy' in c else DASH} |")
    return L


WORKLOADS = {  # short descriptions for the README's table (bench/README.md has the full ones)
    "SG1": "SG1: SGD with batch 1, 16 runs of a diagonal network",
    "SG2": "SG2: heavy-ball GD, 16 runs of a diagonal network",
    "W1-small": "W1-small: GD, 16 runs sharing A (M=40, N=100)",
    "W1-large": "W1-large: GD, 16 runs sharing A (M=200, N=1000)",
    "T1 Hessian trace": "T1: exact trace of the Hessian, deep matrix factorization",
    "T2 trace-penalty training": "T2: trace-penalty training, deep matrix factorization",
    "S1 relu2 digits": "S1: 8 steepest-descent runs, ReLU network on the digits",
    "S2 linear n=15 d=20": "S2: normalized GD to 0.99 of the max margin (n=15, d=20)",
    "S2 linear n=1000 d=100": "S2: normalized GD to 0.99 of the max margin (n=1000, d=100)",
}


def _groups(doc, exclude=()):
    groups = defaultdict(list)
    for b in doc["benchmarks"]:
        g = b["group"] or b["name"]
        if not any(g.startswith(x) for x in exclude):
            groups[g].append(b)
    return groups


def _best(bs):
    """implicitbias's fastest variant and the fastest peer (a run capped by its budget is no time, and a peer
    whose ``rel_error`` is more than 100 times implicitbias's best, and above 1e-8, is not at equal accuracy)."""
    ibs = [b for b in bs if b["extra_info"].get("peer") == "implicitbias"]
    ib_errors = [b["extra_info"]["rel_error"] for b in ibs if "rel_error" in b["extra_info"]]
    worst_allowed = max(100 * min(ib_errors), 1e-8) if ib_errors else float("inf")
    others = [b for b in bs if b["extra_info"].get("peer") != "implicitbias"
              and b["extra_info"].get("status") != "budget"
              and b["extra_info"].get("rel_error", 0.0) <= worst_allowed]
    def fastest(bs):
        return min(bs, key=lambda b: b["stats"]["min"]) if bs else None
    return fastest(ibs), fastest(others)


def readme(doc, exclude=()):
    """The README's table: one row per workload, under a caption with the date, CPU, core and size."""
    i = doc.get("machine_info", {}).get("implicitbias_bench", {})
    build = i.get("implicitbias_build") or {}
    simd = " + ".join(f.upper() for f in i.get("simd", [])) or "no AVX2"
    core = build.get("isa", "?") if isinstance(build, dict) else "?"
    caption = (f"Measured {doc.get('datetime', '?')[:10]} on an {i.get('cpu_model', '?')} CPU "
               f"({i.get('cpu_count')} cores, {simd}; the `{core}` core), `--bench-size={i.get('bench_size')}`, "
               "best of the rounds; "
               "ratio = the fastest peer's time / implicitbias's (> 1: implicitbias is faster; "
               "peers far less accurate than implicitbias are not counted).")
    L = [caption, "", "| workload | implicitbias | fastest peer | ratio |", "|---|---:|---|---:|"]
    for g, bs in _groups(doc, exclude).items():
        ib, peer = _best(bs)
        if ib is None or peer is None:
            continue
        t_ib, t_p = ib["stats"]["min"], peer["stats"]["min"]
        e = peer["extra_info"]
        L.append(f"| {WORKLOADS.get(g, g)} | {fmt_t(t_ib)} | {e['peer']} {e.get('variant', '')}, {fmt_t(t_p)} | "
                 f"{t_p / t_ib:.2f}x |")
    return "\n".join(L) + "\n"


def render(doc):
    groups = _groups(doc)
    peak, out = header(doc)
    work = {g: bs for g, bs in groups.items() if not g.startswith("overhead")}
    over = {g: bs for g, bs in groups.items() if g.startswith("overhead")}
    if work:
        out += ["", "## Workloads (best of the rounds)", ""] + workloads(work, peak)
    if over:
        out += ["", "## Fixed cost of a call (tiny problems, one step; fit_many: 64 runs, time / 64)", ""]
        out += overhead(over)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json")
    ap.add_argument("-o", "--out", help="also write the Markdown here")
    ap.add_argument("--readme", action="store_true", help="the README's compact table with its caption")
    ap.add_argument("--exclude", action="append", default=[], metavar="PREFIX",
                    help="leave out the workloads whose name starts with PREFIX (repeatable)")
    a = ap.parse_args()
    with open(a.json) as fh:
        doc = json.load(fh)
    md = readme(doc, a.exclude) if a.readme else render(doc)
    if a.out:
        open(a.out, "w").write(md)
    print(md, end="")
