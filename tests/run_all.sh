#!/usr/bin/env bash
# Every test of mqlite: Rust (unit, integration, crash and fault suites), C/C++, Python and the
# broker bridges (against real nats-server and rabbitmq-server on loopback).
# Works on a fresh machine with cargo, python3 (with pip) and gcc: it installs what else it needs.
# Longer soak sizes: MQLITE_SOAK=1 tests/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# The tests build without link-time optimisation. The release profile's thin LTO is kept for
# users' builds and the benchmarks. In tests it made every one of about 40 test binaries
# re-optimise the whole crate graph when linked: building them took 14.5 of the run's 32
# minutes on 2 cores. The code under test is the same code, still at opt-level 3.
export CARGO_PROFILE_RELEASE_LTO=false
step() { printf '\n=== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

# The core and the `mqlite` command (bindings/cli) in one cargo invocation each, so that they
# share one build of the core and its dependencies.
step "rust: format and lints"
cargo fmt --all --check
cargo clippy --all-targets -p mqlite -p mqlite-cli -- -D warnings

step "rust: tests (core, and the mqlite command run as a built binary)"
cargo test --release -p mqlite -p mqlite-cli

step "docs: the README's demo command as written, license texts, CHANGELOG format versions"
bash tests/docs.sh

step "c: C ABI (header, C/C++ tests plain + ASan/UBSan + valgrind, examples, the README's C commands)"
bash tests/c/run.sh

step "python: the wheel (build_wheel.sh, tags, auditwheel) in a fresh venv: stubtest, mypy, pytest; source install"
bash bindings/python/run_tests.sh

step "bridge: NATS JetStream and RabbitMQ (installs and starts both servers on loopback; T20)"
bash bindings/bridge/run_tests.sh

step "all tests passed in $(( $(date +%s) - start ))s"
