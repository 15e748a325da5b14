#!/usr/bin/env bash
# Builds the mqlite wheel that installs on a machine without Rust: abi3 (one wheel for CPython
# 3.9 and later), linked against glibc 2.17 and repaired by auditwheel to the manylinux_2_17 tag:
# it installs on any Linux with glibc 2.17 or later (2014 on) of this machine's architecture.
#
#   bindings/python/build_wheel.sh [OUT_DIR]     # default OUT_DIR: dist/ at the repository root
#
# The last line printed is the wheel's path; install it anywhere with `pip install <wheel>`.
# Needs cargo and python3 (with venv); the build tools come from PyPI into a venv kept under
# target/wheel-tools (MQLITE_WHEEL_TOOLS to choose another):
#   maturin        builds the wheel from bindings/python (pyo3, abi3-py39)
#   ziglang        zig as the C linker, targeting glibc 2.17: a plain build would link against
#                  this machine's glibc symbol versions (2.34+ here) and run only on newer systems
#   auditwheel     checks the wheel against the manylinux policy and writes its platform tag
#   patchelf       what auditwheel uses to rewrite the extension's ELF headers
set -euo pipefail
here="$(cd -P "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/dist}"
tools="${MQLITE_WHEEL_TOOLS:-$root/target/wheel-tools}"

[[ -x "$tools/bin/python" ]] || python3 -m venv "$tools"
# Versions known to work together: zig's releases change its linker driver.
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
  "maturin>=1.16,<2" "ziglang==0.17.1" "auditwheel>=6.4,<7" "patchelf>=0.17,<0.18"
export PATH="$tools/bin:$PATH"

raw="$(mktemp -d "${TMPDIR:-/tmp}/mqlite-wheel.XXXXXX")"
trap 'rm -rf "$raw"' EXIT
maturin build --release --zig --compatibility manylinux2014 --auditwheel skip \
  --manifest-path "$here/Cargo.toml" --out "$raw" >&2
built=("$raw"/*.whl)
mkdir -p "$out"
# repair: checks every symbol the extension uses against the manylinux policies, grafts any
# non-system shared library into the wheel (there is none: only libc and libgcc_s), and tags the
# wheel with the most compatible manylinux policy it satisfies.
auditwheel repair --wheel-dir "$out" "${built[0]}" 2>&1 | tee "$raw/repair.log" >&2
wheel="$(sed -n 's/^Fixed-up wheel written to //p' "$raw/repair.log")"
[[ -f "$wheel" ]] || { echo "build_wheel.sh: auditwheel repair wrote no wheel" >&2; exit 1; }
auditwheel show "$wheel" >&2
echo "$wheel"
