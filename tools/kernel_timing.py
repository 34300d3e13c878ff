"""Kernel timings for a before/after comparison of two builds (e.g. the interrupt polling's cost).

Usage: python tools/kernel_timing.py PYTHON_DIR  -> one JSON line {workload: best of 5, seconds}.
Alternate two package directories a few times on a quiet machine and compare the minima.
Workloads (one thread): diagonal GD with the lanes and the generic kernel (16 runs, M=40, N=100),
the diagonal ROS34PW2 flow (4 runs), steepest descent on a tiny linear problem (4 norms, 20,000
cheap steps: the worst case for a per-step poll) and factorization GD.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

sys.path.insert(0, sys.argv[1])

from implicitbias import diagonal, factorization, steepest

rng = np.random.default_rng(0)
A = rng.standard_normal((40, 100)) / np.sqrt(40)
x_star = np.zeros(100)
x_star[:4] = 1.0
y = A @ x_star
scales = list(np.logspace(-3, -0.5, 16))
X = rng.standard_normal((20, 5))
labels = np.sign(X[:, 0] + 0.1)
Af = rng.standard_normal((30, 6, 6))
yf = np.einsum("kij,ij->k", Af, rng.standard_normal((6, 2)) @ rng.standard_normal((2, 6)))
WORKLOADS = {
    "diag_lanes_gd": lambda: diagonal.fit_many(A, y, init_scale=scales, method="descent", lr=0.05, steps=20000,
                                               num_threads=1, target_loss=0.0),
    "diag_generic_gd": lambda: diagonal.fit_many(A, y, init_scale=scales, method="descent", lr=0.05, steps=5000,
                                                 num_threads=1, gd_kernel="generic", target_loss=0.0),
    "diag_flow_rosw": lambda: diagonal.fit_many(A, y, init_scale=scales[:4], method="flow", t_max=1e3, num_threads=1),
    "steepest_tiny": lambda: steepest.fit_many(X, labels, "linear", norm=["l2", "linf", "l1", 3.0], lr=1e-2,
                                               init=np.full(5, 0.1), steps=20000, num_threads=1),
    "fact_gd": lambda: factorization.fit_many(Af, yf, depth=3, init_scale=[0.1, 0.2], method="descent", lr=1e-3,
                                              steps=5000, num_threads=1, target_loss=0.0),
}
best = {}
for name, call in WORKLOADS.items():
    call()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    best[name] = min(times)
print(json.dumps(best))
