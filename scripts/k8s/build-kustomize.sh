#!/usr/bin/env bash
# Builds the real kustomize CLI (sigs.k8s.io/kustomize/kustomize/v5) from the Go module proxy, cached by
# version under
#   ${TAO_CACHE_DIR:-$HOME/.cache/tao}/k8s/kustomize-<version>/kustomize
# (GOMODCACHE and GOCACHE shared with build-control-plane.sh). Idempotent: a cached binary returns at once.
# The binary's path is printed last on stdout.
#
#   KUSTOMIZE_VERSIONS="5.8.2 5.8.1"   versions to try in order (first that builds wins). 5.8.3 is left out:
#                                      its go.mod says go 1.27 (kustomize/api v0.21.3) and Go here is 1.26.
set -euo pipefail

CACHE_ROOT="${TAO_CACHE_DIR:-$HOME/.cache/tao}/k8s"
KUSTOMIZE_VERSIONS="${KUSTOMIZE_VERSIONS:-5.8.2 5.8.1}"

for v in $KUSTOMIZE_VERSIONS; do
  if [[ -x "$CACHE_ROOT/kustomize-$v/kustomize" ]]; then
    echo "$CACHE_ROOT/kustomize-$v/kustomize"
    exit 0
  fi
done

log() { echo "[build-kustomize $(date -u +%H:%M:%S)] $*" >&2; }
command -v go >/dev/null || { log "go not found (Go >= 1.26 is needed)"; exit 1; }

# shellcheck source=go-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

started=$(date +%s)
for v in $KUSTOMIZE_VERSIONS; do
  dir="$CACHE_ROOT/kustomize-$v"
  gobin="$dir/gobin.tmp"
  rm -rf "$gobin" && mkdir -p "$dir"
  log "kustomize v$v: go install sigs.k8s.io/kustomize/kustomize/v5@v$v"
  # go.mod of kustomize/v5 has no replace directives, so `go install module@version` works directly; the
  # module version lands in the binary's build info, which `kustomize version` prints.
  if (cd "$dir" && GOBIN="$gobin" nice -n 10 go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kustomize/kustomize/v5@v$v" >&2); then
    "$gobin/kustomize" version >&2
    mv "$gobin/kustomize" "$dir/kustomize" # the binary appears last: its presence means "complete"
    rm -rf "$gobin"
    log "done in $(($(date +%s) - started))s"
    echo "$dir/kustomize"
    exit 0
  fi
  rm -rf "$gobin"
  log "kustomize v$v failed to build; trying the next version"
done
log "no kustomize version built (tried: $KUSTOMIZE_VERSIONS)"
exit 1
