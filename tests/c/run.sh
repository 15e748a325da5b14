#!/usr/bin/env bash
# The C ABI's test command: builds libmqlite with cargo, checks that the committed header is not
# stale, installs into a temporary prefix (exercising bindings/c/install.sh and mqlite.pc),
# compiles every C/C++ test and runs it plain and under ASan+UBSan, links one statically, and
# runs the examples (built through pkg-config) under valgrind. Prints a final line
#   c-tests: N passed, M failed
# and exits non-zero on any failure. The non-forking tests also run under valgrind.
#
#   tests/c/run.sh                      # MQLITE_C_PROFILE=debug|release (default release)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
profile="${MQLITE_C_PROFILE:-release}"
work="$(mktemp -d "${TMPDIR:-/tmp}/mqlite-c-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
failures=()

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"; }
# run NAME CMD...: a test step, its output shown only when it fails (or with VERBOSE=1).
run() {
  local name="$1"; shift
  if "$@" > "$work/out.txt" 2>&1; then
    pass "$name"
    [[ "${VERBOSE:-0}" == 1 ]] && cat "$work/out.txt"
  else
    fail "$name"
    tail -n 40 "$work/out.txt"
  fi
  return 0
}

# ---- 1. build the library (build.rs regenerates include/mqlite.h only if it changed)
cargo_flags=(--lib)
[[ "$profile" == release ]] && cargo_flags+=(--release)
echo "== cargo build ${cargo_flags[*]}"
cargo build "${cargo_flags[@]}"

# ---- 2. the committed header must be what the sources generate
header_fresh() {
  if ! git -C "$root" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
    echo "not a git checkout: cannot compare with the committed header"; return 0
  fi
  git -C "$root" ls-files --error-unmatch include/mqlite.h > /dev/null &&
    git -C "$root" diff --exit-code --stat -- include/mqlite.h ||
    { echo "include/mqlite.h is stale: build.rs regenerated it; commit the new header"; return 1; }
}
run "header is not stale" header_fresh

# ---- 3. install into a temporary prefix; everything below links through pkg-config
prefix="$work/prefix"
MQLITE_NO_BUILD=1 bindings/c/install.sh "$prefix" "$profile" > /dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
pc_ok() { pkg-config --exists mqlite && [[ "$(pkg-config --modversion mqlite)" == "$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ]]; }
run "pkg-config finds mqlite" pc_ok
soname_ok() { readelf -d "$prefix/lib/libmqlite.so" | grep -q 'SONAME.*libmqlite.so.0'; }
run "soname is libmqlite.so.0" soname_ok
read -r -a pc_flags <<< "$(pkg-config --cflags --libs mqlite)"

# ---- 4. T12 covers every exported function
abi_covers_all() {
  local missing=0
  for f in $(grep -oE '\bmqlite_[a-z0-9_]+\(' include/mqlite.h | tr -d '(' | sort -u); do
    grep -q "\b$f(" tests/c/test_abi.c || { echo "test_abi.c does not call $f"; missing=1; }
  done
  return $missing
}
run "test_abi.c calls every exported function" abi_covers_all

# ---- 5. C and C++ tests: plain, then with sanitizers
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -g -O1)
cxxflags=(-std=c++17 -Wall -Wextra -Werror -g -O1)
san=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
c_tests=(test_basic test_async test_dlq test_txn test_abi test_kill)
build_c() { gcc "${cflags[@]}" "$@"; }
build_cxx() { g++ "${cxxflags[@]}" "$@"; }
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

for t in "${c_tests[@]}"; do
  run "compile $t" build_c "tests/c/$t.c" "${pc_flags[@]}" -lpthread -lm -o "$work/$t"
  [[ -x "$work/$t" ]] && run "$t" "$work/$t"
  run "compile $t (asan+ubsan)" build_c "${san[@]}" "tests/c/$t.c" "${pc_flags[@]}" -lpthread -lm -o "$work/$t.san"
  [[ -x "$work/$t.san" ]] && run "$t (asan+ubsan)" "$work/$t.san"
done
run "compile test_cpp" build_cxx tests/c/test_cpp.cpp "${pc_flags[@]}" -lpthread -o "$work/test_cpp"
[[ -x "$work/test_cpp" ]] && run "test_cpp" "$work/test_cpp"
run "compile test_cpp (asan+ubsan)" build_cxx "${san[@]}" tests/c/test_cpp.cpp "${pc_flags[@]}" -lpthread -o "$work/test_cpp.san"
[[ -x "$work/test_cpp.san" ]] && run "test_cpp (asan+ubsan)" "$work/test_cpp.san"
# The static library: the same basic test linked against libmqlite.a.
run "compile test_basic (static)" build_c tests/c/test_basic.c -I"$prefix/include" "$prefix/lib/libmqlite.a" \
  $(pkg-config --static --libs-only-l mqlite | sed 's/-lmqlite//') -o "$work/test_basic.static"
static_ok() { ! ldd "$work/test_basic.static" | grep -q libmqlite && "$work/test_basic.static"; }
[[ -x "$work/test_basic.static" ]] && run "test_basic (static)" static_ok

# ---- 6. the examples, built through pkg-config, under valgrind (T11)
if ! command -v valgrind > /dev/null; then
  echo "== installing valgrind"
  (apt-get update -qq && apt-get install -y -qq valgrind) > /dev/null
fi
for ex in producer consumer; do
  run "compile example $ex" build_c "bindings/c/examples/$ex.c" $(pkg-config --cflags --libs mqlite) -lpthread -o "$work/$ex"
done
examples() {
  local store="$work/example-store"
  "$work/producer" "$store" 40 && "$work/consumer" "$store" | tee "$work/consumer.txt" &&
    grep -q "acked 36, nacked 28 times, 4 dead letters" "$work/consumer.txt"
}
run "examples: producer then consumer with DLQ" examples
vg() { valgrind -q --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode=1 "$@"; }
examples_valgrind() {
  local store="$work/example-store-vg"
  vg "$work/producer" "$store" 20 && vg "$work/consumer" "$store" | tee "$work/consumer-vg.txt" &&
    grep -q "2 dead letters" "$work/consumer-vg.txt"
}
run "examples under valgrind" examples_valgrind
# valgrind also sees the Rust side's memory accesses, which ASan (instrumenting only the C code)
# does not: run the tests that do not fork under it too (the plain builds from step 5).
for t in test_basic test_async test_dlq test_txn test_abi; do
  [[ -x "$work/$t" ]] && run "$t (valgrind)" vg "$work/$t"
done

echo
if ((failed > 0)); then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "c-tests: $passed passed, $failed failed"
((failed == 0))
