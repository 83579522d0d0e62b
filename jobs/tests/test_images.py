"""The stage images (k8s/images/*.Dockerfile): not built here (no Docker engine), so their shape is checked:
the `python -m tao_jobs` entry point, the jobs source and the pinned requirements copied in, every pin exact,
no vLLM in the train image, and the train image on the versions the trainers' tests run on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT

IMAGES = REPO_ROOT / "k8s" / "images"
STAGES = ("generate", "score", "train")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)$")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    out, buf = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{dockerfile}: dangling line continuation"
    return out


def pins(path: Path) -> dict[str, str]:
    """name -> version of a requirements file; every requirement must be pinned with ==."""
    out: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.match(line)
        assert m, f"{path.name}:{n}: {line!r} is not pinned as name==version"
        name = m.group(1).lower().replace("_", "-")
        assert name not in out, f"{path.name}:{n}: {name} pinned twice"
        out[name] = m.group(2)
    assert out, f"{path.name}: no requirements"
    return out


def _requirement_files(stage: str) -> list[Path]:
    return sorted(IMAGES.glob(f"requirements-{stage}*.txt"))


@pytest.mark.parametrize("stage", STAGES)
def test_dockerfile_shape(stage):
    dockerfile = IMAGES / f"{stage}.Dockerfile"
    steps = instructions(dockerfile)
    kinds = [k for k, _ in steps]
    assert kinds[0] in ("FROM", "ARG") and "FROM" in kinds
    base = next(a for k, a in steps if k == "FROM")
    assert ":" in base and not base.endswith(":latest"), f"base image {base!r} must name a version tag"
    entry = [a for k, a in steps if k == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0]) == ["python", "-m", "tao_jobs"]
    assert "CMD" not in kinds  # the executor passes `<stage> --spec <uri>`
    copies = [a.split() for k, a in steps if k == "COPY"]
    assert ["jobs/src", "/opt/tao/src"] in copies
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "PYTHONPATH=/opt/tao/src" in env
    copied = {Path(src).name for c in copies for src in c[:-1]}
    runs = " ".join(a for k, a in steps if k == "RUN")
    for req in _requirement_files(stage):
        assert req.name in copied, f"{dockerfile.name} does not copy {req.name}"
        assert f"-r /tmp/{req.name}" in runs or "-r /tmp/requirements.txt" in runs
    assert (IMAGES / f"{stage}.Dockerfile.dockerignore").is_file()


@pytest.mark.parametrize("stage", STAGES)
def test_every_requirement_is_pinned_exactly(stage):
    files = _requirement_files(stage)
    assert files
    merged: dict[str, str] = {}
    for f in files:
        for name, version in pins(f).items():
            assert merged.setdefault(name, version) == version, f"{name} pinned to two versions for {stage}"
    assert {"boto3", "jsonschema", "torch", "transformers"} <= set(merged)


def test_vllm_where_it_belongs_and_not_in_the_train_image():
    assert "vllm" in pins(IMAGES / "requirements-generate.txt")
    assert "vllm" not in pins(IMAGES / "requirements-score.txt")  # the optional layer only
    assert "vllm" in pins(IMAGES / "requirements-score-vllm.txt")
    train = IMAGES / "train.Dockerfile"
    assert "vllm" not in pins(IMAGES / "requirements-train.txt")
    assert "vllm" not in " ".join(a for k, a in instructions(train) if k != "LABEL").lower()
    # vLLM pins torch exactly and caps transformers: the images that may carry it agree on both.
    gen, score = pins(IMAGES / "requirements-generate.txt"), pins(IMAGES / "requirements-score.txt")
    assert (gen["torch"], gen["transformers"], gen["vllm"]) == (
        score["torch"],
        score["transformers"],
        pins(IMAGES / "requirements-score-vllm.txt")["vllm"],
    )


def test_train_image_runs_the_versions_the_trainer_tests_run_on():
    dev = pins_loose(REPO_ROOT / "jobs" / "requirements.txt")
    train = pins(IMAGES / "requirements-train.txt")
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "safetensors", "tokenizers"):
        assert train[name] == dev[name], f"{name}: train image {train[name]} but dev {dev[name]}"


def pins_loose(path: Path) -> dict[str, str]:
    return {n.lower(): v for n, v in re.findall(r"(?m)^([A-Za-z0-9._-]+)==(\S+)", path.read_text())}
