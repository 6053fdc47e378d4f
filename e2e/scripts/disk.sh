#!/usr/bin/env bash
# Keeps the project's caches inside the disk (run by setup.sh, so first in `make test`). Prints the
# free space and the size of each cache, then frees space, logging each step:
#   1. when the target dir is over its budget or the disk is nearly full: the target dir's
#      incremental-compilation state (rebuilt by the next build, a few minutes);
#   2. when the target dir is still over its budget: the whole target dir (a cold cargo build,
#      about 10 more minutes on 2 cores). Not for a nearly full disk alone: a cold build takes
#      back what the removal freed, and more than a warm one adds.
# A target dir keyed by the compiler version outlives Cargo.lock changes, and each change leaves
# the former builds of the crates it touched behind: without a budget it only grows.
#   JOBSMITH_TARGET_BUDGET_GIB (default 25): the target dir's budget;
#   JOBSMITH_MIN_FREE_GIB (default 12): the free space below which step 1 runs and a warning
#   says the run may not fit (a warm `make test` adds about 3 GiB, a cold one about 18 GiB).
set -euo pipefail
log() { printf '[disk] %s\n' "$*" >&2; }

target="${CARGO_TARGET_DIR:-}"
budget_gib="${JOBSMITH_TARGET_BUDGET_GIB:-25}"
min_free_gib="${JOBSMITH_MIN_FREE_GIB:-12}"
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"

size_gib() { [ -d "$1" ] && du -s --block-size=1G "$1" 2>/dev/null | awk '{print $1}' || echo 0; }
free_gib() { df --output=avail --block-size=1G "$1" | tail -1 | tr -d ' '; }

# The filesystem the target dir is (or will be) on: its nearest existing directory.
probe() {
  local dir="${target:-$HOME}"
  while [ ! -d "$dir" ]; do dir="$(dirname "$dir")"; done
  echo "$dir"
}
# Prints the state, and keeps the target dir's size (`target_gib`) for the checks below: each
# removal is followed by a report, so it is always the current size.
report() {
  target_gib="$(size_gib "$target")"
  log "free: $(free_gib "$(probe)") GiB on $(df --output=target "$(probe)" | tail -1);" \
    "target dir ${target:-unset}: $target_gib GiB; tools cache $E2E_CACHE: $(size_gib "$E2E_CACHE") GiB;" \
    "Go build cache: $(size_gib "$(go env GOCACHE 2>/dev/null || echo /nonexistent)") GiB"
}
report
[ -n "$target" ] && [ -d "$target" ] || exit 0

over_budget() { [ "$target_gib" -gt "$budget_gib" ]; }
low_on_disk() { [ "$(free_gib "$(probe)")" -lt "$min_free_gib" ]; }
if over_budget || low_on_disk; then
  log "target dir over $budget_gib GiB or less than $min_free_gib GiB free: removing incremental state"
  find "$target" -maxdepth 3 -type d -name incremental -prune -exec rm -rf {} +
  report
fi
if over_budget; then
  log "target dir still over $budget_gib GiB: removing it (the next build is cold)"
  rm -rf "$target"
  report
fi
if low_on_disk; then
  log "WARNING: less than $min_free_gib GiB free; the build may run out of disk"
fi
