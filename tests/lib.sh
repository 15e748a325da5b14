# Shared by the shell test scripts (tests/c/run.sh, tests/docs.sh): numbered PASS/FAIL steps and
# the closing line "<name>: N passed, M failed". Source it after setting $work (a scratch dir).
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
# summary NAME: the closing line; returns non-zero when a step failed.
summary() {
  echo
  if ((failed > 0)); then
    printf 'failed: %s\n' "${failures[@]}"
  fi
  echo "$1: $passed passed, $failed failed"
  ((failed == 0))
}
# block FILE HEADING LANG N: the Nth (from 1) fenced LANG block under the "## HEADING" section of
# FILE; HEADING "" is the part before the first "## " heading (a README's first screen).
block() {
  awk -v h="$2" -v fence='```'"$3" -v n="$4" '
    BEGIN { insec = (h == "") }
    /^## / { insec = ($0 == "## " h) }
    insec && $0 == fence { k++; inb = (k == n); next }
    inb && /^```/ { inb = 0; next }
    inb { print }' "$1"
}
