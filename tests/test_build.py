"""The build has what it was configured with: OpenMP, and every ISA variant of the core.

CI sets ``IMPLICITBIAS_EXPECT_OPENMP=1`` and ``IMPLICITBIAS_EXPECT_ISA=x86-64-v3,x86-64-v4`` so that a
build that silently lost OpenMP or a variant fails here instead of running everything serially or on
the portable core (the thread-independence tests would then pass trivially).
"""

from __future__ import annotations

import importlib
import os

import pytest

import implicitbias as ib
from conftest import expected_isa_variants
from implicitbias import _native

_FEATURE = {"x86-64-v3": "avx2", "x86-64-v4": "avx512"}
_MODULE = {"x86-64-v3": "_core_x86_64_v3", "x86-64-v4": "_core_x86_64_v4"}


def test_openmp_is_present_when_expected():
    if os.environ.get("IMPLICITBIAS_EXPECT_OPENMP") != "1" and not ib.build_info()["openmp"]:
        pytest.skip("built without OpenMP and IMPLICITBIAS_EXPECT_OPENMP is not set")
    assert ib.build_info()["openmp"], "the core was built without OpenMP"
    assert ib.build_info()["max_threads"] >= 1


def test_expected_isa_variants_are_built_importable_and_chosen():
    info = ib.build_info()
    expected = expected_isa_variants()
    if not expected:
        pytest.skip("a portable-only build (no ISA variant installed, IMPLICITBIAS_EXPECT_ISA not set)")
    installed = set(info["cores_installed"]) - {"baseline"}
    assert expected <= installed, f"missing ISA variants: {expected - installed}"
    runnable = [v for v in ("x86-64-v4", "x86-64-v3") if v in expected and _native._baseline.cpu_supports(_FEATURE[v])]
    for v in runnable:  # every one this CPU can run imports and has the package version
        _native.check_core_version(importlib.import_module(f"implicitbias.{_MODULE[v]}"))
    if os.environ.get("IMPLICITBIAS_ISA", "").strip() == "":
        assert info["isa"] == (runnable[0] if runnable else "baseline"), "the fastest runnable core was not chosen"
