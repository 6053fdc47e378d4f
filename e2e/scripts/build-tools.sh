#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy into a cache outside the repo,
# keyed by tool, version and Go version. A directory counts as built only once its STAMP file exists
# (written last), so an interrupted build is redone. The throwaway modules' go.mod/go.sum live in
# e2e/toolchain/<tool>/ and pin every module hash (sum.golang.org is not reachable here, so the
# committed go.sum is what verifies the downloads).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$here/versions.sh"
# GOPROXY is left as configured (`go env GOPROXY`); GOSUMDB=off because go.sum pins every hash.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOSUMDB=off
# Write go.mod/go.sum back into the repo only when asked (used when bumping a version).
UPDATE_LOCK="${UPDATE_LOCK:-0}"

log() { printf '[build-tools] %s\n' "$*" >&2; }

# Built: the STAMP exists and every binary it lists is still there, executable, with its hash.
# shellcheck disable=SC2094  # the STAMP is only read here (-nt compares times)
stamp_ok() {
  [ -f "$1/STAMP" ] || return 1
  local sum file n=0
  while read -r sum file; do
    [[ "$sum" =~ ^[0-9a-f]{64}$ ]] || continue
    n=$((n + 1))
    [ -x "$1/bin/$file" ] || return 1
    # Size and mtime are checked cheaply on every run; the full hash only when they changed.
    if [ "$1/bin/$file" -nt "$1/STAMP" ]; then
      [ "$(sha256sum <"$1/bin/$file" | awk '{print $1}')" = "$sum" ] || return 1
    fi
  done <"$1/STAMP"
  [ "$n" -gt 0 ]
}
write_stamp() { # dir tool version
  local dir="$1" tool="$2" version="$3"
  { echo "tool=$tool"; echo "version=$version"; echo "go=$GO_VERSION_TAG"; (cd "$dir/bin" && sha256sum -- *); } >"$dir/STAMP.tmp"
  mv "$dir/STAMP.tmp" "$dir/STAMP"
}

# Prepares $E2E_CACHE/src/<tool>-<version> from the committed go.mod/go.sum (or creates them).
prepare_module() { # tool version -> prints the module dir
  local tool="$1" version="$2" src="$E2E_CACHE/src/$1-v$2"
  mkdir -p "$src"
  # A go.mod without go.sum is what a failed `go mod init && go get` leaves behind: start over,
  # otherwise the next run would skip the require/replace/get steps and build from a bare module.
  if [ -f "$src/go.mod" ] && [ ! -f "$src/go.sum" ]; then rm -f "$src/go.mod"; fi
  if [ -f "$repo/e2e/toolchain/$tool/go.mod" ]; then
    cp "$repo/e2e/toolchain/$tool/go.mod" "$src/go.mod"
    [ -f "$repo/e2e/toolchain/$tool/go.sum" ] && cp "$repo/e2e/toolchain/$tool/go.sum" "$src/go.sum"
  fi
  echo "$src"
}

save_lock() { # tool src
  if [ "$UPDATE_LOCK" = 1 ] || [ ! -f "$repo/e2e/toolchain/$1/go.sum" ]; then
    mkdir -p "$repo/e2e/toolchain/$1"
    cp "$2/go.mod" "$2/go.sum" "$repo/e2e/toolchain/$1/"
  fi
}

build_k8s() {
  local out; out="$(tool_dir k8s "$K8S_VERSION")"
  stamp_ok "$out" && { log "k8s v$K8S_VERSION cached"; return; }
  log "building kube-apiserver, kube-controller-manager, kube-scheduler v$K8S_VERSION (slow on a cold cache)"
  local src; src="$(prepare_module k8s "$K8S_VERSION")"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init jobsmith.invalid/k8sbins
    go mod edit -go=1.25.0 -godebug=default=go1.25 -require="k8s.io/kubernetes@v$K8S_VERSION"
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
      cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
      cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
      kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
      mount-utils pod-security-admission sample-apiserver; do
      go mod edit -replace="k8s.io/$m=k8s.io/$m@v$K8S_STAGING_VERSION"
    done
    go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S_VERSION"
  fi
  go mod download
  local ld="-s -w" date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  mkdir -p "$out/bin"
  go build -ldflags "$ld" -o "$out/bin/" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
  "$out/bin/kube-apiserver" --version
  save_lock k8s "$src"
  write_stamp "$out" k8s "$K8S_VERSION"
}

build_etcd() {
  local out; out="$(tool_dir etcd "$ETCD_VERSION")"
  stamp_ok "$out" && { log "etcd v$ETCD_VERSION cached"; return; }
  log "building etcd v$ETCD_VERSION"
  local src; src="$(prepare_module etcd "$ETCD_VERSION")"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init jobsmith.invalid/etcdbin
    go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  fi
  go mod download
  mkdir -p "$out/bin"
  go build -ldflags "-s -w" -o "$out/bin/etcd" go.etcd.io/etcd/server/v3
  "$out/bin/etcd" --version
  save_lock etcd "$src"
  write_stamp "$out" etcd "$ETCD_VERSION"
}

build_kwok() {
  local out; out="$(tool_dir kwok "$KWOK_VERSION")"
  stamp_ok "$out" && { log "kwok v$KWOK_VERSION cached"; return; }
  log "building kwok v$KWOK_VERSION"
  local src; src="$(prepare_module kwok "$KWOK_VERSION")"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init jobsmith.invalid/kwokbin
    go mod edit -go=1.26.0
    go get -tool "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  fi
  go mod download
  mkdir -p "$out/bin"
  go build -ldflags "-s -w" -o "$out/bin/kwok" sigs.k8s.io/kwok/cmd/kwok
  "$out/bin/kwok" --version || true
  save_lock kwok "$src"
  write_stamp "$out" kwok "$KWOK_VERSION"
}

build_helm() {
  local out; out="$(tool_dir helm "$HELM_VERSION")"
  stamp_ok "$out" && { log "helm v$HELM_VERSION cached"; return; }
  log "building helm v$HELM_VERSION"
  local src; src="$(prepare_module helm "$HELM_VERSION")"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init jobsmith.invalid/helmbin
    go mod edit -go=1.26.0
    go get -tool "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  fi
  go mod download
  mkdir -p "$out/bin"
  go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" -o "$out/bin/helm" helm.sh/helm/v3/cmd/helm
  save_lock helm "$src"
  write_stamp "$out" helm "$HELM_VERSION"
}

# Our own small checkers: main.go and the pinned go.mod/go.sum live in e2e/toolchain/<tool>/.
build_own() { # tool binary library-module library-version
  local tool="$1" bin="$2" lib="$3" version="$4"
  local key; key="$(own_tool_key "$tool" "$version")"
  local out; out="$(tool_dir "$tool" "$key")"
  stamp_ok "$out" && { log "$tool $key cached"; return; }
  log "building $bin ($lib v$version)"
  local src; src="$(prepare_module "$tool" "$key")"
  cp "$repo/e2e/toolchain/$tool/main.go" "$src/main.go"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init "jobsmith.invalid/$tool"
    go mod edit -go=1.26.0
    go get "$lib@v$version"
    go mod tidy
  fi
  go mod download
  mkdir -p "$out/bin"
  go build -ldflags "-s -w" -o "$out/bin/$bin" .
  save_lock "$tool" "$src"
  write_stamp "$out" "$tool" "$key"
}

# Argo CD health scripts run as Argo CD runs argocd-cm scripts (docs/gitops.md).
build_argocd_lua() { build_own argocd-lua argocd-lua-health github.com/yuin/gopher-lua "$GOPHER_LUA_VERSION"; }
# kstatus of live objects, as Flux computes it (docs/gitops.md).
build_kstatus() { build_own kstatus kstatus-check sigs.k8s.io/cli-utils "$CLI_UTILS_VERSION"; }

# helm-unittest, the chart's unit tests; the binary runs on its own (`helm-unittest CHART`, what
# the `helm unittest` plugin runs).
# v1.1.2 needs github.com/vmware-labs/yaml-jsonpath replaced by its fork, as its own go.mod does
# (a replace in a dependency's go.mod does not apply to the module that builds it).
build_helm_unittest() {
  local out; out="$(tool_dir helm-unittest "$HELM_UNITTEST_VERSION")"
  stamp_ok "$out" && { log "helm-unittest v$HELM_UNITTEST_VERSION cached"; return; }
  log "building helm-unittest v$HELM_UNITTEST_VERSION"
  local src; src="$(prepare_module helm-unittest "$HELM_UNITTEST_VERSION")"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init jobsmith.invalid/helmunittestbin
    go mod edit -go=1.26.0 \
      -replace=github.com/vmware-labs/yaml-jsonpath=github.com/helm-unittest/yaml-jsonpath@v0.4.0
    go get -tool "github.com/helm-unittest/helm-unittest/cmd/helm-unittest@v$HELM_UNITTEST_VERSION"
  fi
  go mod download
  mkdir -p "$out/bin"
  go build -ldflags "-s -w" -o "$out/bin/helm-unittest" github.com/helm-unittest/helm-unittest/cmd/helm-unittest
  save_lock helm-unittest "$src"
  write_stamp "$out" helm-unittest "$HELM_UNITTEST_VERSION"
}

# Kueue's manager, run as a host process by e2e/tests/kueue.rs (docs/integrations.md), and its CRDs
# copied from the same module (config/components/crd/bases) into the tool dir next to the binary,
# so that the test installs exactly the CRDs of the binary it runs.
build_kueue() {
  local out; out="$(tool_dir kueue "$KUEUE_VERSION")"
  stamp_ok "$out" && [ -d "$out/crds" ] && { log "kueue v$KUEUE_VERSION cached"; return; }
  log "building kueue v$KUEUE_VERSION (slow on a cold cache)"
  local src; src="$(prepare_module kueue "$KUEUE_VERSION")"
  cd "$src"
  if [ ! -f go.mod ]; then
    go mod init jobsmith.invalid/kueuebin
    go mod edit -go=1.26.0
    go get -tool "sigs.k8s.io/kueue/cmd/kueue@v$KUEUE_VERSION"
  fi
  go mod download
  mkdir -p "$out/bin" "$out/crds"
  go build -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=v$KUEUE_VERSION" \
    -o "$out/bin/kueue" sigs.k8s.io/kueue/cmd/kueue
  local mod; mod="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
  cp "$mod"/config/components/crd/bases/*.yaml "$out/crds/"
  chmod u+w "$out"/crds/*.yaml
  save_lock kueue "$src"
  write_stamp "$out" kueue "$KUEUE_VERSION"
}

# Default: the local control plane. Opt in to the others by name.
want="${*:-k8s etcd kwok}"
for t in $want; do
  declare -F "build_${t//-/_}" >/dev/null || { log "ERROR: unknown tool '$t' (known: k8s etcd kwok helm helm-unittest argocd-lua kstatus kueue)"; exit 2; }
done
mkdir -p "$E2E_CACHE"
for t in $want; do
  start=$(date +%s)
  # One build per tool at a time across processes: a second caller waits, then finds the stamp.
  exec {lock}>"$E2E_CACHE/.build-$t.lock"
  if ! flock -n "$lock"; then
    log "another build of $t is running: waiting for it"
    flock "$lock"
  fi
  (
    cd "$repo"
    "build_${t//-/_}"
  )
  exec {lock}>&-
  log "$t done in $(( $(date +%s) - start ))s"
done
