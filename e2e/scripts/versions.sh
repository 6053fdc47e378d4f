# shellcheck shell=bash disable=SC2034  # sourced; the variables are used by the sourcing scripts
# Pinned versions of the local control plane. Sourced by the other scripts.
# Changing a version changes the cache key, so the next run rebuilds only that tool.
# 1.35.8, not 1.35.7: the module proxy here answers 403 "This module version is not available" for
# k8s.io/kubernetes v1.35.7 (and v1.35.10); v1.35.4 and v1.35.8 with all 29 staging modules are served.
K8S_VERSION=1.35.8
K8S_STAGING_VERSION=0.35.8
ETCD_VERSION=3.6.14
KWOK_VERSION=0.8.0
HELM_VERSION=3.21.4
# The libraries of our own small Go checkers (e2e/toolchain/<tool>/main.go): the Argo CD health
# script harness (gopher-lua, the Lua that Argo CD embeds) and the kstatus checker (cli-utils).
GOPHER_LUA_VERSION=1.1.2
CLI_UTILS_VERSION=0.37.2
HELM_UNITTEST_VERSION=1.1.2
# Kueue for e2e/tests/kueue.rs; v0.17.0 is the one version the module proxy serves here.
KUEUE_VERSION=0.17.0
E2E_CACHE="${E2E_CACHE:-$HOME/.cache/jobsmith-e2e}"
GO_VERSION_TAG="$(go env GOVERSION 2>/dev/null || echo unknown)"
tool_dir() { echo "$E2E_CACHE/$1-v$2-$GO_VERSION_TAG-linux-amd64"; }
K8S_BIN="$(tool_dir k8s "$K8S_VERSION")/bin"
ETCD_BIN="$(tool_dir etcd "$ETCD_VERSION")/bin"
KWOK_BIN="$(tool_dir kwok "$KWOK_VERSION")/bin"
HELM_BIN="$(tool_dir helm "$HELM_VERSION")/bin"
# Our own checkers are keyed by their library version plus a hash of their source, go.mod and
# go.sum, so that an edit of the source builds a new binary.
own_tool_key() { # tool library-version
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../toolchain/$1" && pwd)"
  echo "$2-$(cat "$dir/main.go" "$dir/go.mod" "$dir/go.sum" 2>/dev/null | sha256sum | cut -c1-12)"
}
ARGOCD_LUA_BIN="$(tool_dir argocd-lua "$(own_tool_key argocd-lua "$GOPHER_LUA_VERSION")")/bin"
KSTATUS_BIN="$(tool_dir kstatus "$(own_tool_key kstatus "$CLI_UTILS_VERSION")")/bin"
HELM_UNITTEST_BIN="$(tool_dir helm-unittest "$HELM_UNITTEST_VERSION")/bin"
KUEUE_DIR="$(tool_dir kueue "$KUEUE_VERSION")"
