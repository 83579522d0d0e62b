"""Checkpoint and resume: a train job killed (SIGKILL) after its first checkpoint is retried and resumes from
the last complete checkpoint in the store instead of starting over; the checkpoints go once it publishes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import stage_env
from tao_jobs.stages import train
from tao_jobs.store import Store
from tao_jobs.trainers.common import CHECKPOINT_MARKER, Checkpoints
from test_trainers_algorithms import train_spec

MAX_STEPS = 20


def _run_until_first_checkpoint(spec_path: Path, env: dict) -> list[dict]:
    """Starts the train job, SIGKILLs it as soon as it reports its first checkpoint; its progress events."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tao_jobs", "train", "--spec", spec_path.as_uri()],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=stage_env(env),
    )
    events: list[dict] = []
    deadline = time.time() + 240
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                events.append(json.loads(line))
                if "checkpoint" in events[-1]:
                    proc.kill()
                    break
            assert time.time() < deadline, "no checkpoint reported in time"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -9, f"the job ended on its own ({proc.returncode}) before it could be killed"
    return events


def test_a_killed_job_resumes_from_its_last_checkpoint(tmp_path, monkeypatch, capsys):
    spec = train_spec(tmp_path, "grpo", maxSteps=MAX_STEPS, learningRate=1e-3)
    spec_path = tmp_path / "specs" / "resume.json"
    spec_path.write_text(json.dumps(spec))
    (tmp_path / "tmp").mkdir()
    env = {"TAO_CHECKPOINT_STEPS": "1", "TMPDIR": str(tmp_path / "tmp")}
    first = _run_until_first_checkpoint(spec_path, env)
    step1_loss = next(e["loss"] for e in first if e.get("done") == 1 and "loss" in e)

    out = Path(spec["output"].removeprefix("file://"))
    assert not (out / "manifest.json").exists()
    steps = Checkpoints(Store(), spec["output"]).complete_steps()
    assert steps and 1 <= steps[-1] < MAX_STEPS
    assert (out / "checkpoints" / f"checkpoint-{steps[-1]}" / CHECKPOINT_MARKER).is_file()

    capsys.readouterr()
    monkeypatch.setenv("TAO_CHECKPOINT_STEPS", "1")
    manifest = train.run(spec, Store())  # the retry: same spec, same output prefix
    m = manifest["metrics"]
    assert m["resumedFromStep"] == steps[-1] > 0
    assert m["steps"] == MAX_STEPS and math.isfinite(m["loss"]) and m["klToBase"] > 0
    # The log history came back with the checkpoint: firstLoss is the killed run's first step.
    assert abs(m["firstLoss"] - step1_loss) < 1e-4
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    trained = [e["done"] for e in events if e["event"] == "progress" and "loss" in e]
    assert trained == list(range(steps[-1] + 1, MAX_STEPS + 1))  # only the remaining steps were trained
    assert not (out / "checkpoints").exists()
    assert (out / "merged" / "model.safetensors").is_file() and (out / "manifest.json").is_file()

    # The same run without the kill ends on the same numbers: the resume restored weights, optimizer, scheduler,
    # data order and RNG states, not just the step counter.
    whole = train.run(train_spec(tmp_path / "whole", "grpo", maxSteps=MAX_STEPS, learningRate=1e-3), Store())
    for k in ("loss", "firstLoss", "klToBase", "kl"):
        assert whole["metrics"][k] == pytest.approx(m[k], rel=1e-5, abs=1e-7), k
