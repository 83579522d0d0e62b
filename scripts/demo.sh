#!/usr/bin/env bash
# The demo round: installs what is missing, then runs one complete TAO round on the embedded default.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
exec node --import tsx scripts/demo.ts "$@"
