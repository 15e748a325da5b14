#!/usr/bin/env bash
# W1-W3 from C beside SQLite's C API (see bench_c.c). Not part of the test command.
#
#   benches/c/run.sh [RUNS]        # BENCH_DIR=... to choose the disk (default: target/bench-c)
#   MQLITE_BENCH_PROFILE=profiling  # link the profiling build (symbols kept) instead of the stripped release
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
runs="${1:-3}"
if ! pkg-config --exists sqlite3; then
  (apt-get update -qq && apt-get install -y -qq libsqlite3-dev) > /dev/null
fi
profile="${MQLITE_BENCH_PROFILE:-release}"
cargo build --lib --profile "$profile"
work="$(mktemp -d "${TMPDIR:-/tmp}/mqlite-bench-c.XXXXXX")"
trap 'rm -rf "$work"' EXIT
MQLITE_NO_BUILD=1 bindings/c/install.sh "$work/prefix" "$profile" > /dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
gcc -std=c11 -O2 -Wall -Wextra -Werror benches/c/bench_c.c $(pkg-config --cflags --libs mqlite sqlite3) -lpthread \
  -Wl,-rpath,"$work/prefix/lib" -o "$work/bench_c"
data="${BENCH_DIR:-$root/target/bench-c}"
mkdir -p "$data"
echo "disk: $(df -h "$data" | tail -1)"
"$work/bench_c" "$data" "$runs"
