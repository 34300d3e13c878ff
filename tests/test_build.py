"""The build has what it was configured with: OpenMP, and every ISA variant of the core.

CI sets ``IMPLICITBIAS_EXPECT_OPENMP=1`` and ``IMPLICITBIAS_EXPECT_ISA=x86-64-v3,x86-64-v4`` so that a
build that silently lost OpenMP or a variant fails here instead of running everything serially or on
the portable core (the thread-independence tests would then pass trivially).
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

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


# Registers each core may not use: the baseline core runs on every x86-64 CPU (SSE2), the AVX2 core
# on CPUs without AVX-512.  Each core compiles all of its translation units with its own -march flags
# and links no object of another core (CMakeLists.txt); an object or inline Eigen code shared across
# the variants would put wider instructions into a narrower core, which crashes on the CPUs it is for.
_FORBIDDEN_REGISTERS = {"_core.": ("%ymm", "%zmm"), "_core_x86_64_v3.": ("%zmm",)}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the ISA variants are x86-64 only")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils) to disassemble the cores")
def test_no_core_contains_instructions_of_a_wider_variant():
    package = Path(ib.__file__).parent
    checked = 0
    for core in sorted(package.glob("_core*.so")):
        forbidden = next((regs for prefix, regs in _FORBIDDEN_REGISTERS.items() if core.name.startswith(prefix)), ())
        if not forbidden:
            continue  # the AVX-512 core may use every register
        listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(core)], check=True,
                                 capture_output=True, text=True).stdout
        wider = [line.strip() for line in listing.splitlines() if any(r in line for r in forbidden)]
        assert not wider, f"{core.name} uses {forbidden} ({len(wider)} instructions), e.g. {wider[:3]}"
        checked += 1
    assert checked >= 1, f"no baseline core found in {package}"
