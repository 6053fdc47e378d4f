#!/usr/bin/env bash
# Runs a command with KUBECONFIG pointing at a cluster:
#   * E2E_KUBECONFIG given: that cluster (any real cluster; nothing is built or started);
#   * otherwise the local control plane of E2E_RUN_DIR (default /tmp/jobsmith-e2e): the tools are
#     built if needed (cached), the plane is started if it is not up, and stopped afterwards if it
#     was started here, unless E2E_KEEP_CLUSTER=1. A plane that was already up is left running.
# The command's exit status is the script's.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[with-cluster] %s\n' "$*" >&2; }
if [ -n "${E2E_KUBECONFIG:-}" ]; then
  [ -f "$E2E_KUBECONFIG" ] || { log "ERROR: E2E_KUBECONFIG=$E2E_KUBECONFIG does not exist"; exit 1; }
  log "using the cluster of E2E_KUBECONFIG=$E2E_KUBECONFIG"
  export KUBECONFIG="$E2E_KUBECONFIG"
  exec "$@"
fi
run_dir="${E2E_RUN_DIR:-/tmp/jobsmith-e2e}"
started=1
if [ -f "$run_dir/kubeconfig" ] && "${KUBECTL:-kubectl}" --kubeconfig "$run_dir/kubeconfig" get --raw /readyz \
  --request-timeout=5s >/dev/null 2>&1; then
  started=0
else
  bash "$here/build-tools.sh" k8s etcd kwok
fi
kubeconfig_line="$(bash "$here/cluster-up.sh" | tail -n 1)"
case "$kubeconfig_line" in
  "export KUBECONFIG="*) export KUBECONFIG="${kubeconfig_line#export KUBECONFIG=}" ;;
  *) log "ERROR: cluster-up.sh printed no kubeconfig (got: $kubeconfig_line)"; exit 1 ;;
esac
stop() {
  if [ "$started" = 1 ] && [ "${E2E_KEEP_CLUSTER:-0}" != 1 ]; then
    bash "$here/cluster-down.sh" || true
  elif [ "$started" = 1 ]; then
    log "E2E_KEEP_CLUSTER=1: the local plane keeps running (KUBECONFIG=$KUBECONFIG; make cluster-down stops it)"
  fi
}
trap stop EXIT
log "local control plane: KUBECONFIG=$KUBECONFIG"
"$@"
