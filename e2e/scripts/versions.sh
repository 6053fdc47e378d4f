# Pinned versions of the local control plane. Sourced by the other scripts.
# Changing a version changes the cache key, so the next run rebuilds only that tool.
K8S_VERSION=1.35.7
K8S_STAGING_VERSION=0.35.7
ETCD_VERSION=3.6.14
KWOK_VERSION=0.8.0
HELM_VERSION=3.21.4
E2E_CACHE="${E2E_CACHE:-$HOME/.cache/jobsmith-e2e}"
GO_VERSION_TAG="$(go env GOVERSION 2>/dev/null || echo unknown)"
tool_dir() { echo "$E2E_CACHE/$1-v$2-$GO_VERSION_TAG-linux-amd64"; }
K8S_BIN="$(tool_dir k8s "$K8S_VERSION")/bin"
ETCD_BIN="$(tool_dir etcd "$ETCD_VERSION")/bin"
KWOK_BIN="$(tool_dir kwok "$KWOK_VERSION")/bin"
HELM_BIN="$(tool_dir helm "$HELM_VERSION")/bin"
