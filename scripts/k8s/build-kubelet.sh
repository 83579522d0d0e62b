#!/usr/bin/env bash
# Builds the node's binaries, the kubelet and kubectl (k8s.io/kubernetes/cmd/{kubelet,kubectl}), from Go
# modules, the same way and at the same version as build-control-plane.sh builds the control plane, cached under
#   ${TAO_CACHE_DIR:-$HOME/.cache/tao}/k8s/<k8s-version>/node/{kubelet,kubectl}   (.complete written last)
# GOMODCACHE and GOCACHE are shared with the control plane's build (go-env.sh), so after it this takes under a
# minute. Idempotent: a complete cache returns at once. The kubelet's path is printed last on stdout (kubectl
# is next to it).
#
#   K8S_VERSIONS="1.36.3 1.35.4 1.34.4"   the first whose control plane is built wins (the kubelet must stay
#                                         within the apiserver's version skew), else the first that builds.
set -euo pipefail

CACHE_ROOT="${TAO_CACHE_DIR:-$HOME/.cache/tao}/k8s"
K8S_VERSIONS="${K8S_VERSIONS:-1.36.3 1.35.4 1.34.4}"
log() { echo "[build-kubelet $(date -u +%H:%M:%S)] $*" >&2; }

# Same version as the control plane when one is built.
order=""
for v in $K8S_VERSIONS; do
  if [[ -f "$CACHE_ROOT/$v/bin/.complete" ]]; then order="$v" && break; fi # the one build-control-plane.sh returns
done
[[ -n "$order" ]] && K8S_VERSIONS="$order"

for v in $K8S_VERSIONS; do
  if [[ -f "$CACHE_ROOT/$v/node/.complete" && -x "$CACHE_ROOT/$v/node/kubectl" ]]; then
    echo "$CACHE_ROOT/$v/node/kubelet"
    exit 0
  fi
done

command -v go >/dev/null || { log "go not found: install Go >= 1.26 (https://go.dev/dl) to build the kubelet"; exit 1; }
# one build at a time (concurrent test runs); the second finds the cache complete after the first
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build-kubelet.lock"
flock 9
for v in $K8S_VERSIONS; do
  if [[ -f "$CACHE_ROOT/$v/node/.complete" && -x "$CACHE_ROOT/$v/node/kubectl" ]]; then
    echo "$CACHE_ROOT/$v/node/kubelet"
    exit 0
  fi
done
# shellcheck source=go-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

build() { # <version> <node dir> <scratch dir>
  local v="$1" out="$2" src="$3"
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}" patch="${rest#*.}"
  local staging="v0.${minor}.${patch}"
  rm -rf "$src" && mkdir -p "$src" "$out" && cd "$src"
  go mod init tao.local/kubelet-build >/dev/null 2>&1
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$gomod" ]] || { log "no go.mod for k8s.io/kubernetes v$v"; return 1; }
  # the staging modules are required at v0.0.0 with local replaces a dependent module ignores: pin them
  # (see build-control-plane.sh)
  local mods args=()
  mods="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*#\1#p' "$gomod" | sort -u)"
  for m in $mods; do args+=("-replace=$m=$m@$staging"); done
  go mod edit "${args[@]}" "-require=k8s.io/kubernetes@v$v"
  local goline
  goline="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -1)"
  [[ -n "$goline" ]] && go mod edit "-go=$goline"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubectl"\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n)\n' >tools.go
  log "k8s v$v: go mod tidy"
  nice -n 10 go mod tidy
  local pkg="k8s.io/component-base/version"
  local ldflags="-s -w -X $pkg.gitVersion=v$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  local cmd
  for cmd in kubelet kubectl; do
    [[ -x "$out/$cmd" ]] && continue
    log "k8s v$v: building $cmd"
    nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$out/$cmd.tmp" "$out/$cmd"
  done
  "$out/kubelet" --version >&2
  "$out/kubectl" version --client >&2
}

started=$(date +%s)
for v in $K8S_VERSIONS; do
  out="$CACHE_ROOT/$v/node"
  set +e
  (set -e; build "$v" "$out" "$CACHE_ROOT/$v/src-kubelet")
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then
    log "kubelet v$v failed to build (exit $rc); trying the next version"
    continue
  fi
  printf 'kubernetes=v%s\ngo=%s\nbuild_seconds=%s\n' "$v" "$(go env GOVERSION)" "$(($(date +%s) - started))" \
    >"$out/.complete"
  log "done in $(($(date +%s) - started))s"
  echo "$out/kubelet"
  exit 0
done
log "the kubelet did not build (tried: $K8S_VERSIONS); see the go errors above"
exit 1
