#!/usr/bin/env bash
# The Python module's test command. On a machine with only python3 (with pip and venv) and cargo:
# makes a venv, pip-installs the package from this repository (maturin comes from PyPI as the
# build backend), checks that the extension exports none of the C ABI's mqlite_* symbols (nm -D),
# checks the .pyi stubs against the built module (mypy.stubtest) and the package with
# mypy --strict, then runs pytest. Exits non-zero on any failure.
#   MQLITE_PY_VENV=/path   venv to use (default: bindings/python/.venv-test, reused if present)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${MQLITE_PY_VENV:-$here/.venv-test}"
start=$(date +%s)
step() { printf '\n=== python: %s (%ss)\n' "$1" "$(($(date +%s) - start))"; }

step "venv $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"

step "pip install ./bindings/python pytest mypy"
cd "$root"
"$py" -m pip install --quiet --disable-pip-version-check pytest mypy
# --force-reinstall: the version number does not change between commits; the code does.
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python

# Run the checks from a scratch directory so that `import mqlite` finds the installed package
# (with its native module), never the source tree.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

step "the extension exports no C ABI symbol (mqlite_*)"
ext="$("$py" -c 'import mqlite._mqlite as m; print(m.__file__)')"
exported="$(nm -D --defined-only "$ext" | awk '{print $NF}' | grep -c '^mqlite_' || true)"
if [[ "$exported" != 0 ]]; then
  echo "$ext exports $exported mqlite_* symbols: the core must be built without its capi feature"
  nm -D --defined-only "$ext" | awk '{print $NF}' | grep '^mqlite_' | head
  exit 1
fi
echo "$ext: 0 mqlite_* symbols ($(nm -D --defined-only "$ext" | wc -l) exported in all)"

step "stubs: mypy.stubtest mqlite"
"$py" -m mypy.stubtest mqlite

step "types: mypy --strict -p mqlite"
"$py" -m mypy --strict --no-incremental -p mqlite

step "pytest"
"$py" -m pytest -q -p no:cacheprovider -o faulthandler_timeout=120 --rootdir "$here" "$here/tests"

step "passed in $(($(date +%s) - start))s"
