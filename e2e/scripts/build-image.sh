#!/usr/bin/env bash
# `make image`: builds the manager as a static executable (glibc, `-C target-feature=+crt-static`),
# checks that it really is static (`file`, `ldd`), and builds the image $IMAGE (default
# localhost/jobsmith:<workspace version>) from the Containerfile's `host` path with buildah, so
# that no base image is pulled: the build context is a directory holding only the binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
log() { printf '[image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cd "$repo"
version="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "$version" ] || die "no [workspace.package] version in Cargo.toml"
image="${IMAGE:-localhost/jobsmith:$version}"
triple="${STATIC_TARGET:-x86_64-unknown-linux-gnu}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target_dir/$triple/release/jobsmith"

start=$(date +%s)
# --target keeps RUSTFLAGS off build scripts and proc macros (they must stay dynamic host code).
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$triple" -p jobsmith-manager --bin jobsmith
log "static binary built in $(( $(date +%s) - start ))s: $bin"

# Really static: `file` says statically linked (static-pie included) and ldd finds no libraries.
described="$(file -b "$bin")"
case "$described" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) die "$bin is not static: $described" ;;
esac
if ldd_out="$(ldd "$bin" 2>&1)"; then
  grep -q "statically linked" <<<"$ldd_out" || die "ldd finds libraries in $bin: $ldd_out"
else
  grep -q "not a dynamic executable" <<<"$ldd_out" || die "ldd $bin: $ldd_out"
fi
log "static: $described"

context="$target_dir/image-context"
rm -rf "$context"
mkdir -p "$context"
# Without symbols (the image needs none; 39 MB -> about half). `strip` is binutils, which the
# Rust toolchain's linker (cc) brings along.
strip -o "$context/jobsmith" "$bin"
start=$(date +%s)
buildah bud --isolation chroot --layers=false \
  --build-arg BINARY_FROM=host --build-arg "VERSION=$version" \
  -f "$repo/Containerfile" -t "$image" "$context" >&2
# The image of the previous build lost its tag to this one: drop such untagged jobsmith images.
mapfile -t dangling < <(buildah images --quiet --filter dangling=true --filter 'label=org.opencontainers.image.title=jobsmith' 2>/dev/null || true)
if [ "${#dangling[@]}" -gt 0 ]; then buildah rmi "${dangling[@]}" >/dev/null 2>&1 || true; fi
log "built $image in $(( $(date +%s) - start ))s ($(buildah images --format '{{.Size}}' "$image"))"
echo "$image"
