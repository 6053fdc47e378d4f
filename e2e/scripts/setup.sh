#!/usr/bin/env bash
# Installs what the project needs on a fresh machine of this kind: Debian packages (openssl, curl,
# jq), the Rust components, and checks Go. Idempotent and quick when everything is present.
set -euo pipefail
need_apt=()
for bin in openssl curl jq; do command -v "$bin" >/dev/null 2>&1 || need_apt+=("$bin"); done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "[setup] apt-get install ${need_apt[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
command -v go >/dev/null 2>&1 || { echo "[setup] Go is required (go1.26) to build the local control plane" >&2; exit 1; }
command -v kubectl >/dev/null 2>&1 || { echo "[setup] kubectl is required" >&2; exit 1; }
echo "[setup] ok: $(rustc --version), $(go version | awk '{print $3}'), kubectl $(kubectl version --client 2>/dev/null | head -1 | awk '{print $3}')" >&2
