#!/usr/bin/env bash
# GPU checks for the stage jobs, run on a GPU machine whose Python has vLLM (the generate image):
#   1. the pytest tests marked `gpu` (real vLLM engine and the generate stage with engine=vllm);
#   2. a vLLM generation throughput measurement through the engine interface (one SamplingParams and seed per
#      request, as the generate stage does), next to the transformers engine on the same GPU.
# Usage: scripts/gpu-check.sh [MODEL_DIR]   (default: a tiny random model built on the spot, no download)
# Env: PYTHON (default python3), BENCH_PROMPTS (512), BENCH_MAX_TOKENS (128).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python3}"
export PYTHONPATH="$root/jobs/src" HF_HUB_OFFLINE=1 TAO_TERMINATION_LOG="${TMPDIR:-/tmp}/tao-gpu-check-reason"

nvidia-smi -L
"$py" -c 'import torch, vllm; assert torch.cuda.is_available(), "no CUDA device"; print("vllm", vllm.__version__, "torch", torch.__version__)'

(cd "$root/jobs" && "$py" -m pytest -m gpu -q -p no:cacheprovider tests)

"$py" - "${1:-}" <<'PY'
import json, os, sys, tempfile, time
from pathlib import Path

from tao_jobs.engines import Request, open_engine
from tao_jobs.models import tiny
from tao_jobs.strategies import sample_seed

model_dir = sys.argv[1]
if not model_dir:
    model_dir = Path(tempfile.mkdtemp(prefix="tao-bench-"))
    tiny.build("tiny://bench?hidden=256&layers=4&steps=0", model_dir)  # random weights: runs to max_tokens
n = int(os.environ.get("BENCH_PROMPTS", "512"))
max_tokens = int(os.environ.get("BENCH_MAX_TOKENS", "128"))
questions = [f"Question {i}: how many legs does a spider have?" for i in range(n)]
requests = [
    Request([{"role": "user", "content": q}], 1.0, 1.0, max_tokens, sample_seed(0, 1, f"p{i}", "plain", 0))
    for i, q in enumerate(questions)
]

def measure(name, reqs, **opts):
    engine = open_engine(name, Path(model_dir), **opts)
    engine.generate(reqs[:8])  # warm-up (CUDA graphs, kernels)
    t0 = time.time()
    out = engine.generate(reqs)
    dt = time.time() - t0
    engine.close()
    tokens = sum(c.tokens for c in out)
    return {"engine": name, "samples": len(out), "seconds": round(dt, 2),
            "samplesPerSecond": round(len(out) / dt, 1), "tokensPerSecond": round(tokens / dt, 1)}

results = [measure("vllm", requests, gpu_memory_utilization=0.5)]
results.append(measure("transformers", requests[: min(n, 128)], batch_size=64))
print(json.dumps({"model": str(model_dir), "maxTokens": max_tokens, "results": results}, indent=2))
PY
