#!/usr/bin/env bash
# Lints and tests the Python stage jobs: ruff check, ruff format --check, then pytest (CPU, offline).
# The venv comes from scripts/setup-python.sh (built once, cached). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(bash "$root/scripts/setup-python.sh")"
cd "$root"
"$venv/bin/ruff" check jobs
"$venv/bin/ruff" format --check jobs
PYTHONPATH="$root/jobs/src" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  "$venv/bin/python" -m pytest jobs/tests -q "$@"
