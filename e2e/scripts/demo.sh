#!/usr/bin/env bash
# `make demo`, the README's main command: a cluster (yours when your kubeconfig names a reachable
# one, else the local control plane, built and started here), the CRDs of crds/, the manager
# binary as a background process, and the README's ManagedJob sample, whose progress is shown until
# it reaches Succeeded or Failed. The manager is stopped at the end; the cluster is left running.
#
# Environment (defaults in brackets):
#   KUBECONFIG [~/.kube/config]             the cluster to try first
#   JOBSMITH_BIN [$CARGO_TARGET_DIR/debug/jobsmith]  the manager binary (make demo builds it)
#   KUBECTL_JOBSMITH_BIN [$CARGO_TARGET_DIR/debug/kubectl-jobsmith]  the kubectl plugin that draws the tree
#   JOBSMITH_DEMO_SAMPLE [samples/managedjob/readme-workflow.yaml]
#   JOBSMITH_DEMO_NAMESPACE [jobsmith-demo]  used when the sample names no namespace
#   JOBSMITH_DEMO_TIMEOUT [300]              seconds to wait for Succeeded/Failed
#   JOBSMITH_DEMO_LOG [/tmp/jobsmith-demo/manager.log]  the manager's output
#   E2E_CRD_DIR [crds/]                      the CRDs to install (as for the e2e tests)
#   JOBSMITH_METRICS_BIND_ADDRESS / JOBSMITH_HEALTH_PROBE_BIND_ADDRESS [127.0.0.1:8080 both]
#   E2E_RUN_DIR, E2E_NODES, E2E_POD_DURATION_MS, ... as for cluster-up.sh (local plane only)
# Exit status: 0 when the ManagedJob Succeeded, 1 when it Failed, timed out or anything broke.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
KUBECTL="${KUBECTL:-kubectl}"
SAMPLE="${JOBSMITH_DEMO_SAMPLE:-$repo/samples/managedjob/readme-workflow.yaml}"
NAMESPACE="${JOBSMITH_DEMO_NAMESPACE:-jobsmith-demo}"
TIMEOUT="${JOBSMITH_DEMO_TIMEOUT:-300}"
LOG="${JOBSMITH_DEMO_LOG:-/tmp/jobsmith-demo/manager.log}"
CRDS="${E2E_CRD_DIR:-$repo/crds}"
export JOBSMITH_METRICS_BIND_ADDRESS="${JOBSMITH_METRICS_BIND_ADDRESS:-127.0.0.1:8080}"
export JOBSMITH_HEALTH_PROBE_BIND_ADDRESS="${JOBSMITH_HEALTH_PROBE_BIND_ADDRESS:-$JOBSMITH_METRICS_BIND_ADDRESS}"

say() { printf '[demo] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
k() { "$KUBECTL" "$@"; }

[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "JOBSMITH_DEMO_TIMEOUT is not a number: '$TIMEOUT'"
[ -f "$SAMPLE" ] || die "the sample $SAMPLE does not exist (yet)"
command -v "$KUBECTL" >/dev/null 2>&1 || die "kubectl is required (make setup)"

# ---- 1. the cluster: yours if reachable, else the local control plane ----
plane=""
user_config="${KUBECONFIG:-$HOME/.kube/config}"
if [ -n "${KUBECONFIG:-}" ] || [ -f "$HOME/.kube/config" ]; then
  if k get --raw /readyz --request-timeout=5s >/dev/null 2>&1; then
    context="$(k config current-context 2>/dev/null || echo '?')"
    server="$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}' 2>/dev/null || echo '?')"
    say "using the cluster of your kubeconfig ($user_config): context '$context' at $server"
  else
    say "your kubeconfig ($user_config) names no reachable cluster: using the local control plane"
    plane=local
  fi
else
  say "no kubeconfig (KUBECONFIG unset, no ~/.kube/config): using the local control plane"
  plane=local
fi
if [ "$plane" = local ]; then
  bash "$here/build-tools.sh" k8s etcd kwok
  line="$(bash "$here/cluster-up.sh" | tail -n 1)"
  [[ "$line" == "export KUBECONFIG="* ]] || die "cluster-up.sh did not print the kubeconfig (got: $line)"
  export KUBECONFIG="${line#export KUBECONFIG=}"
  say "local control plane up: KUBECONFIG=$KUBECONFIG"
fi

# ---- 2. the CRDs (server-side: the CRDs are too large for the last-applied annotation) ----
say "installing the CRDs of $CRDS"
k apply --server-side --force-conflicts --field-manager=jobsmith-demo -f "$CRDS" >&2 ||
  die "the API server rejected CRDs of $CRDS (see above)"
k wait --for=condition=Established --timeout=60s -f "$CRDS" >&2

# ---- 3. the namespace ----
# The sample's own metadata.namespace, if it names one (kubectl's client dry-run would fill in the
# kubeconfig's namespace instead, so read the file).
sample_ns="$(sed -n 's/^  namespace:[[:space:]]*["'"'"']\{0,1\}\([a-z0-9-]*\).*/\1/p' "$SAMPLE" | head -n 1)"
ns="${sample_ns:-$NAMESPACE}"
if ! k get namespace "$ns" >/dev/null 2>&1; then
  k create namespace "$ns" >&2
fi
# The ServiceAccount admission plugin refuses pods until the namespace's default ServiceAccount exists.
for _ in $(seq 300); do
  k -n "$ns" get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.2
done

# ---- 4. the manager, in the background ----
bin="${JOBSMITH_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/jobsmith}"
[ -x "$bin" ] || die "the manager binary $bin is missing: make build (or set JOBSMITH_BIN)"
mkdir -p "$(dirname "$LOG")"
say "starting the manager $bin (log: $LOG; metrics and probes on $JOBSMITH_METRICS_BIND_ADDRESS)"
"$bin" </dev/null >"$LOG" 2>&1 &
manager=$!
stop_manager() {
  if kill -0 "$manager" 2>/dev/null; then
    say "stopping the manager (pid $manager)"
    kill -TERM "$manager" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$manager" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$manager" 2>/dev/null; then
      say "the manager did not exit within 10s: SIGKILL"
      kill -KILL "$manager" 2>/dev/null || true
    fi
    wait "$manager" 2>/dev/null || true
  fi
}
finish() {
  local status=$?
  stop_manager
  if [ "$plane" = local ]; then
    say "the local control plane keeps running: export KUBECONFIG=$KUBECONFIG (stop it with: make cluster-down)"
  fi
  say "manager log: $LOG"
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

manager_alive() {
  kill -0 "$manager" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$manager/stat" 2>/dev/null)" != Z ]
}
manager_died() {
  say "ERROR: the manager exited; last lines of $LOG:"
  tail -n 30 "$LOG" >&2 || true
  exit 1
}
probe="http://$JOBSMITH_HEALTH_PROBE_BIND_ADDRESS"
probe="${probe/0.0.0.0/127.0.0.1}"
ready=0
for _ in $(seq 300); do
  manager_alive || manager_died
  if curl -fs --max-time 1 "$probe/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
if [ "$ready" = 1 ]; then
  say "manager ready ($probe/readyz)"
else
  say "the manager is running but $probe/readyz did not answer ok within 60s; going on"
fi

# ---- 5. the sample, from scratch (a finished run is not started again by a re-apply) ----
k -n "$ns" delete --ignore-not-found --wait=true --timeout=60s -f "$SAMPLE" >&2 ||
  say "the previous run of the sample is not gone after 60s; applying anyway"
applied="$(k -n "$ns" apply -f "$SAMPLE" -o name)"
printf '%s\n' "$applied" | sed 's/^/[demo] applied /' >&2
mj="$(printf '%s\n' "$applied" | grep -m1 -i '^managedjob' || true)"
[ -n "$mj" ] || die "$SAMPLE holds no ManagedJob"
mj="${mj#*/}"

# ---- 6. its progress until Succeeded or Failed ----
say "waiting for managedjob/$mj in namespace $ns (at most ${TIMEOUT}s; kubectl get mj -n $ns -w shows the same)"
start=$(date +%s)
last=""
phase=""
while :; do
  manager_alive || manager_died
  row="$(k -n "$ns" get managedjob "$mj" -o jsonpath='{.status.phase}{"|"}{.status.progress}{"|"}{.status.message}' 2>/dev/null || true)"
  phase="${row%%|*}"
  rest="${row#*|}"
  progress="${rest%%|*}"
  message="${rest#*|}"
  if [ "$row" != "$last" ]; then
    printf '%4ss  phase=%-10s progress=%-7s %s\n' "$(($(date +%s) - start))" "${phase:-<none>}" "${progress:--}" "$message"
    last="$row"
  fi
  case "$phase" in Succeeded | Failed) break ;; esac
  if [ $(($(date +%s) - start)) -ge "$TIMEOUT" ]; then
    say "ERROR: managedjob/$mj did not finish within ${TIMEOUT}s (phase '${phase:-none}')"
    k -n "$ns" get managedjob "$mj" -o yaml >&2 || true
    exit 1
  fi
  sleep 1
done

echo
k -n "$ns" get managedjob "$mj"
echo
k -n "$ns" get jobs -l "jobsmith.dev/owner-kind=ManagedJob,jobsmith.dev/owner-name=$mj"
# ---- 7. its tree, drawn by the kubectl plugin (make build builds it; make install-plugin installs it) ----
plugin="${KUBECTL_JOBSMITH_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/kubectl-jobsmith}"
if [ -x "$plugin" ]; then
  echo
  "$plugin" tree "$mj" -n "$ns" || true
fi
echo
say "draw its tree: kubectl jobsmith tree $mj -n $ns     (add -w to follow a run; make install-plugin puts kubectl-jobsmith on your PATH, or run $plugin tree $mj -n $ns)"
if [ "$phase" = Succeeded ]; then
  say "managedjob/$mj Succeeded in $(($(date +%s) - start))s"
else
  say "managedjob/$mj Failed: $(k -n "$ns" get managedjob "$mj" -o jsonpath='{.status.message}')"
  exit 1
fi
