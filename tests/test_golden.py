"""Golden replays: the recorded outputs of a fixed set of small runs, replayed with every core variant.

``tests/golden/record.py`` runs the cases (every family, method and solver, the default ``solver=None``
path included) on stored inputs (``tests/golden/inputs.npz``) and stores the outputs per core variant
with the build identity of the core that made them. Here the same cases run again in a subprocess per
variant (the variant is chosen at import; NumPy's SIMD dispatch and the OpenBLAS kernels pinned the
same way as when recording) and are compared under the rule of docs/numerics.md, "Golden replays: when
numbers must be bitwise":

- same variant and same identity (core build: variant, Eigen's SIMD sets, compiler and version, Eigen
  version; Python side: NumPy dispatch and BLAS, both pinned): every output **bitwise**;
- otherwise (another compiler, another Eigen, or a variant without a recording of its own, compared
  with the other variants' recordings): every entry within ``CROSS_RTOL`` of the recorded one
  (``|a - b| <= CROSS_RTOL |b|``, zeros, NaNs and infinities where the recording has them), except the
  cases in ``NOT_COMPARABLE``, whose discrete decisions differ between builds (status only).

A variant the build should contain (``IMPLICITBIAS_EXPECT_ISA``, tests/conftest.py) that this CPU can run
fails the test when it has no recording of its own; the rule that applied is printed at the end of the
session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import implicitbias._native as native
from conftest import expected_isa_variants

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
sys.path.insert(0, HERE)
import record  # noqa: E402

sys.path.remove(HERE)

VARIANTS = {"baseline": None, "x86-64-v3": "avx2", "x86-64-v4": "avx512"}  # variant -> CPU feature it needs

# The cross-build tolerance, per entry. Measured between the baseline and x86-64-v3 recordings (same
# compiler, no FMA vs FMA and 2- vs 4-wide reductions in Eigen's kernels): outside NOT_COMPARABLE the
# largest per-entry relative difference is 2.8e-6 (diag.gd.*.separate.L2: 300 descent steps on a
# weight-normalized net with two radii), then 8.1e-7 (dopri5, separate, L2: its final loss), 5.0e-7
# (steepest linear flow: the alignment history), below 2.5e-7 for every other case and below 1e-10
# for the descent and factorization cases. 1e-5 is 3.5x the largest and 12x the second: rounding
# moved by one ulp per operation and amplified along a trajectory stays there, a wrong formula, sign
# or branch gives O(1) differences (hand mutations: docs/numerics.md).
CROSS_RTOL = 1e-5

# Cases whose discrete decisions change between builds, so that no per-entry tolerance separates
# rounding from a bug (measured baseline vs x86-64-v3). They are compared bitwise with a recording of
# the same identity (each variant has one); across builds only their statuses and the set of keys.
NOT_COMPARABLE = {
    "diag.flow.bdf.": "BDF: Newton convergence and order selection are discrete; step counts move "
                      "(1264 vs 1489 steps), final losses at the 1e-15 level differ by up to 4x",
    "diag.fit.default.plain/": "the default solver is the BDF (see diag.flow.bdf.)",
    "diag.fit.default.nonneg/": "the default solver is the BDF (see diag.flow.bdf.)",
    "diag.flow.dopri5.": "explicit dopri5 on a stiff flow runs at its stability limit: since records come from "
                         "dense output no record time re-synchronizes the steps, so rejections follow rounding "
                         "(n_rejected up to 4% apart) and a run cut at t_max ends at another loss (rel. 9e-4)",
    "steep.diagonal.": "the initial outputs u^2 - v^2 are exactly 0 in one build and +-1e-17 in the "
                       "other: accuracy 0 vs 0.7, zero patterns of the margins differ",
    "steep.linear.norms.norm1/": "sign/l1 steps move coordinates that are 0 up to rounding (theta entry "
                                 "-2e-17 vs 1e-16)",
    "steep.linear.adam_signum/": "signum moves coordinates that are 0 up to rounding (zero patterns)",
    "steep.linear.schedules/": "the loss-based schedule compares losses to pick steps (rel. 1e-2)",
    "steep.relu2.schedules/": "the loss-based schedule compares losses to pick steps (rel. 8e-2)",
    "steep.mlp.schedules/": "the loss-based schedule compares losses to pick steps (50 vs 51 steps)",
}


def not_comparable(key: str) -> str | None:
    return next((reason for prefix, reason in NOT_COMPARABLE.items() if key.startswith(prefix)), None)


# --------------------------------------------------------------------------- the rule
def same_identity(recorded: dict[str, str], current: dict[str, str]) -> bool:
    """Whether the bitwise rule applies: every identity field of the recording but the informational
    ones agrees. A field the core reports and the recording lacks (it predates the field, e.g.
    ``compile_flags``) does not make the rule weaker: the replay stays bitwise and fails, asking for a
    new recording, if the numbers moved."""
    return all(current.get(k) == v for k, v in recorded.items() if k not in record.INFO_ONLY)


def bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """The same shape and the same bits (a -0.0 for a 0.0 or another NaN payload is a difference)."""
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind == "U":
        return bool(np.array_equal(a, b))
    return bool(np.array_equal(np.ascontiguousarray(a, np.float64).view(np.uint64),
                               np.ascontiguousarray(b, np.float64).view(np.uint64)))


def within_rtol(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    """``|a - b| <= rtol |b|`` entry by entry, with exact zeros, NaNs and infinities (and their signs)
    in the same places; ``b`` is the recording."""
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind == "U":
        return bool(np.array_equal(a, b))
    special = ~np.isfinite(b) | (b == 0)
    if not np.array_equal(special, ~np.isfinite(a) | (a == 0)):
        return False
    if not np.array_equal(a[special], b[special], equal_nan=True):  # inf signs, NaN places, zeros
        return False
    return bool(np.all(np.abs(a[~special] - b[~special]) <= rtol * np.abs(b[~special])))


def mismatches(got: dict[str, np.ndarray], expected: dict[str, np.ndarray], bitwise: bool) -> list[str]:
    """The keys that break the rule (missing and extra keys included), described."""
    out = [f"{k}: missing from the replay" for k in sorted(set(expected) - set(got))]
    out += [f"{k}: not in the recording" for k in sorted(set(got) - set(expected))]
    for k in sorted(set(got) & set(expected)):
        a, b = got[k], expected[k]
        if bitwise:
            ok = bitwise_equal(a, b)
        elif not_comparable(k):
            ok = a.dtype.kind != "U" or bool(np.array_equal(a, b))  # statuses only
        else:
            ok = within_rtol(a, b, CROSS_RTOL)
        if not ok:
            out.append(f"{k}: {_describe(a, b)}")
    return out


def _describe(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shape {a.shape} vs recorded {b.shape}"
    if a.dtype.kind == "U" or b.dtype.kind == "U":
        return f"{a} vs recorded {b}"
    special = ~np.isfinite(b) | (b == 0)
    if not np.array_equal(special, ~np.isfinite(a) | (a == 0)) or not np.array_equal(a[special], b[special],
                                                                                       equal_nan=True):
        return "zeros, NaNs or infinities in other places"
    rel = float(np.max(np.abs(a[~special] - b[~special]) / np.abs(b[~special]), initial=0.0))
    return f"max rel. difference {rel:.2e}" if rel else "the same numbers, other bits (-0.0 or a NaN payload)"


# --------------------------------------------------------------------------- the replays
def _replay(isa: str, tmp_path: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    out_file = tmp_path / f"replay_{isa}.npz"
    script = (f"import sys; sys.path.insert(0, {HERE!r}); import record; "
              "record.save(sys.argv[1], record.run_all(), record.identity())")
    env = record.pinned_env(dict(os.environ, IMPLICITBIAS_ISA=isa))
    subprocess.run([sys.executable, "-c", script, str(out_file)], check=True, env=env, cwd=str(tmp_path))
    got, ident = record.load(str(out_file))
    assert ident["isa"] == isa, f"IMPLICITBIAS_ISA={isa} loaded the {ident['isa']} core"
    return got, ident


@pytest.mark.parametrize("isa", list(VARIANTS))
def test_outputs_match_recording(isa: str, tmp_path: Any, golden_report: list[str]) -> None:
    feature = VARIANTS[isa]
    if feature and not native._baseline.cpu_supports(feature):
        golden_report.append(f"{isa}: not replayed, this CPU lacks {feature}")
        pytest.skip(f"this CPU cannot run the {isa} core (no {feature})")
    expected_here = isa in expected_isa_variants()
    if isa not in native.installed_cores():
        if expected_here:
            pytest.fail(f"the {isa} core is expected (IMPLICITBIAS_EXPECT_ISA) but not installed")
        golden_report.append(f"{isa}: not replayed, core not installed")
        pytest.skip(f"the {isa} core is not installed")
    got, ident = _replay(isa, tmp_path)
    if os.path.exists(record.path_for(isa)):
        expected, recorded = record.load(record.path_for(isa))
        bitwise = same_identity(recorded, ident)
        differ = {k: (recorded.get(k), ident.get(k)) for k in sorted(set(recorded) | set(ident))
                  if k not in record.INFO_ONLY and recorded.get(k) != ident.get(k)}
        newer = sorted(set(ident) - set(recorded) - set(record.INFO_ONLY))
        predates = f"; the recording predates {', '.join(newer)}" if newer else ""
        rule = f"bitwise (same identity{predates})" if bitwise else (
            f"per-entry rtol {CROSS_RTOL:g} (identity differs, recorded vs here: {differ})")
        bad = mismatches(got, expected, bitwise)
        golden_report.append(f"{isa}: {len(expected)} outputs vs outputs_{isa}.npz, {rule}: "
                             f"{'ok' if not bad else f'{len(bad)} differ'}")
        assert not bad, (f"{len(bad)} of {len(expected)} outputs break the rule [{rule}], e.g. {bad[:8]}"
                         + (f"; record again: IMPLICITBIAS_ISA={isa} python tests/golden/record.py" if newer else ""))
        return
    # no recording of its own (the x86-64-v4 core cannot run on the machine that made the others):
    # the cross-build rule against every recording there is, then a loud failure if the build should
    # contain this variant, since it could have been recorded on this CPU
    others = [v for v in VARIANTS if v != isa and os.path.exists(record.path_for(v))]
    assert others, "no golden recording at all"
    bad = {v: mismatches(got, record.load(record.path_for(v))[0], bitwise=False) for v in others}
    golden_report.append(f"{isa}: no recording of its own; per-entry rtol {CROSS_RTOL:g} vs "
                         + ", ".join(f"{v} ({len(b)} differ)" for v, b in bad.items()))
    assert not any(bad.values()), {v: b[:8] for v, b in bad.items() if b}
    if expected_here:
        pytest.fail(f"no golden recording for {isa}, which this build contains and this CPU runs: record it "
                    f"with IMPLICITBIAS_ISA={isa} python tests/golden/record.py and commit "
                    f"tests/golden/outputs_{isa}.npz (the cross-build rule passed)")


# --------------------------------------------------------------------------- the rule itself
def test_recordings_agree_across_variants() -> None:
    """The recordings of different variants agree under the cross-build rule (the measurement that set
    CROSS_RTOL, kept): a recording made with a broken core or a changed case fails it."""
    present = [v for v in VARIANTS if os.path.exists(record.path_for(v))]
    assert "baseline" in present and len(present) >= 2, present
    base, _ = record.load(record.path_for("baseline"))
    for v in present[1:]:
        other, ident = record.load(record.path_for(v))
        assert ident["isa"] == v
        bad = mismatches(other, base, bitwise=False)
        assert not bad, f"{v} vs baseline: {bad[:8]}"
    for prefix in NOT_COMPARABLE:  # no stale exception
        assert any(k.startswith(prefix) for k in base), prefix


def test_recordings_store_their_identity_and_inputs() -> None:
    inputs = record.load_inputs()
    assert {"p.A", "p.y", "pn.A", "d.X", "ms.A", "mc.A", "layers.0"} <= set(inputs)
    for v in VARIANTS:
        if os.path.exists(record.path_for(v)):
            outputs, ident = record.load(record.path_for(v))
            assert ident["isa"] == v and {"simd", "compiler", "eigen", "blas", "numpy_dispatch"} <= set(ident)
            assert ident["numpy_dispatch"] == "baseline", "recorded without pinning NumPy's dispatch"
            assert not any(k.startswith("ref.") for k in outputs), "reference solvers are not core outputs"
            assert any(k.startswith("diag.flow.bdf.joint.L3/") for k in outputs)
            assert any(k.startswith("diag.fit.default.plain/") for k in outputs)


def test_identity_decides_the_rule() -> None:
    recorded = {"isa": "baseline", "simd": "SSE, SSE2", "compiler": "GCC 12.2.0", "eigen": "3.4.1",
                "blas": "scipy-openblas 0.3.31 coretype=Nehalem", "numpy_dispatch": "baseline", "numpy": "2.4.6",
                "machine": "x86_64"}
    assert same_identity(recorded, dict(recorded, numpy="2.5.0", machine="AMD64"))  # information only
    assert same_identity(recorded, dict(recorded, compile_flags="-O3"))  # recorded before the field existed
    for field, other in (("compiler", "GCC 13.1.0"), ("eigen", "3.4.0"), ("simd", "AVX512, FMA"),
                         ("blas", "mkl 2024"), ("numpy_dispatch", "X86_V3,X86_V4")):
        assert not same_identity(recorded, dict(recorded, **{field: other})), field
    assert not same_identity(dict(recorded, compile_flags="-O3"), dict(recorded, compile_flags="-O2"))
    assert not same_identity(dict(recorded, compile_flags="-O3"), recorded)  # the core stopped reporting it


def _perturbed(x: np.ndarray, i: int, factor: float = 0.0, ulps: int = 0) -> np.ndarray:
    y = np.array(x, dtype=np.float64, copy=True).ravel()
    y[i] = np.nextafter(y[i], np.inf) if ulps else y[i] * (1.0 + factor)
    return y.reshape(x.shape)


def test_the_rule_can_fail() -> None:
    """Each way an output can change is caught by the rule that applies (hand mutations, kept)."""
    recorded, _ = record.load(record.path_for("baseline"))
    # two whole cases (a BDF one, held bitwise only, and a Rosenbrock one) and their neighbours
    expected = {k: v for k, v in recorded.items() if k.startswith(("diag.flow.bdf.nonneg0", "diag.flow.rosw.None"))}
    key = "diag.flow.bdf.nonneg0.L3/1.x"
    got = dict(expected)
    assert mismatches(got, expected, bitwise=True) == [] and mismatches(got, expected, bitwise=False) == []
    one_ulp = dict(expected, **{key: _perturbed(expected[key], 3, ulps=1)})
    assert mismatches(one_ulp, expected, bitwise=True) and not mismatches(one_ulp, expected, bitwise=False)
    key = "diag.flow.rosw.None.L3/1.history.loss"  # a comparable case, entries spanning decades
    small = int(np.argmin(np.where(expected[key] != 0, np.abs(expected[key]), np.inf)))
    for i in (0, small):  # the largest entry and the smallest: the rule is per entry, not per array
        far = dict(expected, **{key: _perturbed(expected[key], i, factor=10 * CROSS_RTOL)})
        assert mismatches(far, expected, bitwise=False) == [f"{key}: max rel. difference 1.00e-04"]
        near = dict(expected, **{key: _perturbed(expected[key], i, factor=0.5 * CROSS_RTOL)})
        assert not mismatches(near, expected, bitwise=False)
    missing = {k: v for k, v in expected.items() if k != key}
    assert mismatches(missing, expected, bitwise=False) == [f"{key}: missing from the replay"]
    status = "diag.flow.bdf.nonneg0.L2/0.status"
    flipped = dict(expected, **{status: np.array("max_time")})
    assert mismatches(flipped, expected, bitwise=False) and mismatches(flipped, expected, bitwise=True)


@pytest.mark.parametrize("change", ["zero", "nan", "inf_sign", "neg_zero", "shape"])
def test_patterns_are_exact_under_the_tolerance(change: str) -> None:
    b = np.array([1.0, 0.0, np.inf, np.nan, 1e-300])
    a = b.copy()
    if change == "zero":
        a[1] = 1e-300  # a tiny value where the recording has an exact zero
    elif change == "nan":
        a[3] = 1.0
    elif change == "inf_sign":
        a[2] = -np.inf
    elif change == "neg_zero":  # -0.0 equals 0.0 as a number: same under the tolerance, not bitwise
        a[1] = -0.0
        assert within_rtol(a, b, CROSS_RTOL) and not bitwise_equal(a, b)
        return
    else:
        a = np.append(a, 1.0)
    assert not within_rtol(a, b, CROSS_RTOL)
    assert not bitwise_equal(a, b)
