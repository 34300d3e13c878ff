"""Ctrl-C latency of a long C++ call: SIGINT to a subprocess, time until KeyboardInterrupt.

The child runs the call of issue 12 (``fit_many(A, y, init_scale=[0.1] * 8, method="descent",
lr=0.01, steps=3_000_000)`` on a 40 x 100 sensing problem), the parent sends SIGINT once the
call is under way and reports the time from the signal to the child's ``except
KeyboardInterrupt`` (both on the system-wide monotonic clock), then whether a later call in the
same child still gives the same result as before the interrupt.

Usage: PYTHONPATH=python python tools/interrupt_latency.py [--threads N] [--delay S] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

CHILD = r"""
import sys, time
import numpy as np
from implicitbias.diagonal import fit_many

rng = np.random.default_rng(0)
A = rng.standard_normal((40, 100))
x = np.zeros(100); x[:5] = 1.0
y = A @ x
n_runs = int(sys.argv[1]); threads = int(sys.argv[2])
small = fit_many(A, y, init_scale=[0.1] * n_runs, method="descent", lr=0.01, steps=2000, num_threads=threads)
print("ready", flush=True)
try:
    fit_many(A, y, init_scale=[0.1] * n_runs, method="descent", lr=0.01, steps=3_000_000,
             num_threads=threads)
    print("finished", time.monotonic(), flush=True)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
again = fit_many(A, y, init_scale=[0.1] * n_runs, method="descent", lr=0.01, steps=2000, num_threads=threads)
same = all(np.array_equal(a.x, b.x) for a, b in zip(small, again))
print("later_call_same", same, flush=True)
"""


def measure(threads: int, n_runs: int, delay: float) -> tuple[float, str]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(n_runs), str(threads)], stdout=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        raise RuntimeError(f"child did not start: {line!r}")
    time.sleep(delay)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=600)
    lines = out.split("\n")
    kind, stamp = lines[0].split()
    return float(stamp) - sent, f"{kind}; {lines[1]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    for _ in range(a.repeats):
        lat, what = measure(a.threads, a.runs, a.delay)
        print(f"threads={a.threads} runs={a.runs}: latency {lat:.3f} s ({what})", flush=True)


if __name__ == "__main__":
    main()
