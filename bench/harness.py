"""Helpers shared by the benchmark modules: the peer registry, skipping, timing."""

from __future__ import annotations

import importlib

import pytest

# peer name -> module whose import failure skips that peer's benchmarks
PEERS = {"implicitbias": "implicitbias._core", "numpy": "numpy", "scipy": "scipy.integrate",
         "torch": "torch", "jax": "jax", "cvode": "sksundae.cvode"}


def missing(peer):
    """None if peer's library imports, else the reason it does not."""
    try:
        importlib.import_module(PEERS[peer])
    except Exception as exc:  # ImportError, or a broken install raising anything
        return f"{peer} not installed ({type(exc).__name__}: {exc})"
    return None


def need(peer):
    """Skip the calling benchmark if ``peer``'s library cannot be imported."""
    reason = missing(peer)
    if reason:
        pytest.skip(reason)


def rounds(size, full, quick=None):
    return full if size == "full" else (quick if quick is not None else max(1, full // 2))


def timed(benchmark, fn, *, n_rounds=None, warmup=0, group=None, **info):
    """Time fn() with pytest-benchmark and return its result: auto-calibrated
    (many rounds) if n_rounds is None, else pedantic with n_rounds x 1 call."""
    if group:
        benchmark.group = group
    benchmark.extra_info.update(info)
    if n_rounds is None:
        return benchmark(fn)
    return benchmark.pedantic(fn, rounds=n_rounds, warmup_rounds=warmup, iterations=1)
