#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler), etcd and
# kwok from Go modules (no Docker, no release downloads: only the Go module proxy), cached by version under
#   ${TAO_CACHE_DIR:-$HOME/.cache/tao}/k8s/<k8s-version>/bin      (.complete written last)
# with kwok's Stage configs copied to <k8s-version>/kwok-stage/. GOMODCACHE and GOCACHE live under the cache
# dir too, so a rebuild after a failure is incremental. Idempotent: a complete cache returns at once.
# The bin dir is printed last on stdout.
#
#   K8S_VERSIONS="1.36.3 1.35.4 1.34.4"   versions to try in order (first that builds wins)
#   ETCD_VERSION=3.6.16  KWOK_VERSIONS="0.8.0 0.7.0"
set -euo pipefail

CACHE_ROOT="${TAO_CACHE_DIR:-$HOME/.cache/tao}/k8s"
K8S_VERSIONS="${K8S_VERSIONS:-1.36.3 1.35.4 1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
KWOK_VERSIONS="${KWOK_VERSIONS:-0.8.0 0.7.0}"

# shellcheck source=go-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-env.sh"

log() { echo "[build-control-plane $(date -u +%H:%M:%S)] $*" >&2; }
NICE=(nice -n 10)

# A complete cache for any of the requested versions: done.
for v in $K8S_VERSIONS; do
  if [[ -f "$CACHE_ROOT/$v/bin/.complete" ]]; then
    echo "$CACHE_ROOT/$v/bin"
    exit 0
  fi
done

command -v go >/dev/null || { log "go not found (Go >= 1.25 is needed)"; exit 1; }

# One build at a time: concurrent test runs (each global setup calls this) would share the scratch dirs and
# move each other's outputs. The second waits, then finds the cache complete.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build-control-plane.lock"
flock 9
for v in $K8S_VERSIONS; do
  if [[ -f "$CACHE_ROOT/$v/bin/.complete" ]]; then
    echo "$CACHE_ROOT/$v/bin"
    exit 0
  fi
done

build_kubernetes() { # <version> <bin dir> <scratch dir>
  local v="$1" bin="$2" src="$3"
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}" patch="${rest#*.}"
  local staging="v0.${minor}.${patch}"
  rm -rf "$src" && mkdir -p "$src" && cd "$src"
  go mod init tao.local/k8s-build >/dev/null 2>&1
  log "k8s.io/kubernetes v$v: downloading its go.mod"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$gomod" ]] || { log "no go.mod for k8s.io/kubernetes v$v"; return 1; }
  # k8s.io/kubernetes requires every staging module at v0.0.0 with a local replace (=> ./staging/src/...),
  # which a dependent module ignores: pin each to the published v0.<minor>.<patch> instead.
  local mods
  mods="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*#\1#p' "$gomod" | sort -u)"
  [[ -n "$mods" ]] || { log "no staging replaces found in $gomod"; return 1; }
  local args=()
  for m in $mods; do args+=("-replace=$m=$m@$staging"); done
  go mod edit "${args[@]}" "-require=k8s.io/kubernetes@v$v"
  # go directive: at least what k8s.io/kubernetes asks for
  local goline
  goline="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -1)"
  [[ -n "$goline" ]] && go mod edit "-go=$goline"
  cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
EOF
  log "k8s v$v: go mod tidy ($(echo "$mods" | wc -l) staging modules pinned to $staging)"
  "${NICE[@]}" go mod tidy
  local pkg="k8s.io/component-base/version"
  local ldflags="-s -w -X $pkg.gitVersion=v$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  # client-go has its own copy of the version vars (used by some clients' user agents)
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$v -X k8s.io/client-go/pkg/version.gitMajor=$major"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  mkdir -p "$bin"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    log "k8s v$v: building $cmd"
    "${NICE[@]}" go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    mv "$bin/$cmd.tmp" "$bin/$cmd"
    "$bin/$cmd" --version >&2
  done
}

build_etcd() { # <bin dir> <scratch dir>
  local bin="$1" src="$2"
  rm -rf "$src" && mkdir -p "$src" && cd "$src"
  go mod init tao.local/etcd-build >/dev/null 2>&1
  # etcd's server module has replaces for its sibling modules (ignored as a dependency; the published
  # siblings at the same version are used). Its main package is the module root.
  cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  go mod edit "-require=go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  log "etcd v$ETCD_VERSION: go mod tidy"
  "${NICE[@]}" go mod tidy
  log "etcd v$ETCD_VERSION: building"
  "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$bin/etcd.tmp" "$bin/etcd"
  "$bin/etcd" --version >&2
}

build_kwok() { # <bin dir> <stage dir> <scratch dir>
  local bin="$1" stages="$2" src="$3" kv
  for kv in $KWOK_VERSIONS; do
    log "kwok v$kv: building"
    rm -rf "$src" && mkdir -p "$src"
    if (cd "$src" && GOBIN="$src/gobin" "${NICE[@]}" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$kv" >&2); then
      mv "$src/gobin/kwok" "$bin/kwok"
      local dir
      dir="$(cd "$src" && go mod download -json "sigs.k8s.io/kwok@v$kv" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
      rm -rf "$stages" && mkdir -p "$stages"
      cp -r "$dir/kustomize/stage/." "$stages/"
      chmod -R u+w "$stages"
      "$bin/kwok" --version >&2
      echo "v$kv" >"$stages/.kwok-version"
      return 0
    fi
    log "kwok v$kv failed to build"
  done
  return 1
}

started=$(date +%s)
for v in $K8S_VERSIONS; do
  dir="$CACHE_ROOT/$v"
  bin="$dir/bin"
  mkdir -p "$bin"
  if [[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -x "$bin/kube-scheduler" ]]; then
    log "k8s v$v: binaries already built"
  else
    # (errexit is ignored inside an `if`/`||` condition, so run the build as a plain command)
    set +e
    (set -e; build_kubernetes "$v" "$bin" "$dir/src-kubernetes")
    rc=$?
    set -e
    if [[ $rc -ne 0 ]]; then
      log "k8s v$v failed to build (exit $rc); trying the next version"
      continue
    fi
  fi
  if [[ ! -x "$bin/etcd" ]]; then (build_etcd "$bin" "$dir/src-etcd"); fi
  if [[ ! -x "$bin/kwok" || ! -f "$dir/kwok-stage/.kwok-version" ]]; then
    (build_kwok "$bin" "$dir/kwok-stage" "$dir/src-kwok")
  fi
  for b in kube-apiserver kube-controller-manager kube-scheduler etcd kwok; do
    "$bin/$b" --version >/dev/null 2>&1 || { log "$b --version failed"; exit 1; }
  done
  {
    echo "kubernetes=v$v"
    echo "etcd=v$ETCD_VERSION"
    echo "kwok=$(cat "$dir/kwok-stage/.kwok-version")"
    echo "go=$(go env GOVERSION)"
    echo "build_seconds=$(($(date +%s) - started))"
  } >"$bin/.complete"
  log "done in $(($(date +%s) - started))s"
  echo "$bin"
  exit 0
done
log "no Kubernetes version built (tried: $K8S_VERSIONS)"
exit 1
