#!/usr/bin/env bash
# Every test of mqlite: Rust (unit, integration, crash and fault suites), C/C++ and Python.
# Works on a fresh machine with cargo, python3 (with pip) and gcc: it installs what else it needs.
# Longer soak sizes: MQLITE_SOAK=1 tests/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n=== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

# The core and the `mqlite` command (bindings/cli) in one cargo invocation each, so that they
# share one build of the core and its dependencies.
step "rust: format and lints"
cargo fmt --all --check
cargo clippy --all-targets -p mqlite -p mqlite-cli -- -D warnings

step "rust: tests (core, and the mqlite command run as a built binary)"
cargo test --release -p mqlite -p mqlite-cli

step "c: C ABI (header, C/C++ tests plain + ASan/UBSan + valgrind, examples)"
bash tests/c/run.sh

step "python: module (venv, pip install ./bindings/python, stubtest, mypy, pytest)"
bash bindings/python/run_tests.sh

step "all tests passed in $(( $(date +%s) - start ))s"
