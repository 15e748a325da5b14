#!/bin/sh
# Runs every fuzz target for SECONDS each (default 30): the CI-sized run.
#   tests/fuzz/run.sh 30      # CI
#   tests/fuzz/run.sh 600     # the 10-CPU-minute soak per target (T10 of the test catalogue, src/docs/tests.md)
# Needs cargo-fuzz (`cargo install cargo-fuzz`); stable Rust works with RUSTC_BOOTSTRAP=1.
# The committed seeds in tests/fuzz/corpus/<target>/ are read; new inputs go to
# tests/fuzz/target/corpus/<target>/ (copy interesting ones into the seeds); crashes go to
# tests/fuzz/artifacts/<target>/ and make the script fail.
set -eu
cd "$(dirname "$0")/../.."   # the repository root; the fuzz crate is tests/fuzz
SECONDS_PER_TARGET="${1:-30}"
export RUSTC_BOOTSTRAP=1
for target in decode recover selector protocol; do
    mkdir -p "tests/fuzz/target/corpus/$target"
    # A target may have a dictionary of its tokens (tests/fuzz/<target>.dict).
    dict=""
    if [ -f "tests/fuzz/$target.dict" ]; then dict="-dict=tests/fuzz/$target.dict"; fi
    cargo fuzz run --fuzz-dir tests/fuzz --release "$target" "tests/fuzz/target/corpus/$target" "tests/fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $dict
done
