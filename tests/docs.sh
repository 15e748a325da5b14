#!/usr/bin/env bash
# What the top-level files promise a newcomer, checked as a newcomer meets it:
#  - README.md's first screen: its first command (the demo) runs as written from the repository
#    root; the totals it ends with match what it printed, and its temporary store is gone after;
#  - LICENSE-MIT and LICENSE-APACHE exist for the `MIT OR Apache-2.0` that Cargo.toml and
#    pyproject.toml declare;
#  - CHANGELOG.md's newest entry states the on-disk format version of src/journal/format.rs,
#    and every entry states one.
# (The README's C commands are run by tests/c/run.sh, the Python README by the Python tests.)
# Prints "docs-tests: N passed, M failed"; exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
work="$(mktemp -d "${TMPDIR:-/tmp}/mqlite-docs-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# shellcheck source=lib.sh
source "$root/tests/lib.sh"

first_screen="$(block README.md "" sh 1)"
demo_cmd="$(head -n 1 <<< "$first_screen" | sed 's/[[:space:]]*#.*//')"
demo_is_first() {
  echo "first command: $demo_cmd"
  [[ "$demo_cmd" == *"--example demo"* ]] && [[ "$(sed -n 2p <<< "$first_screen")" == tests/run_all.sh* ]]
}
run "README.md's first screen: the demo command, then the test command" demo_is_first

demo_out="$work/demo.txt"
demo_runs() {
  env -u MQLITE_NO_BUILD bash -euo pipefail -c "$demo_cmd" > "$demo_out" 2> "$work/demo.err" ||
    { cat "$work/demo.err" "$demo_out"; return 1; }
  cat "$demo_out"
}
run "the demo runs as written" demo_runs
# count PATTERN: lines of the demo's output that match.
count() { grep -cE "$1" "$demo_out" || true; }
demo_totals_true() {
  local line
  line="$(grep '^== done:' "$demo_out")" || { echo "no '== done:' line"; return 1; }
  echo "$line"
  # Its totals are what it visibly did (not the stats of the reopened store alone)...
  [[ "$line" == *" acked=$(count '^ *[0-9.]+s  ack ') "* ]] || { echo "acked= is not the number of ack lines"; return 1; }
  [[ "$line" == *" nacked=$(count '^ *[0-9.]+s  FAIL ') "* ]] || { echo "nacked= is not the number of FAIL lines"; return 1; }
  [[ "$line" == *" redelivered=$(count 'redelivered=true|\(delivery [2-9]\)$') "* ]] || { echo "redelivered= is not the number of redeliveries shown"; return 1; }
  [[ "$line" == *" dead-lettered=$(count '^   order #[0-9]+  from ') "* ]] || { echo "dead-lettered= is not the number of dead letters shown"; return 1; }
  # ...which for this scenario are: 6 orders, 6 acks (#2 after one failure, #4 after its replay),
  # 5 failures (#2 once, #4 four times), 4 redeliveries, 1 dead letter, 1 replay.
  [[ "$line" == "== done: sent=6 acked=6 nacked=5 redelivered=4 dead-lettered=1 replayed=1 (whole demo)" ]] &&
    # The store's own counters are shown as what they are.
    grep -q "since the reopen (its counters restart at each open)" "$demo_out"
}
run "the demo's totals are what it printed, and per-open stats are labelled so" demo_totals_true
demo_cleans_up() {
  local store dir
  store="$(sed -n 's/^== store at \(.*\) (temporary: removed at the end)$/\1/p' "$demo_out")"
  dir="$(sed -n 's/^== removed //p' "$demo_out")"
  echo "store: $store; removed: $dir"
  [[ -n "$store" && -n "$dir" && "$store" == "$dir"/* && ! -e "$dir" ]]
}
run "the demo's store is in a temporary directory that is gone afterwards" demo_cleans_up

licenses() {
  grep -q '^license = "MIT OR Apache-2.0"' Cargo.toml &&
    grep -q 'license = { text = "MIT OR Apache-2.0" }' bindings/python/pyproject.toml &&
    grep -q '^Copyright (c) the mqlite developers$' LICENSE-MIT &&
    grep -q 'Permission is hereby granted, free of charge' LICENSE-MIT &&
    grep -q '^ *Apache License$' LICENSE-APACHE && grep -q '^ *Version 2.0, January 2004$' LICENSE-APACHE &&
    grep -q '^END OF TERMS AND CONDITIONS$' LICENSE-APACHE
}
run "LICENSE-MIT and LICENSE-APACHE for the declared MIT OR Apache-2.0" licenses

changelog() {
  local fmt entries stated
  # The constant lives in frame.rs (format.rs specifies the format and re-exports it).
  fmt="$(sed -n 's/^pub const VERSION: u32 = \([0-9]*\);/\1/p' src/journal/frame.rs)"
  [[ -n "$fmt" ]] || { echo "no VERSION in src/journal/frame.rs"; return 1; }
  # Each "## " entry and the format version it states (or "-" when it states none).
  entries="$(awk '/^## / { if (e) print e, (v ? v : "-"); e = $2; v = "" }
    /^On-disk format version: / { v = $4; gsub(/[^0-9]/, "", v) }
    END { if (e) print e, (v ? v : "-") }' CHANGELOG.md)"
  echo "journal VERSION = $fmt; CHANGELOG entries (entry, format version):"
  echo "$entries"
  [[ -n "$entries" ]] && ! grep -q ' -$' <<< "$entries" || { echo "an entry states no format version"; return 1; }
  stated="$(head -n 1 <<< "$entries" | cut -d' ' -f2)"
  [[ "$stated" == "$fmt" ]] || { echo "the newest entry states format $stated, the journal has $fmt"; return 1; }
  # The crate's version is the newest entry, or is released below an Unreleased entry.
  local version
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
  grep -qE "^## ($version|Unreleased)( |$)" CHANGELOG.md || { echo "no entry for $version"; return 1; }
}
run "CHANGELOG.md states the on-disk format version of each release (newest = the journal's VERSION)" changelog

summary docs-tests
