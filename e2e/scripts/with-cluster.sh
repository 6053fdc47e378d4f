#!/usr/bin/env bash
# Runs a command with KUBECONFIG pointing at a cluster: E2E_KUBECONFIG's cluster when given
# (any real cluster), otherwise the local control plane, started here and stopped afterwards
# unless it was already running.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${E2E_KUBECONFIG:-}" ]; then
  echo "[with-cluster] using the cluster of E2E_KUBECONFIG=$E2E_KUBECONFIG" >&2
  export KUBECONFIG="$E2E_KUBECONFIG"
  exec "$@"
fi
run_dir="${E2E_RUN_DIR:-/tmp/jobsmith-e2e}"
started=1
if [ -f "$run_dir/kubeconfig" ] && kubectl --kubeconfig "$run_dir/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  started=0
fi
kubeconfig_line="$(bash "$here/cluster-up.sh" | tail -n 1)"
eval "$kubeconfig_line"
export KUBECONFIG
stop() { if [ "$started" = 1 ] && [ "${E2E_KEEP_CLUSTER:-0}" != 1 ]; then bash "$here/cluster-down.sh" || true; fi; }
trap stop EXIT
echo "[with-cluster] local control plane: KUBECONFIG=$KUBECONFIG" >&2
"$@"
