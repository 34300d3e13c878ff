"""Shared options, fixtures and the peer registry of the pytest-benchmark suite.

    pytest bench/ --bench-size=quick --benchmark-json=bench/results.json
    python bench/render.py bench/results.json

Only `pytest bench/` collects this directory: pyproject's testpaths is ["tests"].
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import peers, harness` in any import mode

from harness import need


def pytest_addoption(parser):
    g = parser.getgroup("implicitbias benchmarks")
    g.addoption("--bench-size", choices=("quick", "full"), default=os.environ.get("IB_BENCH_SIZE", "full"),
                help="quick: ~10x fewer steps and fewer rounds (smoke run); full (default; env IB_BENCH_SIZE)")
    g.addoption("--bench-note", default=os.environ.get("IB_BENCH_NOTE", ""),
                help="free text stored in the JSON's machine_info (e.g. 'machine shared')")


def pytest_configure(config):
    config._ib_bench_load_start = list(os.getloadavg())  # machine_info is assembled at the session's end
    # peers (jax, torch) may warn at import or on use; the repo's filterwarnings=error is for tests/
    config.addinivalue_line("filterwarnings", "default")


@pytest.fixture(scope="session")
def size(request):
    """"quick" or "full"."""
    return request.config.getoption("--bench-size")


@pytest.fixture(scope="session")
def ib():
    need("implicitbias")
    import implicitbias
    return implicitbias


@pytest.fixture(scope="session")
def dgemm_gflops(size):
    """The machine's float64 matmul rate (NumPy, n x n, best of 3) in GFLOP/s."""
    n = 2000 if size == "full" else 1000
    a = np.random.default_rng(0).standard_normal((n, n))
    a @ a
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


@pytest.fixture
def load(request):
    """"quiet", or "busy": another process spins one core for the benchmark's duration."""
    proc = None
    if request.param == "busy":
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.3)  # let it get scheduled before timing starts
    try:
        yield request.param
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def pytest_benchmark_update_machine_info(config, machine_info):
    info = {"bench_size": config.getoption("--bench-size"), "note": config.getoption("--bench-note"),
            "loadavg_at_start": getattr(config, "_ib_bench_load_start", None), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
        info["cpu_model"] = next(ln.split(":", 1)[1].strip() for ln in text.splitlines()
                                 if ln.startswith("model name"))
        flags = next(ln for ln in text.splitlines() if ln.startswith("flags")).split()
        info["simd"] = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    except (OSError, StopIteration):
        pass
    for mod in ("implicitbias", "numpy", "scipy", "torch", "jax"):
        try:
            m = importlib.import_module(mod)
            info[mod] = m.__version__
        except Exception:
            info[mod] = None
    try:
        import implicitbias
        info["implicitbias_file"] = implicitbias.__file__
        info["implicitbias_build"] = implicitbias.build_info()
    except Exception as exc:
        info["implicitbias_build"] = f"unavailable: {exc}"
    machine_info["implicitbias_bench"] = info


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["machine_info"].setdefault("implicitbias_bench", {})["loadavg_at_end"] = list(os.getloadavg())
