#!/usr/bin/env bash
# The C ABI's test command: builds libmqlite with cargo, checks that the committed header is not
# stale, installs into a temporary prefix (exercising bindings/c/install.sh and mqlite.pc),
# compiles every C/C++ test and runs it plain and under ASan+UBSan, links one statically, and
# runs the examples (built through pkg-config) under valgrind. Prints a final line
#   c-tests: N passed, M failed
# and exits non-zero on any failure. The non-forking tests also run under valgrind. Last, it runs
# README.md's C commands as written (a temporary prefix; /usr/local when root, as in CI, removed
# afterwards unless it was there before) and bindings/c/README.md's snippet.
#
#   tests/c/run.sh                      # MQLITE_C_PROFILE=debug|release (default release)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
profile="${MQLITE_C_PROFILE:-release}"
work="$(mktemp -d "${TMPDIR:-/tmp}/mqlite-c-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# shellcheck source=../lib.sh
source "$root/tests/lib.sh"

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
if ! command -v pkg-config > /dev/null; then
  echo "== installing pkg-config"
  (apt-get update -qq && apt-get install -y -qq pkg-config) > /dev/null
fi
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
c_tests=(test_basic test_async test_batch test_dlq test_txn test_abi test_kill test_topics test_boundary)
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
# Review r12 #11: the examples are what newcomers copy; a bad count ("-5", "abc", past INT_MAX)
# is refused with the usage status 2 and touches no store (they used atoi and went on).
examples_refuse_bad_numbers() {
  local bad="$work/bad-args-store" rc
  for args in "producer -5" "producer abc" "producer 99999999999999999999" "consumer -1" "consumer 5x"; do
    set -- $args
    rc=0; "$work/$1" "$bad" "$2" 2> /dev/null || rc=$?
    [[ $rc == 2 ]] || { echo "$args: exit $rc, not 2"; return 1; }
  done
  [[ ! -e "$bad" ]] || { echo "a refused run created $bad"; return 1; }
}
run "examples refuse bad numbers (exit 2, no store)" examples_refuse_bad_numbers
# Several processes on one store (T16 from C): an owner, the producer example as its client,
# the owner SIGKILLed mid-stream, then the consumer example; nothing lost or stored twice.
run "compile test_multiproc" build_c tests/c/test_multiproc.c "${pc_flags[@]}" -lpthread -lm -o "$work/test_multiproc"
[[ -x "$work/test_multiproc" ]] && run "test_multiproc (examples as separate processes, owner killed)" \
  "$work/test_multiproc" "$work/producer" "$work/consumer"
vg() { valgrind -q --leak-check=full --errors-for-leak-kinds=definite,possible --error-exitcode="${vg_exit:-1}" "$@"; }
examples_valgrind() {
  local store="$work/example-store-vg"
  vg "$work/producer" "$store" 20 && vg "$work/consumer" "$store" | tee "$work/consumer-vg.txt" &&
    grep -q "2 dead letters" "$work/consumer-vg.txt"
}
run "examples under valgrind" examples_valgrind
# valgrind also sees the Rust side's memory accesses, which ASan (instrumenting only the C code)
# does not: run the tests that do not fork under it too (the plain builds from step 5).
for t in test_basic test_async test_batch test_dlq test_txn test_abi test_topics test_boundary; do
  [[ -x "$work/$t" ]] && run "$t (valgrind)" vg "$work/$t"
done

# ---- 7. the READMEs' C path, run as written from the repository root in a clean environment
c_system="$(block README.md "C and C++" sh 1)"   # as root: /usr/local, then build and run the examples
c_own="$(block README.md "C and C++" sh 2)"      # any other prefix: install + the export lines
c_build="$(grep -v '^bindings/c/install.sh' <<< "$c_system")"
readme_blocks_ok() {
  [[ "$c_system" == bindings/c/install.sh\ /usr/local* && "$c_own" == bindings/c/install.sh\ ~/.local* ]] &&
    grep -q '^cc ' <<< "$c_build" || { echo "README.md's C section no longer has the two blocks this test runs"; return 1; }
}
run "README.md: the C section's blocks are where this test reads them" readme_blocks_ok
# clean_run SCRIPT: runs it with bash -euo pipefail from the repository root, with no
# PKG_CONFIG_PATH or LD_LIBRARY_PATH (a fresh shell), after removing the examples' outputs.
clean_run() {
  rm -rf target/producer target/consumer target/example-store
  env -u PKG_CONFIG_PATH -u LD_LIBRARY_PATH -u MQLITE_NO_BUILD bash -euo pipefail -c "$1"
}
examples_ran() { grep -q "producer: sent 100 messages" "$1" && grep -q "acked 90, nacked 70 times, 10 dead letters" "$1"; }
own_prefix="$work/own-prefix"
readme_own_prefix() {
  local out="$work/readme-own.txt" script
  # The README's prefix ~/.local, here a temporary one; then the README's cc and run lines.
  script="$(sed -e "s|~/\.local|$own_prefix|g" -e "s|\$HOME/\.local|$own_prefix|g" <<< "$c_own")"
  clean_run "$script
$c_build
ldd target/producer | grep -F '$own_prefix/lib/libmqlite.so.0'" > "$out" 2>&1 || { cat "$out"; return 1; }
  examples_ran "$out" || { cat "$out"; return 1; }
  # install.sh prints exactly the export lines the README shows.
  diff <(grep '^export ' "$out") <(grep '^export ' <<< "$script") ||
    { echo "install.sh printed other export lines than README.md shows"; return 1; }
}
run "README.md C path: install.sh ~/.local (a temporary prefix), its export lines, examples build and run" readme_own_prefix
readme_system_prefix() {
  local out="$work/readme-system.txt" had=0 rc=0
  [[ -e /usr/local/lib/libmqlite.so.0 ]] && had=1
  clean_run "$c_system
ldd target/producer | grep -F '/usr/local/lib/libmqlite.so.0'" > "$out" 2>&1 || rc=1
  # A system prefix needs nothing set: install.sh prints no export line.
  if grep -q '^export ' "$out"; then rc=1; fi
  examples_ran "$out" || rc=1
  ((rc == 0)) || cat "$out"
  # Leave /usr/local as it was found: remove the install unless one was there before.
  ((had)) || bindings/c/install.sh --uninstall /usr/local > /dev/null
  return $rc
}
if [[ "$(id -u)" == 0 ]]; then
  run "README.md C path as root: install.sh /usr/local (ldconfig, nothing to set), examples build and run" readme_system_prefix
else
  echo "NOT RUN README.md C path into /usr/local: needs root (CI runs as root)"
fi
stripped() {
  local so="$own_prefix/lib/libmqlite.so.$(pkg-config --modversion mqlite)" a="$own_prefix/lib/libmqlite.a" rc=0
  echo "installed: $so $(stat -c %s "$so") bytes, $a $(stat -c %s "$a") bytes"
  readelf -S --wide "$so" | grep -qE '\.debug_|\.symtab' && { echo "$so is not stripped"; rc=1; }
  readelf -S --wide "$a" | grep -qE '\.debug_|\.llvmbc' && { echo "$a carries debug info or bitcode"; rc=1; }
  return $rc
}
run "installed release libraries carry no debug info (.so stripped)" stripped
# The C README's snippet, in a main(), built with the test flags: it runs, and when the open
# fails it stops there, cleanly (valgrind sees every read of an uninitialised value).
snippet_build() {
  local s="$(block bindings/c/README.md Use c 1)"
  { echo '#include <stdio.h>'; grep '^#include' <<< "$s"; echo 'int main(void) {'
    grep -v '^#include' <<< "$s"; echo 'return 0;'; echo '}'; } > "$work/snippet.c"
  build_c "$work/snippet.c" "${pc_flags[@]}" -o "$work/snippet"
}
run "bindings/c/README.md snippet compiles (-Wall -Wextra -Werror -pedantic)" snippet_build
snippet_runs() {
  mkdir -p "$work/snippet-ok" && (cd "$work/snippet-ok" && vg "$work/snippet") > "$work/snippet.txt" &&
    [[ "$(cat "$work/snippet.txt")" == hello ]]
}
snippet_failed_open() {
  local rc=0
  mkdir -p "$work/snippet-bad" && touch "$work/snippet-bad/data" # a file where the store should be
  # valgrind exits 99 on a memory error; the snippet itself must exit 1 after printing the error.
  (cd "$work/snippet-bad" && vg_exit=99 vg "$work/snippet") > "$work/snippet-bad.txt" 2>&1 || rc=$?
  cat "$work/snippet-bad.txt"
  [[ $rc == 1 ]] && grep -q data "$work/snippet-bad.txt"
}
if [[ -x "$work/snippet" ]]; then
  run "bindings/c/README.md snippet runs (valgrind): prints hello" snippet_runs
  run "bindings/c/README.md snippet stops at a failed open (valgrind clean, exit 1)" snippet_failed_open
fi

summary c-tests
