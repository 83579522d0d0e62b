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
