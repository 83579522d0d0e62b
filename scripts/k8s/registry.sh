#!/usr/bin/env bash
# Makes sure a local image registry answers at ${TAO_REGISTRY:-localhost:5000} (plain HTTP, loopback only):
# uses a running one, else starts Debian's docker-registry with its storage, config, log and pid file under
# ${TAO_CACHE_DIR:-$HOME/.cache/tao}/registry/ (kept across runs, so pushed images stay cached). It keeps
# running, like a system service.
set -euo pipefail
REGISTRY="${TAO_REGISTRY:-localhost:5000}"
dir="${TAO_CACHE_DIR:-$HOME/.cache/tao}/registry"
if curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; then exit 0; fi
command -v docker-registry >/dev/null || { echo "registry: no registry at $REGISTRY and no docker-registry: apt-get install docker-registry" >&2; exit 1; }
port="${REGISTRY##*:}"
mkdir -p "$dir/storage"
cat >"$dir/config.yml" <<CFG
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $dir/storage }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$port
CFG
setsid docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
echo $! >"$dir/registry.pid"
for _ in $(seq 60); do
  if curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; then exit 0; fi
  kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || break
  sleep 0.5
done
echo "registry: docker-registry did not answer at $REGISTRY within 30 s: see $dir/registry.log" >&2
tail -5 "$dir/registry.log" >&2
exit 1
