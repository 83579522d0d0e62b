#!/usr/bin/env bash
# Makes sure a Docker engine answers: uses a running one, else starts Debian's dockerd (as root, where no
# init system runs it) with its log and pid file under ${TAO_CACHE_DIR:-$HOME/.cache/tao}/docker-engine/ and
# waits up to 60 s. It keeps running, like a system service. A missing engine stops this with one line.
set -euo pipefail
DOCKER="${DOCKER:-docker}"
[[ -x /usr/bin/docker ]] && ! docker buildx version >/dev/null 2>&1 && DOCKER=/usr/bin/docker
if "$DOCKER" info >/dev/null 2>&1; then exit 0; fi
dir="${TAO_CACHE_DIR:-$HOME/.cache/tao}/docker-engine"
command -v dockerd >/dev/null || { echo "docker-engine: no Docker engine and no dockerd: apt-get install docker.io" >&2; exit 1; }
[[ "$(id -u)" = 0 ]] || { echo "docker-engine: no Docker engine answering and starting dockerd needs root" >&2; exit 1; }
mkdir -p "$dir"
setsid dockerd --pidfile "$dir/dockerd.pid" >>"$dir/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 60); do
  if "$DOCKER" info >/dev/null 2>&1; then exit 0; fi
  kill -0 $! 2>/dev/null || break
  sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s: see the end of $dir/dockerd.log" >&2
tail -5 "$dir/dockerd.log" >&2
exit 1
