#!/usr/bin/env bash
# Installs what the project needs on a fresh machine, idempotently: Node dependencies (npm ci, skipped when
# package-lock.json is unchanged since the last install) and the Python venv with the stage-job stack and the
# local infrastructure binaries (scripts/setup-python.sh, cached by requirements hash), and Chromium.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
stamp=node_modules/.tao-lock-sha
lock_sha="$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sha" ]; then
  npm ci --no-audit --no-fund >&2
  echo "$lock_sha" > "$stamp"
fi
bash scripts/setup-python.sh >/dev/null
# Chromium for the Web UI browser tests (Debian's package; playwright-core drives it, no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "chromium is missing: install Debian's chromium package (the browser tests need it)" >&2
  fi
fi
# The images and the real node (scripts/k8s/build-images.sh, scripts/dev/real-node.ts): Debian's Docker engine,
# containerd, runc, CNI plugins, a local registry and debootstrap. Installed as root when missing; otherwise (or
# when apt fails) one line names what is missing, and the tests that need it fail saying the same.
missing=()
for probe in docker.io:dockerd containerd:containerd runc:runc containernetworking-plugins:/usr/lib/cni/bridge \
  docker-registry:docker-registry debootstrap:debootstrap; do
  pkg="${probe%%:*}" what="${probe#*:}"
  if [ "${what:0:1}" = / ]; then [ -e "$what" ] || missing+=("$pkg"); else command -v "$what" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$what" >/dev/null 2>&1 || missing+=("$pkg"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && timeout 900 bash -c 'apt-get -o DPkg::Lock::Timeout=120 update -qq >&2 &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq "$@" >&2' _ "${missing[@]}"; then
    :
  else
    echo "missing for the images and the real node: ${missing[*]} (apt-get install ${missing[*]})" >&2
  fi
fi
