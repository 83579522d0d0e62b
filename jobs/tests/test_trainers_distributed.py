"""The train job under torchrun (two CPU processes, gloo DDP): every rank trains, only rank 0 reports progress,
writes the outputs and the manifest."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from conftest import read_manifest, stage_env
from test_trainers_algorithms import train_spec


def test_torchrun_two_processes_rank_zero_publishes(tmp_path):
    spec = train_spec(tmp_path, "grpo", maxSteps=2, learningRate=1e-3)
    path = tmp_path / "specs" / "ddp.json"
    path.write_text(json.dumps(spec))
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "tao_jobs", "train", "--spec", path.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=stage_env({"OMP_NUM_THREADS": "1"}))
    assert p.returncode == 0, p.stderr[-3000:]
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    steps = [e["done"] for e in events if e["event"] == "progress" and "loss" in e]
    assert steps == [1, 2]  # one progress line per step: rank 1 is silent
    assert [e["checkpoint"] for e in events if "checkpoint" in e] == [1, 2]
    done = [e for e in events if e["event"] == "done" and e["metrics"]]
    assert len(done) == 1  # (rank 1's entry point prints a "done" line with no metrics)
    manifest = read_manifest(spec["output"])
    m = manifest["metrics"]
    assert m["steps"] == 2 and m["trainSamples"] == 8 and math.isfinite(m["loss"]) and m["klToBase"] > 0
    out = Path(spec["output"].removeprefix("file://"))
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "merged" / "model.safetensors").is_file()
    assert not (out / "checkpoints").exists()


def test_launcher_keeps_the_contract_exit_codes(tmp_path):
    """torchrun alone exits 1 for a worker's 65; tao_jobs.torchrun exits 65 (no retry), and 1 for a crash."""
    fail = tmp_path / "fail.py"
    fail.write_text("import os, sys\nsys.exit(int(os.environ['CODE']))\n")
    torchrun = Path(sys.executable).parent / "torchrun"
    flags = ["--standalone", "--nproc-per-node=2", "--max-restarts=0", str(fail)]
    for code, plain, ours in [(65, 1, 65), (64, 1, 64), (3, 1, 1), (0, 0, 0)]:
        env = stage_env({"OMP_NUM_THREADS": "1", "CODE": str(code)})
        alone = subprocess.run([str(torchrun), *flags], capture_output=True, text=True, timeout=120, env=env)
        assert alone.returncode == plain, alone.stderr[-2000:]
        wrapped = subprocess.run(
            [sys.executable, "-m", "tao_jobs.torchrun", *flags], capture_output=True, text=True, timeout=120, env=env
        )
        assert wrapped.returncode == ours, wrapped.stderr[-2000:]
