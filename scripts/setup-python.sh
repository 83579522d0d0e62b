#!/usr/bin/env bash
# Creates (once) the Python virtual environment for the stage jobs and the local infrastructure binaries
# (temporal, weed). Cached outside the work tree, keyed by the hash of jobs/requirements.txt, so a fresh
# clone on the same machine reuses it and a changed pin builds a new one. Prints the venv path last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${TAO_CACHE_DIR:-$HOME/.cache/tao}"
key="$(sha256sum "$root/jobs/requirements.txt" | cut -c1-12)"
venv="$cache/venv-$key"
mkdir -p "$cache"
# One builder at a time: parallel test runs (or a helper and CI) would otherwise delete each other's half-built venv.
exec 9>"$cache/venv.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip==25.3 >&2
  PIP_CACHE_DIR="$cache/pip" "$venv/bin/pip" install --quiet -r "$root/jobs/requirements.txt" >&2
  touch "$venv/.complete"
fi
# The jobs package is not installed: executors put jobs/src on PYTHONPATH so the venv always runs this checkout.
ln -sfn "$venv" "$cache/venv"
echo "$venv"
