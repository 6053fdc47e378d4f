#!/usr/bin/env bash
# Tests disk.sh's three cases on a throwaway target dir (run by `make unit`): within budget and
# enough disk, nothing is removed; a nearly full disk removes only the incremental state and
# warns; a target dir over its budget is removed. Budgets are whole GiB and `du` rounds a
# non-empty dir up to 1 GiB, so budget 0 means "over" and a free-space floor of 10^6 GiB means
# "nearly full" on any machine.
set -euo pipefail
script="$(dirname "${BASH_SOURCE[0]}")/disk.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "disk-test: $*" >&2; exit 1; }

# A target dir with build output and incremental state.
fresh_target() {
  rm -rf "$work/target"
  mkdir -p "$work/target/debug/incremental/crate-1" "$work/target/debug/deps"
  echo state >"$work/target/debug/incremental/crate-1/s"
  echo lib >"$work/target/debug/deps/libx.rlib"
}
run() { CARGO_TARGET_DIR="$work/target" bash "$script" 2>"$work/log"; }

fresh_target
JOBSMITH_TARGET_BUDGET_GIB=1000 JOBSMITH_MIN_FREE_GIB=0 run
[ -f "$work/target/debug/incremental/crate-1/s" ] || fail "within budget: incremental state removed"
[ -f "$work/target/debug/deps/libx.rlib" ] || fail "within budget: build output removed"
grep -q '^\[disk\] free: ' "$work/log" || fail "no report: $(cat "$work/log")"

fresh_target
JOBSMITH_TARGET_BUDGET_GIB=1000 JOBSMITH_MIN_FREE_GIB=1000000 run
[ ! -e "$work/target/debug/incremental" ] || fail "nearly full: incremental state kept"
[ -f "$work/target/debug/deps/libx.rlib" ] || fail "nearly full: build output removed"
grep -q 'WARNING: less than 1000000 GiB free' "$work/log" || fail "nearly full: no warning"

fresh_target
JOBSMITH_TARGET_BUDGET_GIB=0 JOBSMITH_MIN_FREE_GIB=0 run
[ ! -e "$work/target" ] || fail "over budget: target dir kept"
grep -q 'removing it (the next build is cold)' "$work/log" || fail "over budget: not logged"

echo "disk-test: 3 cases passed"
