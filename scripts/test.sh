#!/usr/bin/env bash
# The whole test suite (what CI runs): installs what is missing, static checks, Python job tests, then the
# TypeScript tests against real servers (Temporal dev server, SeaweedFS) started by tests/global-setup.ts.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
echo "== static checks"
npx tsc --noEmit
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
node --import tsx scripts/gen-schema.ts --check
node --import tsx scripts/check-bundle.ts
echo "== Python stage jobs"
bash scripts/test-python.sh
echo "== Kubernetes control plane binaries (built from Go modules once, then cached by version)"
bash scripts/k8s/build-control-plane.sh >/dev/null
bash scripts/k8s/build-kustomize.sh >/dev/null
echo "== Real node and images (kubelet and kubectl from Go modules; images cached by content in a local registry)"
bash scripts/k8s/build-kubelet.sh >/dev/null
bash scripts/k8s/registry.sh
bash scripts/k8s/build-images.sh pause probe worker jobs-cpu >/dev/null
echo "== TypeScript: unit, integration, end to end"
npx vitest run "$@"
