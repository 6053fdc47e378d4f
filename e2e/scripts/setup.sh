#!/usr/bin/env bash
# Installs what the project needs on a fresh machine of this kind and checks the rest. Idempotent
# and quick (well under a second) when everything is present.
#   * Debian packages (apt-get, only when one is missing): openssl, curl, jq, make, shellcheck,
#     diffutils (`kubectl diff` runs `diff`), tmux, graphviz, librsvg2-bin (the plugin's tests);
#     for the image (make image and its tests): buildah (builds and runs it), skopeo (inspects it),
#     docker-registry (a local registry for the tests) and file (checks the binary is static);
#   * Rust: rustfmt and clippy for the pinned toolchain (rustup, only when missing);
#   * Go >= 1.26 (builds the local control plane; kwok v0.8.0 needs 1.26), checked, not installed;
#   * kubectl, checked (the machine image ships it);
#   * the disk: disk.sh reports the caches and keeps the cargo target dir within its budget.
set -euo pipefail
log() { printf '[setup] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_apt=()
# command:package. tmux drives the plugin's watch-mode test; Graphviz `dot` draws its SVG graphs and
# rsvg-convert (librsvg) checks that they render.
for pair in openssl:openssl curl:curl jq:jq make:make shellcheck:shellcheck diff:diffutils tmux:tmux \
  dot:graphviz rsvg-convert:librsvg2-bin buildah:buildah skopeo:skopeo docker-registry:docker-registry \
  file:file; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || die "cargo is required (rustup, toolchain of rust-toolchain.toml)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  log "rustup component add rustfmt clippy"
  rustup component add rustfmt clippy
fi

command -v go >/dev/null 2>&1 || die "Go >= 1.26 is required to build the local control plane (not found)"
go_version="$(go env GOVERSION 2>/dev/null || true)"
if ! [[ "$go_version" =~ ^go1\.([0-9]+) ]] || [ "${BASH_REMATCH[1]}" -lt 26 ]; then
  die "Go >= 1.26 is required to build the local control plane (found '${go_version:-none}')"
fi

command -v "${KUBECTL:-kubectl}" >/dev/null 2>&1 || die "kubectl is required (set KUBECTL to its path)"

log "ok: $(rustc --version | awk '{print "rustc", $2}'), $go_version, kubectl $("${KUBECTL:-kubectl}" version --client 2>/dev/null | awk 'NR==1{print $3}')"

# The caches' sizes and the free space, and a budget that keeps them inside the disk.
bash "$(dirname "${BASH_SOURCE[0]}")/disk.sh"
