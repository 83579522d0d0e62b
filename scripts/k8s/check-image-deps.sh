#!/usr/bin/env bash
# Checks that an image's pinned requirements resolve to binary wheels for the image's platform (CPython 3.12,
# manylinux x86_64: the public python:3.12-slim-bookworm base), without building it: `pip install --dry-run`
# resolves every dependency from the index's metadata and downloads no package files where the index serves
# metadata separately (PyPI does). For the images too large to build in a CI run (generate: vLLM + CUDA
# torch, about 15 GB): build those with
#   docker build -f k8s/images/generate.Dockerfile -t <registry>/tao-generate:<version> .
# on a machine with room for them (scripts/k8s/build-images.sh generate does it with the local base).
#
#   scripts/k8s/check-image-deps.sh generate|score|score-vllm|train|jobs-cpu
# Prints "<image>: <n> packages resolve (torch x, vllm y, ...)"; exits non-zero with pip's conflict otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
image="${1:?usage: check-image-deps.sh generate|score|score-vllm|train|jobs-cpu}"
py="${TAO_CHECK_PYTHON:-${TAO_CACHE_DIR:-$HOME/.cache/tao}/venv/bin/python}"
[[ -x "$py" ]] || py=python3
case "$image" in
score-vllm) reqs=(-r "$root/k8s/images/requirements-score.txt" -r "$root/k8s/images/requirements-score-vllm.txt") ;;
generate | score | train | jobs-cpu) reqs=(-r "$root/k8s/images/requirements-$image.txt") ;;
*) echo "check-image-deps: unknown image '$image'" >&2; exit 2 ;;
esac
# bookworm's glibc is 2.36: every manylinux_2_<n> up to it is installable
platforms=()
for n in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
# cached by the requirement files' content: the same pins resolved once need no second look at the index
cache="${TAO_CACHE_DIR:-$HOME/.cache/tao}/images"
files=()
for ((i = 1; i < ${#reqs[@]}; i += 2)); do files+=("${reqs[$i]}"); done
key="$(cat "${files[@]}" | sha256sum | cut -c1-16)"
if [[ -s "$cache/deps-$image-$key.txt" ]]; then cat "$cache/deps-$image-$key.txt"; exit 0; fi
mkdir -p "$cache"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$py" -m pip install --quiet --dry-run --ignore-installed --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  "${platforms[@]}" --platform manylinux2014_x86_64 --platform linux_x86_64 --platform any \
  --target "$(mktemp -d)" --report "$report" "${reqs[@]}" >&2
{
  "$py" - "$report" "$image" <<'PY'
import json, sys
report, image = json.load(open(sys.argv[1])), sys.argv[2]
versions = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}
key = ", ".join(f"{k} {versions[k]}" for k in ("torch", "vllm", "transformers", "triton") if k in versions)
print(f"{image}: {len(versions)} packages resolve ({key})")
PY
} >"$cache/deps-$image-$key.txt.tmp"
mv "$cache/deps-$image-$key.txt.tmp" "$cache/deps-$image-$key.txt"
cat "$cache/deps-$image-$key.txt"
