"""Ctrl-C during a long C++ call: KeyboardInterrupt within a second, and the process stays sound.

Each case starts a subprocess that runs a call lasting minutes, sends it SIGINT once the call
is under way, and checks that the child caught KeyboardInterrupt within a second of the signal
(system-wide monotonic clock) and that a later call in the same child returns the same result
as the same call made before the interrupt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import implicitbias

# the children import the package this process imported (the source tree in development, site-packages in CI)
PACKAGE_PARENT = str(Path(implicitbias.__file__).resolve().parents[1])

# Each call is cut short by the signal; each would run for minutes otherwise.
CALLS = {
    "diagonal_descent": """
from implicitbias.diagonal import fit_many
rng = np.random.default_rng(0)
A = rng.standard_normal((40, 100)); xs = np.zeros(100); xs[:5] = 1.0; y = A @ xs
def call(long):
    res = fit_many(A, y, init_scale=[0.1] * 16, method="descent", lr=0.01,
                   steps=3_000_000 if long else 200, num_threads=THREADS, block_size=8)
    return np.concatenate([r.x for r in res])
""",
    "diagonal_flow": """
from implicitbias.diagonal import fit_many
rng = np.random.default_rng(0)
A = rng.standard_normal((20, 60)); xs = np.zeros(60); xs[:3] = 1.0; y = A @ xs
def call(long):
    res = fit_many(A, y, init_scale=[1e-3] * 4, method="flow", solver="rosw", target_loss=0.0, rtol=1e-12,
                   t_max=1e12 if long else 0.01, max_steps=2_000_000_000, stall_steps=0, num_threads=THREADS,
                   block_size=2)
    return np.concatenate([r.x for r in res])
""",
    "dual_flow_bdf": """
from implicitbias.diagonal import fit_many
rng = np.random.default_rng(0)
A = rng.standard_normal((20, 60)); xs = np.zeros(60); xs[:3] = 1.0; y = A @ xs
def call(long):
    res = fit_many(A, y, init_scale=list(np.geomspace(1e-2, 1e-6, 20000 if long else 4)), method="flow",
                   solver="bdf", target_loss=0.0, rtol=1e-12, t_max=1e12, stall_steps=0,
                   num_threads=THREADS, block_size=2)
    return np.concatenate([r.x for r in res])
""",
    "steepest": """
from implicitbias.steepest import fit_many
rng = np.random.default_rng(0)
X = rng.standard_normal((30, 5)); y = np.sign(X[:, 0] + 0.1)
def call(long):
    res = fit_many(X, y, "linear", norm=["l2", "linf"], normalized=True, lr=1e-3, init=np.ones(5) * 0.1,
                   steps=10**9 if long else 200, num_threads=THREADS)
    return np.concatenate([r.theta for r in res])
""",
    "factorization": """
from implicitbias.factorization import fit_many
rng = np.random.default_rng(0)
A = rng.standard_normal((30, 6, 6)); M = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 6))
y = np.einsum("kij,ij->k", A, M)
def call(long):
    res = fit_many(A, y, depth=3, init_scale=[0.1, 0.2], method="descent", lr=1e-3,
                   steps=10**9 if long else 200, num_threads=THREADS)
    return np.concatenate([r.product.ravel() for r in res])
""",
    "trace_estimator": """
from implicitbias import factorization, hessian
rng = np.random.default_rng(0)
A = rng.standard_normal((3000, 30, 30)); layers = factorization.initial_layers((30, 30), 3, width=30)
y = rng.standard_normal(3000)
def call(long):
    return np.array([hessian.hutchinson(layers, A, y, num_matvecs=2000 if long else 3).estimate])
""",
}

# One child per thread count runs every family in turn: "ready <family>" before each long call,
# then "interrupted <monotonic time>" and "same <bool>" (a short call before and after agree).
CHILD = """
import sys, time
import numpy as np
THREADS = int(sys.argv[1])
for family, setup in CALLS.items():
    if family == "trace_estimator" and THREADS > 1:
        continue  # the estimators have no thread option: they run on the calling thread
    exec(setup)
    before = call(False)
    print("ready", family, flush=True)
    try:
        call(True)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    after = call(False)
    print("same", bool(np.array_equal(before, after)), flush=True)
print("done", flush=True)
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_sigint_raises_keyboard_interrupt_within_a_second(threads: int) -> None:
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = f"CALLS = {CALLS!r}\n" + CHILD
    # SIGINT back to its default in the child: a process started with SIGINT ignored (a background job of a
    # non-interactive shell) passes that on, and Python then installs no KeyboardInterrupt handler at all
    proc = subprocess.Popen([sys.executable, "-c", code, str(threads)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None and proc.stderr is not None
    seen = []
    # a lost interrupt must fail the test, not hang it: the child is killed after 10 minutes (the whole case
    # takes seconds), which ends its output and fails the assertions below
    watchdog = threading.Timer(600.0, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            words = line.split()
            if words[0] == "done":
                break
            assert words[0] == "ready", line + proc.stderr.read()
            family = words[1]
            time.sleep(0.3)  # well inside the long call
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            outcome = proc.stdout.readline().split()
            assert outcome and outcome[0] == "interrupted", f"{family}: {outcome} " + proc.stderr.read()
            latency = float(outcome[1]) - sent
            assert latency < 1.0, f"{family}, {threads} threads: KeyboardInterrupt {latency:.3f} s after SIGINT"
            same = proc.stdout.readline().split()
            assert same == ["same", "True"], f"{family}: a call after the interrupt gave a different result"
            seen.append(family)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    expected = [f for f in CALLS if threads == 1 or f != "trace_estimator"]
    assert seen == expected
