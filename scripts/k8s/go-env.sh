# Sourced by the build scripts in this folder: one Go environment for every module they build, so the
# module and build caches are shared and an interrupted build resumes incrementally. Needs CACHE_ROOT.
export GOMODCACHE="$CACHE_ROOT/gomod"
export GOCACHE="$CACHE_ROOT/gocache"
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
mkdir -p "$GOMODCACHE" "$GOCACHE"
