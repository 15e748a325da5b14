#!/usr/bin/env bash
# The Python module's test command. On a machine with only python3 (with pip and venv) and cargo:
#  1. builds the wheel with the README's command (build_wheel.sh: abi3, manylinux by auditwheel)
#     and checks its tags and that `auditwheel show` finds it consistent with its manylinux tag;
#  2. installs it into a fresh venv with no package index and no cargo on PATH, as a machine
#     without Rust would, then checks that its extension exports none of the C ABI's mqlite_*
#     symbols (nm -D), the .pyi stubs against it (mypy.stubtest), the package with mypy --strict,
#     and runs pytest;
#  3. runs T13's Ctrl-C test again in a process that ignores SIGINT, as a background job does;
#  4. installs from source (`pip install ./bindings/python`) into another fresh venv and runs
#     tests/test_docs.py (the README's example and options) against that build.
# Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
start=$(date +%s)
step() { printf '\n=== python: %s (%ss)\n' "$1" "$(($(date +%s) - start))"; }
scratch="$(mktemp -d "${TMPDIR:-/tmp}/mqlite-py-tests.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
pip_q=(--quiet --disable-pip-version-check)
# pytest from a scratch directory, so that `import mqlite` finds the installed package (with its
# native module), never the source tree.
pytest_in() {
  local py="$1"; shift
  (cd "$scratch" && "$py" -m pytest -q -p no:cacheprovider -o faulthandler_timeout=120 --rootdir "$here" "$@")
}

step "wheel: bindings/python/build_wheel.sh"
cd "$root"
wheel="$(bindings/python/build_wheel.sh "$scratch/dist" | tail -n 1)"
echo "$wheel ($(du -k "$wheel" | cut -f1) KiB)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
arch="$(uname -m)"
name="$(basename "$wheel")"
[[ "$name" =~ ^mqlite-${version}-cp39-abi3-(manylinux[a-z0-9_.]*_${arch}\.)*manylinux_2_([0-9]+)_${arch}(\.manylinux[a-z0-9_]*_${arch})*\.whl$ ]] ||
  { echo "unexpected wheel name $name: want mqlite-$version-cp39-abi3-…manylinux_2_N_$arch.whl"; exit 1; }
tag_glibc="2_${BASH_REMATCH[2]}"
# The WHEEL file's tags must be the file name's (abi3, manylinux, no plain linux tag).
tags="$(python3 -c 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode())' \
  "$wheel" "mqlite-$version.dist-info/WHEEL" | sed -n 's/^Tag: //p' | sort | tr '\n' ' ')"
echo "WHEEL tags: $tags"
for t in $tags; do
  [[ "$t" == cp39-abi3-manylinux* && "$name" == *"${t#cp39-abi3-}"* ]] || { echo "tag $t is not the file name's"; exit 1; }
done
show="$("$root/target/wheel-tools/bin/auditwheel" show "$wheel" 2>&1)"
echo "$show" | tr -s '\n ' ' ' | grep -q "consistent with the following platform tag: \"manylinux_${tag_glibc}_${arch}\"" ||
  { echo "$show"; echo "auditwheel show does not find the wheel consistent with manylinux_${tag_glibc}_${arch}"; exit 1; }
echo "auditwheel show: consistent with manylinux_${tag_glibc}_${arch}"

step "fresh venv: pip install the wheel (no index, no cargo on PATH), pytest, mypy"
python3 -m venv "$scratch/venv"
py="$scratch/venv/bin/python"
"$py" -m pip install "${pip_q[@]}" pytest mypy
env PATH="$scratch/venv/bin:/usr/bin:/bin" "$py" -c 'import shutil, sys; sys.exit(shutil.which("cargo") is not None)' ||
  { echo "cargo is still on the reduced PATH"; exit 1; }
env PATH="$scratch/venv/bin:/usr/bin:/bin" "$py" -m pip install "${pip_q[@]}" --no-index --only-binary=:all: --no-deps "$wheel"
"$py" -c 'import mqlite, sys; print("mqlite", mqlite.__version__, "from", mqlite.__file__); sys.exit(mqlite.__version__ != sys.argv[1])' "$version"

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
(cd "$scratch" && "$py" -m mypy.stubtest mqlite)

step "types: mypy --strict -p mqlite"
(cd "$scratch" && "$py" -m mypy --strict --no-incremental -p mqlite)

step "pytest (against the wheel)"
pytest_in "$py" "$here/tests"

step "T13 Ctrl-C test with SIGINT ignored (as in a background job)"
# A shell starts a background job with SIGINT ignored, and the disposition is inherited through
# exec: here pytest, and the child the test starts, begin with SIGINT ignored, as under
# `tests/run_all.sh &`.
(cd "$scratch" && "$py" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]])' \
  -q -p no:cacheprovider --rootdir "$here" "$here/tests/test_t13.py::test_ctrl_c_interrupts_a_blocking_receive")

step "source install: pip install ./bindings/python into a fresh venv, tests/test_docs.py"
python3 -m venv "$scratch/venv-src"
src_py="$scratch/venv-src/bin/python"
"$src_py" -m pip install "${pip_q[@]}" pytest
"$src_py" -m pip install "${pip_q[@]}" ./bindings/python
pytest_in "$src_py" "$here/tests/test_docs.py"

step "passed in $(($(date +%s) - start))s"
