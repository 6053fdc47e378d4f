#!/usr/bin/env bash
# Installs the kubectl plugin: BINARY as BINDIR/kubectl-jobsmith, plus the names it answers to
# as symlinks: kubectl-managedjob (the seed plugin's visualize/list/status), and the
# kubectl_complete-jobsmith / kubectl_complete-managedjob helpers of kubectl's plugin completion.
#   usage: cli/install-plugin.sh BINARY BINDIR      (`make install-plugin` calls it)
set -euo pipefail
log() { printf '[install-plugin] %s\n' "$*" >&2; }
[ "$#" -eq 2 ] || { log "usage: $0 BINARY BINDIR"; exit 2; }
binary="$1" bindir="$2"
[ -x "$binary" ] || { log "ERROR: $binary is not an executable (build it first)"; exit 1; }
mkdir -p "$bindir"
install -m 0755 "$binary" "$bindir/kubectl-jobsmith"
for name in kubectl-managedjob kubectl_complete-jobsmith kubectl_complete-managedjob; do
  ln -sfn kubectl-jobsmith "$bindir/$name"
done
log "installed kubectl-jobsmith, kubectl-managedjob and their completion helpers into $bindir"
case ":$PATH:" in
  *":$bindir:"*) ;;
  *) log "add $bindir to PATH to use them: export PATH=\"$bindir:\$PATH\"" ;;
esac
