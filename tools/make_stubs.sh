#!/usr/bin/env bash
# Regenerate python/implicitbias/_core.pyi (the type stubs of the compiled core; the AVX2 and AVX-512
# variants re-export it) from a built core with pybind11-stubgen:
#
#   tools/make_stubs.sh [PYTHON]      # PYTHON imports implicitbias with its compiled core (default: python)
#
# pybind11-stubgen runs in its own virtual environment (build/stubgen-venv, created on first use) with the
# package on PYTHONPATH, so it never touches the environment that runs the tests. tests/test_stubs.py fails
# when the stub and the module disagree (module functions, classes, their members and enum values).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python}
venv=build/stubgen-venv
if [ ! -x "$venv/bin/pybind11-stubgen" ]; then
  python3 -m venv "$venv"
  # pybind11-stubgen, and the package's runtime dependencies (importing the core imports the package)
  deps=$(python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
  mapfile -t deps <<< "$deps"
  "$venv/bin/pip" install -q pybind11-stubgen "${deps[@]}"
fi
site=$("$python" -c 'import implicitbias, os; print(os.path.dirname(os.path.dirname(implicitbias.__file__)))')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# the baseline core: every variant exports the same API
PYTHONPATH="$site" IMPLICITBIAS_ISA=baseline "$venv/bin/pybind11-stubgen" implicitbias._core -o "$out" \
  --numpy-array-remove-parameters
{
  echo "# Type stubs of the compiled core (the same API in every ISA variant), generated with"
  echo "# pybind11-stubgen from the built module: tools/make_stubs.sh"
  cat "$out/implicitbias/_core.pyi"
} > python/implicitbias/_core.pyi
echo "wrote python/implicitbias/_core.pyi"
