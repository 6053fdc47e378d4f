#!/usr/bin/env bash
# Starts the local control plane on 127.0.0.1 only: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok as plain processes (design: shared/CONTROL_PLANE.md §8 steps 6-13), then
# E2E_NODES fake nodes. Everything lives in the run dir (PKI, kubeconfig, data, logs/, pids/).
# Idempotent: when the plane of this run dir is already up and healthy it only prints.
# The last line on stdout is `export KUBECONFIG=<path>`; everything else goes to stderr.
#
# Environment (defaults in brackets):
#   E2E_RUN_DIR [/tmp/jobsmith-e2e]   E2E_NODES [3]   E2E_POD_DURATION_MS [1000]
#   E2E_ETCD_PORT [2379] E2E_ETCD_PEER_PORT [2380] E2E_APISERVER_PORT [6443]
#   E2E_KCM_PORT [10257] E2E_SCHEDULER_PORT [10259] E2E_KWOK_PORT [10247]
#   E2E_NODE_CPU [32] E2E_NODE_MEMORY [256Gi] E2E_NODE_PODS [110]
#   E2E_DISABLE_QPS_LIMITS [0]: 1 lifts the apiserver's in-flight limits and the controllers' QPS
#   (for benchmarks; the default keeps a stock cluster's limits).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$here/versions.sh"

W="${E2E_RUN_DIR:-/tmp/jobsmith-e2e}"
P="$W/pki"
LOGS="$W/logs"
PIDS="$W/pids"
KCFG="$W/kubeconfig"
NODES="${E2E_NODES:-3}"
POD_DURATION_MS="${E2E_POD_DURATION_MS:-1000}"
ETCD_PORT="${E2E_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${E2E_ETCD_PEER_PORT:-2380}"
APISERVER_PORT="${E2E_APISERVER_PORT:-6443}"
KCM_PORT="${E2E_KCM_PORT:-10257}"
SCHEDULER_PORT="${E2E_SCHEDULER_PORT:-10259}"
KWOK_PORT="${E2E_KWOK_PORT:-10247}"
NODE_CPU="${E2E_NODE_CPU:-32}"
NODE_MEMORY="${E2E_NODE_MEMORY:-256Gi}"
NODE_PODS="${E2E_NODE_PODS:-110}"
KUBECTL="${KUBECTL:-kubectl}"
# Start order; cluster-down.sh stops in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf '[cluster-up] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
k() { "$KUBECTL" --kubeconfig="$KCFG" "$@"; }

for n in "$NODES" "$POD_DURATION_MS" "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: '$n' (check the E2E_* variables)"
done

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }
# Running, and not a zombie: a component that exited after its starter did stays a zombie until
# its adoptive parent reaps it, and kill -0 still succeeds on it.
alive() {
  local pid state
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [ -n "$state" ] && [ "$state" != Z ]
}

healthy() {
  [ -f "$KCFG" ] || return 1
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  k get --raw /readyz --request-timeout=5s >/dev/null 2>&1 &&
    [ "$(curl -s --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz" 2>/dev/null)" = ok ]
}

if healthy; then
  log "already up and healthy in $W ($(k get nodes --no-headers 2>/dev/null | wc -l) nodes)"
  echo "export KUBECONFIG=$KCFG"
  exit 0
fi

if [ -d "$W" ]; then
  log "run dir $W exists but the plane is not healthy: stopping what is left and starting over"
  E2E_RUN_DIR="$W" bash "$here/cluster-down.sh" >&2
fi

for bin in "$ETCD_BIN/etcd" "$K8S_BIN/kube-apiserver" "$K8S_BIN/kube-controller-manager" "$K8S_BIN/kube-scheduler" "$KWOK_BIN/kwok"; do
  [ -x "$bin" ] || die "$bin is missing: build the tools first (make tools, or bash e2e/scripts/build-tools.sh)"
done
for tool in openssl curl "$KUBECTL"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required (make setup)"
done

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
  if port_in_use "$port"; then
    die "port 127.0.0.1:$port is already in use (another plane? set E2E_RUN_DIR and the E2E_*_PORT variables)"
  fi
done

t0=$(date +%s%N)
mkdir -p "$P" "$LOGS" "$PIDS" "$W/etcd" "$W/home"

# kubectl caches discovery per server address (~/.kube/cache/discovery/127.0.0.1_<port>). A new
# plane at the same address has other CRDs; the previous plane's cache would resolve a name
# (`jf`, `jobflow`) to a resource that is gone here and kubectl would answer NotFound.
rm -rf -- "${KUBECACHEDIR:-$HOME/.kube/cache}/discovery/127.0.0.1_$APISERVER_PORT"

# A start failure stops what was started (the logs stay in $W for inspection).
started=()
fail() { # component message
  log "ERROR: $1: $2"
  if [ -f "$LOGS/$1.log" ]; then
    log "last 40 lines of $LOGS/$1.log:"
    tail -n 40 "$LOGS/$1.log" >&2 || true
  fi
  local i pid sig
  for sig in TERM KILL; do
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
      pid="$(pid_of "${started[i]}")"
      if [ -n "$pid" ]; then kill "-$sig" "$pid" 2>/dev/null || true; fi
    done
    [ "$sig" = KILL ] || sleep 2
  done
  log "stopped the components started so far; logs kept in $LOGS (cluster-down.sh removes them)"
  exit 1
}

# ---- PKI (§8.6): one CA, the apiserver's serving cert, an admin client cert, the SA key pair ----
ssl() { openssl "$@" >>"$LOGS/pki.log" 2>&1 || fail pki "openssl $1 failed"; }
ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" \
  -days 3650 -subj /CN=jobsmith-e2e-ca
issue() { # name subject extfile-content
  printf '%s\n' "$3" >"$P/$1.ext"
  ssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$2"
  ssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 \
    -out "$P/$1.crt" -extfile "$P/$1.ext"
}
issue apiserver /CN=kube-apiserver "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
issue admin "/O=system:masters/CN=jobsmith-e2e-admin" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
ssl genrsa -out "$P/sa.key" 2048
ssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub"

# ---- kubeconfig (§8.7), used by the tests, the manager and the components alike ----
k config set-cluster e2e --server="https://127.0.0.1:$APISERVER_PORT" --certificate-authority="$P/ca.crt" --embed-certs=true >/dev/null
k config set-credentials e2e-admin --client-certificate="$P/admin.crt" --client-key="$P/admin.key" --embed-certs=true >/dev/null
k config set-context e2e --cluster=e2e --user=e2e-admin >/dev/null
k config use-context e2e >/dev/null
chmod 600 "$KCFG"

start() { # component binary args... (stdin, stdout and stderr detached: callers may read our stdout)
  local name="$1"; shift
  log "starting $name"
  setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  echo "$!" >"$PIDS/$name.pid"
  started+=("$name")
}

wait_ready() { # component timeout-seconds expected-body curl-args...
  local name="$1" timeout="$2" want="$3"; shift 3
  local deadline=$(($(date +%s) + timeout)) body
  while :; do
    alive "$name" || fail "$name" "the process exited during start-up"
    body="$(curl -s --max-time 2 "$@" 2>/dev/null || true)"
    [[ "$body" == *"$want"* ]] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "$name" "not ready after ${timeout}s (last answer: ${body:-none})"
    sleep 0.2
  done
  log "$name ready ($(( ($(date +%s%N) - t0) / 1000000 )) ms since start)"
}

# ---- etcd (§8.8) ----
start etcd "$ETCD_BIN/etcd" --name=e2e --data-dir="$W/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --auto-compaction-retention=1 --quota-backend-bytes=8589934592 --log-level=warn
wait_ready etcd 30 '"health":"true"' "http://127.0.0.1:$ETCD_PORT/health"

# ---- kube-apiserver (§8.9). Default admission plugins, as in a real cluster. ----
# The audit log is the tests' independent witness of every Job create/delete and of every write
# to our kinds' status (docs/e2e.md "Audit log"); everything else is not recorded.
cat >"$W/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, delete]
    resources: [{group: batch, resources: [jobs]}]
  - level: Metadata
    verbs: [patch, update]
    resources: [{group: jobsmith.dev}]
  - level: Metadata
    verbs: [create, patch, update]
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: Metadata
    verbs: [create, patch, update]
    resources: [{group: events.k8s.io, resources: [events]}, {group: "", resources: [events]}]
  - level: None
POLICY
apiserver_extra=()
controller_extra=()
if [ "${E2E_DISABLE_QPS_LIMITS:-0}" = 1 ]; then
  apiserver_extra=(--max-requests-inflight=0 --max-mutating-requests-inflight=0 --enable-priority-and-fairness=false)
  controller_extra=(--kube-api-qps=200 --kube-api-burst=400)
fi
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --kubelet-preferred-address-types=InternalIP \
  --allow-privileged=true --profiling=false --v=1 \
  --audit-policy-file="$W/audit-policy.yaml" --audit-log-path="$W/logs/audit.log" \
  --audit-log-format=json --audit-log-maxsize=200 --audit-log-maxbackup=1 "${apiserver_extra[@]}"
wait_ready kube-apiserver 90 ok --cacert "$P/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz"

# ---- kube-controller-manager (§8.10): every controller; node lifecycle removes the not-ready taint ----
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$KCFG" --authentication-kubeconfig="$KCFG" --authorization-kubeconfig="$KCFG" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --use-service-account-credentials=false --controllers='*' --profiling=false --v=1 "${controller_extra[@]}"
wait_ready kube-controller-manager 60 ok -k "https://127.0.0.1:$KCM_PORT/healthz"

# ---- kube-scheduler (§8.11) ----
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$KCFG" --authentication-kubeconfig="$KCFG" --authorization-kubeconfig="$KCFG" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false --profiling=false --v=1 \
  "${controller_extra[@]}"
wait_ready kube-scheduler 60 ok -k "https://127.0.0.1:$SCHEDULER_PORT/healthz"

# ---- kwok (§8.12): our stages from e2e/kwok/, templated for this plane ----
{
  first=1
  for f in "$repo/e2e/kwok/kwok.yaml" "$repo"/e2e/kwok/node-*.yaml "$repo"/e2e/kwok/pod-*.yaml "$repo"/e2e/kwok/logs-*.yaml; do
    [ "$first" = 1 ] || echo "---"
    first=0
    sed -e "s/__E2E_POD_DURATION_MS__/$POD_DURATION_MS/g" -e "s/__E2E_NODE_CPU__/$NODE_CPU/g" \
      -e "s/__E2E_NODE_MEMORY__/$NODE_MEMORY/g" -e "s/__E2E_NODE_PODS__/$NODE_PODS/g" \
      -e "s|__E2E_RUN_DIR__|$W|g" "$f"
  done
} >"$W/kwok.yaml"
# The container log kwok serves for every fake container (e2e/kwok/logs-fake-container.yaml), in
# the CRI log format (`<RFC 3339 time> <stream> F <line>`).
now="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
printf '%s stdout F %s\n' "$now" "jobsmith-e2e fake container: started" "$now" "jobsmith-e2e fake container: done" \
  >"$W/fake-container.log"
if grep -qE '__E2E_[A-Z_]+__' "$W/kwok.yaml"; then fail kwok "unsubstituted placeholder in $W/kwok.yaml"; fi
# HOME=$W/home: kwok reads ~/.kwok/kwok.yaml first if it exists; keep it out of the picture.
# --node-ip/--node-port: the fake nodes publish kwok's server as their kubelet endpoint, so the API
# server's pod log requests reach kwok (which serves TLS and plain HTTP on the one port).
start kwok env HOME="$W/home" "$KWOK_BIN/kwok" --kubeconfig="$KCFG" --config="$W/kwok.yaml" \
  --manage-all-nodes=true --node-lease-duration-seconds=40 --cidr=10.244.0.0/16 \
  --server-address="127.0.0.1:$KWOK_PORT" --node-ip=127.0.0.1 --node-port="$KWOK_PORT"
wait_ready kwok 60 ok "http://127.0.0.1:$KWOK_PORT/healthz"

# ---- nodes (§8.13) ----
{
  for ((i = 0; i < NODES; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
status:
  capacity: {cpu: "$NODE_CPU", memory: "$NODE_MEMORY", pods: "$NODE_PODS"}
  allocatable: {cpu: "$NODE_CPU", memory: "$NODE_MEMORY", pods: "$NODE_PODS"}
EOF
  done
} >"$W/nodes.yaml"
if [ "$NODES" -gt 0 ]; then
  k apply -f "$W/nodes.yaml" >>"$LOGS/nodes.log" 2>&1 || fail nodes "kubectl apply of $W/nodes.yaml failed"
  k wait --for=condition=Ready node --all --timeout=120s >>"$LOGS/nodes.log" 2>&1 || fail kwok "nodes not Ready after 120s"
  deadline=$(($(date +%s) + 120))
  while [ -n "$(k get nodes -o jsonpath='{range .items[*]}{.spec.taints}{end}')" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail kube-controller-manager "nodes still tainted after 120s: $(k get nodes -o jsonpath='{..taints}')"
    sleep 0.2
  done
  log "$NODES nodes Ready and untainted ($(( ($(date +%s%N) - t0) / 1000000 )) ms since start)"
fi

# ---- the default ServiceAccount (ServiceAccount admission needs it before any pod) ----
deadline=$(($(date +%s) + 60))
until k -n default get serviceaccount default >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$deadline" ] || fail kube-controller-manager "serviceaccount/default not created in namespace default after 60s"
  sleep 0.2
done

log "up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $("$K8S_BIN/kube-apiserver" --version), etcd $ETCD_VERSION, kwok $KWOK_VERSION; run dir $W"
echo "export KUBECONFIG=$KCFG"
