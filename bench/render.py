#!/usr/bin/env python
"""Render pytest-benchmark JSON (pytest bench/ --benchmark-json=F) as the README's Markdown tables.

    python bench/render.py bench/results.json [-o bench/results.md]

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
        ibs = [b for b in bs if b["extra_info"].get("peer") == "implicitbias"]
        others = [b for b in bs if b["extra_info"].get("peer") != "implicitbias"
                  and b["extra_info"].get("status") != "budget"]  # a capped run is no time-to-solution
        best_ib = min(ibs, key=lambda b: b["stats"]["min"]) if ibs else None
        best_peer = min(others, key=lambda b: b["stats"]["min"]) if others else None
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
                                       "max_rel_diff_vs_numpy", "max_rel_diff_at_check_steps"))
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


def render(doc):
    groups = defaultdict(list)
    for b in doc["benchmarks"]:
        groups[b["group"] or b["name"]].append(b)
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
    a = ap.parse_args()
    with open(a.json) as fh:
        md = render(json.load(fh))
    if a.out:
        open(a.out, "w").write(md)
    print(md, end="")
