#!/usr/bin/env bash
# The portable build: the core as a compiler without OpenMP (macOS clang) or a CPU without the x86
# variants (aarch64) would build it, checked here.
#
#   1. no x86 intrinsic in the C++ sources (the SIMD code is Eigen's, chosen by the compiler flags;
#      the x86 CPU probe in cpp/bindings/module.cpp is guarded and answers False elsewhere);
#   2. a plain CMake build of the portable core alone with -DIMPLICITBIAS_OPENMP=OFF and
#      -DIMPLICITBIAS_ISA_VARIANTS=OFF (build/portable-no-openmp), linked without libgomp, compiled by
#      Clang (clang++ on PATH, or PORTABLE_CXX; Debian's clang package) so that code only GCC accepts
#      is caught here; PORTABLE_CXX=c++ builds it with the default compiler instead;
#   3. a smoke test of that core (every family runs; one thread; no OpenMP reported);
#   4. the golden cases (tests/golden/record.py) run with this core and with the OpenMP build of the
#      same baseline core (GCC), compared BITWISE (every output of every case): the results depend
#      neither on OpenMP nor on the compiler (x86-64 baseline code has no FMA to contract). The
#      OpenMP core is REFERENCE_CORE (a _core*.so file) if set, else the baseline core of the implicitbias installed in PYTHON's environment (CI: the one step 1 installed), else a
#      build of it in build/portable-openmp;
#   5. tests/test_golden.py (the recorded outputs), test_native.py and test_stubs.py against this core,
#      with the project's pytest configuration.
#
# Usage: tools/portable_check.sh      Environment: PORTABLE_CXX (default clang++ if on PATH, else
# the default C++ compiler); PYTHON (default python3) with numpy, scipy, tqdm,
# pytest, pybind11, cmeel-eigen, cmake and ninja (the build tools are pip-installed if missing).
# ccache is used when it is on PATH; every step prints its wall time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
build="$root/build/portable-no-openmp"
work=$(mktemp -d "${TMPDIR:-/tmp}/implicitbias-portable.XXXXXX")
trap 'rm -rf "$work"' EXIT
step_start=0
step() { step_start=$SECONDS; echo "== $* ($(date -u +%H:%M:%S))"; }
done_step() { echo "   took $((SECONDS - step_start)) s"; }

step "no x86 intrinsics in cpp/"
if grep -rnE '#include *<[a-z]*intrin\.h>|\b_mm(256|512)?_[a-z]' "$root/cpp"; then
  echo "x86 intrinsics found (above): give them a portable fallback" >&2
  exit 1
fi
done_step

compiler=${PORTABLE_CXX:-}
if [ -z "$compiler" ] && command -v clang++ >/dev/null; then compiler=clang++; fi
step "build the portable core without OpenMP (compiler: ${compiler:-default})"
"$python" -c 'import pybind11, cmeel, cmake, ninja' 2>/dev/null || "$python" -m pip install --quiet pybind11 cmeel-eigen cmake ninja
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
bindir=$(dirname "$(command -v "$python")")
compiler_args=()
if [ -n "$compiler" ]; then compiler_args=(-DCMAKE_CXX_COMPILER="$(command -v "$compiler")"); fi
rm -f "$build/CMakeCache.txt"  # the compiler of a previous run must not stick
PATH="$bindir:$PATH" cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${compiler_args[@]}" \
  -DIMPLICITBIAS_OPENMP=OFF -DIMPLICITBIAS_ISA_VARIANTS=OFF -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" "${launcher[@]}" >/dev/null
PATH="$bindir:$PATH" cmake --build "$build" -j "${BUILD_JOBS:-2}"
core=$(ls "$build"/_core*.so)
if ldd "$core" | grep -i -E 'gomp|libomp|iomp'; then
  echo "$core links an OpenMP runtime although IMPLICITBIAS_OPENMP=OFF" >&2
  exit 1
fi
mkdir -p "$work/pkg"
cp -r "$root/python/implicitbias" "$work/pkg/"
find "$work/pkg/implicitbias" -name '*.so' -delete
cp "$core" "$work/pkg/implicitbias/"
done_step

step "smoke test of the no-OpenMP portable core"
cd "$work"
PYTHONPATH="$work/pkg" PORTABLE_COMPILER="$compiler" "$python" - <<'EOF'
import os
import numpy as np
import implicitbias as ib
import implicitbias._native as native

info = ib.build_info()
print("  ", info, "compiler:", native._baseline.compiler)
if os.environ["PORTABLE_COMPILER"].startswith("clang"):
    assert native._baseline.compiler.startswith("Clang"), native._baseline.compiler
assert info["isa"] == "baseline" and info["cores_installed"] == ["baseline"], info
assert not info["openmp"] and info["openmp_version"] is None and info["max_threads"] == 1, info
d = ib.data.sparse_regression(20, 40, 3, seed=0)
r = ib.diagonal.fit(d.A, d.y, init_scale=0.1, x_star=d.x_star)
assert r.success and np.linalg.norm(r.x - ib.reference.diagonal_flow_limit(d.A, d.y, 0.1)) < 1e-5
runs = dict(init_scale=[0.05, 0.1, 0.2], method="descent", lr=0.05, steps=500)
a = ib.diagonal.fit_many(d.A, d.y, num_threads=1, **runs)
b = ib.diagonal.fit_many(d.A, d.y, num_threads=4, **runs)  # no OpenMP: serial, the same bits
assert all(np.array_equal(x.x, y.x) for x, y in zip(a, b))
c = ib.data.separable(n_samples=10, dim=6, seed=0)
s = ib.steepest.fit(c.X, c.y, model="linear", norm="l2", normalized=True, lr=0.1, steps=2000)
assert s.margin("l2") > 0.9 * ib.reference.max_margin(c.X, c.y, "l2").margin
m = ib.data.matrix_sensing(shape=(5, 5), rank=1, n_measurements=20, seed=0)
f = ib.factorization.fit(m.A, m.y, depth=2, width=5, init_scale=0.1, lr=0.05, steps=2000)
assert np.isfinite(f.loss) and f.loss < 1e-3 * 0.5 * float(m.y @ m.y)
print("   smoke test passed: every family runs on the serial portable core")
EOF
done_step

step "golden cases: no OpenMP (portable compiler) vs OpenMP (GCC), bitwise"
reference=${REFERENCE_CORE:-}
if [ -z "$reference" ]; then
  reference=$(cd "$work" && "$python" -c 'import implicitbias._native as n; print(n._baseline.__file__)' 2>/dev/null || true)
  case "$reference" in "$root"/python/*) reference="" ;; esac  # an installed package, never the source tree
fi
if [ -z "$reference" ]; then
  echo "   no installed implicitbias: building the OpenMP baseline core in build/portable-openmp"
  PATH="$bindir:$PATH" cmake -S "$root" -B "$root/build/portable-openmp" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DIMPLICITBIAS_OPENMP=ON -DIMPLICITBIAS_ISA_VARIANTS=OFF -DPython_EXECUTABLE="$(command -v "$python")" \
    -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" "${launcher[@]}" >/dev/null
  PATH="$bindir:$PATH" cmake --build "$root/build/portable-openmp" -j "${BUILD_JOBS:-2}"
  reference=$(ls "$root"/build/portable-openmp/_core*.so)
fi
echo "   OpenMP reference core: $reference"
mkdir -p "$work/ref"
cp -r "$root/python/implicitbias" "$work/ref/"
find "$work/ref/implicitbias" -name '*.so' -delete
cp "$reference" "$work/ref/implicitbias/"
cd "$work"
for which in pkg ref; do
  PYTHONPATH="$work/$which:$root/tests/golden" IMPLICITBIAS_ISA=baseline "$python" - "$work/$which.npz" <<'EOF'
import sys
import numpy as np
import record
import implicitbias as ib
info = ib.build_info()
assert info["isa"] == "baseline", info
print(f"   {info['core_file']}: OpenMP {info['openmp']}, {info['max_threads']} threads")
np.savez(sys.argv[1], **record.run_all())
EOF
done
"$python" - "$work/pkg.npz" "$work/ref.npz" <<'EOF'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert sorted(a.files) == sorted(b.files)
differ = [k for k in a.files
          if not (a[k].shape == b[k].shape and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind != "U"))]
assert not differ, f"{len(differ)} of {len(a.files)} outputs differ without OpenMP, e.g. {differ[:10]}"
cases = {k.split("/")[0] for k in a.files}
print(f"   {len(a.files)} outputs of {len(cases)} cases are bitwise the same with and without OpenMP (this core's compiler vs the reference's)")
EOF
done_step

step "recorded golden outputs and the core's API, against the no-OpenMP core"
mkdir -p "$work/run"
cp -r "$root/tests" "$work/run/tests"
cp "$root/pyproject.toml" "$work/run/"  # the project's pytest configuration (strict markers, warnings as errors)
cd "$work/run"
PYTHONPATH="$work/pkg" "$python" -m pytest -q -p no:cacheprovider tests/test_golden.py tests/test_native.py tests/test_stubs.py
done_step
