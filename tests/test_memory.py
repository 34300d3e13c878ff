"""No memory growth over repeated calls of each family (issue 12).

Each family's call (one thread: a parallel region's fixed cost would dominate) runs a few times
to warm up (allocator pools, import-time caches, memoized initial draws), then ``N_CALLS`` more
times; the resident set (current RSS from /proc, or the peak from getrusage elsewhere) and the
Python heap (tracemalloc) must not grow by more than a bound that a real per-call leak would
exceed: every call returns 10-30 KB of records and state, so a leak of the records, their
histories or the C++ buffers grows the RSS by ~N_CALLS x that. The C heap in use (glibc's ``mallinfo2``)
is bounded too: it sees a C++ leak of 2 KiB per call (``test_the_bound_would_catch_a_cpp_leak``, through a
core function that leaks on purpose), which the RSS can miss when the leak reuses memory freed earlier.
``tools/memory_growth.py`` runs the same calls 5,000 times and prints the figures.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from implicitbias import diagonal, factorization, hessian, steepest

N_CALLS = 100
RSS_BOUND = 1024 * 1024          # bytes, over N_CALLS calls
PY_HEAP_BOUND = 256 * 1024      # bytes of Python allocations still alive after N_CALLS calls
# bytes of malloc'ed memory (C++ buffers, NumPy data) still in use after N_CALLS calls: measured 0-0.8 KiB
C_HEAP_BOUND = 64 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], int] | None:
    """Bytes the C allocator has handed out and not taken back (glibc >= 2.33: ``mallinfo2``), or None."""
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        m = fn()
        return int(m.uordblks + m.hblkhd)
    return in_use


C_HEAP_IN_USE = _mallinfo2()


def _workloads() -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, 20)) / np.sqrt(10)
    xs = np.zeros(20)
    xs[:2] = 1.0
    y = A @ xs
    X = rng.standard_normal((12, 4))
    labels = np.sign(X[:, 0] + 0.1)
    Af = rng.standard_normal((12, 4, 4))
    yf = np.einsum("kij,ij->k", Af, np.outer(rng.standard_normal(4), rng.standard_normal(4)))
    layers = factorization.initial_layers((4, 4), 2, width=4)
    return {
        "diagonal_descent": lambda: diagonal.fit_many(A, y, init_scale=[0.1, 0.2], method="descent", lr=0.05,
                                                      steps=200, n_record=200),
        "diagonal_flow": lambda: diagonal.fit_many(A, y, init_scale=[0.1, 0.2], weight_norm=[None, "joint"],
                                                   t_max=0.5, n_record=200, num_threads=1),
        "steepest": lambda: steepest.fit_many(X, labels, "linear", norm=["l2", "linf", 3.0], lr=0.05, steps=50,
                                              n_record=200, num_threads=1),
        "steepest_flow": lambda: steepest.fit_many(X, labels, "linear", norm=["l2", 3.0], method="flow", t_max=0.2,
                                                   n_record=200, num_threads=1),
        "factorization": lambda: factorization.fit_many(Af, yf, depth=2, init_scale=[0.1, 0.2], lr=0.02, steps=30,
                                                        n_record=200, num_threads=1),
        "trace_estimator": lambda: hessian.hutchpp(layers, Af, yf, num_matvecs=12),
    }


def current_rss() -> int:
    """Resident set size in bytes: /proc/self/statm on Linux, else the peak from getrusage."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * resource.getpagesize()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def growth(call: Callable[[], object], n_calls: int, warmup: int = 20) -> tuple[int, int, int]:
    """(RSS growth, Python heap growth, C heap growth) in bytes over n_calls calls after warmup calls.

    The C heap is what malloc has handed out and not taken back (0 where ``mallinfo2`` is missing): unlike
    the RSS it does not hide a leak that reuses memory freed earlier in the process."""
    for _ in range(warmup):
        call()
    gc.collect()
    tracemalloc.start()
    try:
        heap0 = tracemalloc.get_traced_memory()[0]
        c0 = C_HEAP_IN_USE() if C_HEAP_IN_USE else 0
        rss0 = current_rss()
        for _ in range(n_calls):
            call()
        gc.collect()
        c1 = C_HEAP_IN_USE() if C_HEAP_IN_USE else 0
        return current_rss() - rss0, tracemalloc.get_traced_memory()[0] - heap0, c1 - c0
    finally:
        tracemalloc.stop()


WORKLOADS = _workloads()


@pytest.mark.parametrize("family", sorted(WORKLOADS))
def test_repeated_calls_do_not_grow_memory(family: str) -> None:
    rss, heap, c_heap = growth(WORKLOADS[family], N_CALLS)
    assert rss < RSS_BOUND, f"{family}: RSS grew by {rss / 1024:.0f} KiB over {N_CALLS} calls"
    assert heap < PY_HEAP_BOUND, f"{family}: Python heap grew by {heap / 1024:.0f} KiB over {N_CALLS} calls"
    assert c_heap < C_HEAP_BOUND, f"{family}: C heap grew by {c_heap / 1024:.0f} KiB over {N_CALLS} calls"


def test_the_bound_would_catch_a_python_leak() -> None:
    # a leak of what one call returns, kept alive across calls, exceeds the bounds
    kept: list[object] = []
    call = WORKLOADS["diagonal_descent"]
    rss, heap, _ = growth(lambda: kept.append(call()), N_CALLS, warmup=1)
    assert heap > PY_HEAP_BOUND or rss > RSS_BOUND


@pytest.mark.skipif(C_HEAP_IN_USE is None, reason="needs glibc's mallinfo2 (Linux, glibc >= 2.33)")
@pytest.mark.parametrize("family", ["diagonal_descent", "factorization"])
def test_the_bound_would_catch_a_cpp_leak(family: str) -> None:
    """A leak inside the core that Python never sees (tracemalloc does not count it): 2 KiB of C++ memory
    never freed per call, a tenth of one call's records, exceeds the C heap bound over N_CALLS calls. (The
    RSS alone would miss it: the leaked blocks reuse memory freed earlier in the process.)"""
    from implicitbias._native import core

    call = WORKLOADS[family]
    _, heap, c_heap = growth(lambda: (call(), core._leak_for_tests(2 * 1024)), N_CALLS)
    assert heap < PY_HEAP_BOUND  # invisible to the Python heap
    assert c_heap > C_HEAP_BOUND, f"a C++ leak of 2 KiB per call grew the C heap by {c_heap / 1024:.0f} KiB only"
