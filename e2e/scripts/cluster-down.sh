#!/usr/bin/env bash
# Stops the local control plane of E2E_RUN_DIR (default /tmp/jobsmith-e2e): SIGTERM to each
# component by its recorded PID in reverse start order, up to E2E_STOP_TIMEOUT seconds (default 10)
# for it to exit, then SIGKILL; finally removes the run dir. Safe to run when nothing is up.
set -euo pipefail
W="${E2E_RUN_DIR:-/tmp/jobsmith-e2e}"
timeout="${E2E_STOP_TIMEOUT:-10}"
log() { printf '[cluster-down] %s\n' "$*" >&2; }
# An exited component stays a zombie until its adoptive parent reaps it; that counts as stopped.
running() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [ "$state" != Z ]
}

if [ ! -d "$W" ]; then
  log "nothing to stop: $W does not exist"
  exit 0
fi
# Refuse to rm -rf something that is not one of our run dirs.
if [ ! -d "$W/pids" ] && [ ! -f "$W/kubeconfig" ]; then
  log "ERROR: $W does not look like a run dir of cluster-up.sh (no pids/ nor kubeconfig); not touching it"
  exit 1
fi

for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  pid="$(cat "$W/pids/$name.pid" 2>/dev/null || true)"
  [ -n "$pid" ] || continue
  if ! running "$pid"; then
    log "$name (pid $pid) is not running"
    continue
  fi
  t0=$(date +%s%N)
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(date +%s) + timeout))
  while running "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
  if running "$pid"; then
    log "$name (pid $pid) still running after ${timeout}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
  else
    log "$name (pid $pid) stopped in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  fi
done
rm -rf "$W"
log "removed $W"
