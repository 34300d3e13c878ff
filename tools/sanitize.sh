#!/usr/bin/env bash
# Builds the baseline core with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake option IMPLICITBIAS_SANITIZE=ON) and runs the test suite, or the files
# given as arguments, against it; any sanitizer report fails the run.
#
#   tools/sanitize.sh                       # the whole suite
#   tools/sanitize.sh --quick               # the short subset (SUBSET below)
#   tools/sanitize.sh tests/test_batch.py   # chosen files / pytest arguments
#
# Environment: PYTHON (default: python3), BUILD_DIR (default: build-sanitize).
# Requires GCC's libasan/libubsan (Debian/Ubuntu: part of g++).
# The sanitized core goes into a copy of the package under $BUILD_DIR/pkg, so
# the source tree and any installed implicitbias are left alone.  libasan is
# preloaded (CPython itself is not instrumented); leak detection is off
# because CPython keeps its allocations until exit; UBSan halts on its first
# report; PYTHONMALLOC=malloc lets ASan see every Python allocation too.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUILD_DIR=${BUILD_DIR:-build-sanitize}
# A short subset that drives every kernel: the three families' loops (fixed
# step, lanes, rosw, dopri5, steepest, factorization), batches over threads,
# the trace estimators, the numerical edge cases and the interrupts.
SUBSET=(tests/test_batch.py tests/test_numerics.py tests/test_interrupt.py tests/test_hessian.py
        tests/test_factorization.py)
# Always left out: the golden outputs are bitwise for the -O3 cores (this core
# is built -O1), and ASan's quarantine of freed memory makes RSS grow.
SKIP=(--ignore=tests/test_golden.py --ignore=tests/test_memory.py)

args=("$@")
if [[ ${1:-} == --quick ]]; then args=("${SUBSET[@]}" "${@:2}"); fi
if [[ ${#args[@]} -eq 0 ]]; then args=(tests); fi

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMPLICITBIAS_SANITIZE=ON \
  -DPython_EXECUTABLE="$(command -v "$PYTHON")" -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" \
  "${launcher[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j2

rm -rf "$BUILD_DIR/pkg" && mkdir -p "$BUILD_DIR/pkg"
cp -r python/implicitbias "$BUILD_DIR/pkg/"
rm -f "$BUILD_DIR"/pkg/implicitbias/_core*.so
cp "$BUILD_DIR"/_core*.so "$BUILD_DIR/pkg/implicitbias/"

CXX=$(cmake -LA -N "$BUILD_DIR" | sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p')
LIBASAN=$("${CXX:-g++}" -print-file-name=libasan.so)
LIBSTDCXX=$("${CXX:-g++}" -print-file-name=libstdc++.so.6)
[[ -f $LIBASAN ]] || { echo "sanitize.sh: libasan.so not found (got '$LIBASAN')" >&2; exit 1; }

# libstdc++ is preloaded too: otherwise ASan's __cxa_throw interceptor finds no
# real __cxa_throw (libstdc++ arrives later, with the module) and aborts at the
# first C++ exception.  Reports go to files (pytest captures stderr, and an
# aborted process loses what it captured); any file is a failure.
LOG_DIR="$(cd "$BUILD_DIR" && pwd)/reports"
rm -rf "$LOG_DIR" && mkdir -p "$LOG_DIR"
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_init_order=1:log_path=$LOG_DIR/asan
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$LOG_DIR/ubsan
export PYTHONMALLOC=malloc
export PYTHONPATH="$(cd "$BUILD_DIR/pkg" && pwd)"
start=$SECONDS
"$PYTHON" -c 'import implicitbias, implicitbias._native as n; print("sanitized core:", n.core.__file__)'
status=0
"$PYTHON" -m pytest -q -p no:cacheprovider "${SKIP[@]}" "${args[@]}" || status=$?
if compgen -G "$LOG_DIR/*" >/dev/null; then
  cat "$LOG_DIR"/*
  echo "sanitize.sh: sanitizer reports above (files in $LOG_DIR)" >&2
  exit 1
fi
[[ $status -eq 0 ]] || { echo "sanitize.sh: tests failed (exit $status), no sanitizer report" >&2; exit "$status"; }
echo "sanitize.sh: no sanitizer report; tests took $((SECONDS - start)) s"
