"""The generate stage end to end (``python -m tao_jobs generate``), its sample plan, and chunk resume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import make_spec, read_jsonl, read_manifest, run_stage, spec_output, write_jsonl
from tao_jobs.models.local import model_rev, tiny_cached
from tao_jobs.strategies import assign, build_messages, sample_seed

MODEL = "tiny://engine?steps=100"


def _prompts(n: int) -> list[dict]:
    qs = ["How many legs does a cat have?", "How many days are in a week?", "How many strings does a guitar have?"]
    return [
        {"prompt_id": f"p{i}", "messages": [{"role": "user", "content": qs[i % 3]}], "task": "trivia", "source": None}
        for i in range(n)
    ]


PARAMS = {
    "samplesPerPrompt": 4,
    "strategies": ["plain", "concise"],
    "temperatures": [0.7, 1.0],
    "topP": 0.95,
    "maxTokens": 16,
    "seed": 3,
}


def test_generate_end_to_end(tmp_path):
    model_dir = tiny_cached(MODEL)
    write_jsonl(tmp_path / "in" / "shard.jsonl", _prompts(5))
    spec = make_spec(
        "generate",
        tmp_path,
        inputs={"prompts": "in/shard.jsonl", "model": model_dir.as_uri() + "/"},
        params=PARAMS,
    )
    rc, stdout, stderr, reason = run_stage("generate", spec)
    assert rc == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]  # stdout is JSON lines only
    assert [e["done"] for e in events if e["event"] == "progress"][-1] == 5
    out = spec_output(spec)
    manifest = read_manifest(out)
    assert manifest["outputs"] == {"generations": "generations.jsonl"}
    rows = read_jsonl(Path(out.removeprefix("file://")) / "generations.jsonl")
    assert len(rows) == 20 and manifest["records"] == {"in": 5, "out": 20}
    rev = model_rev(model_dir)
    for r in rows:
        assert set(r) == {"prompt_id", "sample_id", "strategy", "sampling", "text", "finish_reason", "model_rev"}
        assert set(r["sampling"]) == {"temperature", "top_p", "seed", "max_tokens"}
        plan = assign(4, PARAMS["strategies"], PARAMS["temperatures"])[r["sample_id"]]
        assert (r["strategy"], r["sampling"]["temperature"]) == (plan.strategy, plan.temperature)
        assert r["sampling"]["seed"] == sample_seed(3, 1, r["prompt_id"], r["strategy"], r["sample_id"])
        assert r["finish_reason"] in ("stop", "length") and r["model_rev"] == rev
    assert len({r["sampling"]["seed"] for r in rows}) == 20  # no shared seeds
    m = manifest["metrics"]
    assert m["prompts"] == 5 and m["samples"] == 20 and sum(m["finishReasons"].values()) == 20
    assert m["meanLength"] == pytest.approx(sum(len(r["text"]) for r in rows) / 20)
    assert m["samplesPerSecond"] > 0
    assert not (Path(out.removeprefix("file://")) / "chunks").exists() or not any(
        (Path(out.removeprefix("file://")) / "chunks").iterdir()
    )


def test_sample_plan_round_robin_and_messages():
    plan = assign(6, ["plain", "concise"], [0.7, 1.2])
    assert [(p.strategy, p.temperature) for p in plan] == [
        ("plain", 0.7),
        ("concise", 0.7),
        ("plain", 1.2),
        ("concise", 1.2),
        ("plain", 0.7),
        ("concise", 0.7),
    ]
    assert Counter(p.strategy for p in assign(8, ["plain", "cot", "json"], [1.0])) == {"plain": 3, "cot": 3, "json": 2}
    user = [{"role": "user", "content": "q"}]
    assert build_messages("plain", user) == user
    assert build_messages("cot", user)[0]["role"] == "system" and build_messages("cot", user)[1:] == user
    merged = build_messages("concise", [{"role": "system", "content": "Task rules."}, *user])
    assert len(merged) == 2 and merged[0]["content"].endswith("\n\nTask rules.")
    assert (
        sample_seed(0, 1, "p", "plain", 0) == sample_seed(0, 1, "p", "plain", 0) != sample_seed(0, 2, "p", "plain", 0)
    )


def test_a_rerun_resumes_from_finished_chunks_with_identical_rows(tmp_path, monkeypatch):
    from tao_jobs.stages import generate
    from tao_jobs.store import Store

    monkeypatch.setattr(generate, "CHUNK_PROMPTS", 2)
    model = tiny_cached(MODEL).as_uri() + "/"
    write_jsonl(tmp_path / "in" / "shard.jsonl", _prompts(5))
    inputs = {"prompts": "in/shard.jsonl", "model": model}
    full_spec = json.loads(Path(make_spec("generate", tmp_path, inputs=inputs, params=PARAMS)[7:]).read_text())
    generate.run(full_spec, Store())
    full = read_jsonl(full_spec["output"] + "generations.jsonl")

    # A killed attempt left the first two chunks (2 prompts x 4 samples each) in the output prefix.
    spec = json.loads(Path(make_spec("generate", tmp_path, inputs=inputs, params=PARAMS)[7:]).read_text())
    out = Path(spec["output"].removeprefix("file://"))
    for i in range(2):
        write_jsonl(out / "chunks" / f"chunk-{i:05d}.jsonl", full[i * 8 : (i + 1) * 8])
    manifest = generate.run(spec, Store())
    assert manifest["metrics"]["resumedChunks"] == 2
    assert read_jsonl(out / "generations.jsonl") == full
    assert not list((out / "chunks").glob("*.jsonl"))  # chunks are removed once the manifest is written


def test_exit_codes(tmp_path):
    bad_param = make_spec("generate", tmp_path, params={"temperatures": []})
    rc, _, stderr, reason = run_stage("generate", bad_param)
    assert rc == 64 and "temperatures" in reason
    missing = make_spec("generate", tmp_path, inputs={"prompts": "in/none.jsonl"})
    rc, _, _, reason = run_stage("generate", missing)
    assert rc == 65 and "none.jsonl" in reason


@pytest.mark.gpu
def test_generate_stage_with_vllm(tmp_path):
    """The same stage and schema with engine=vllm (GPU image); seeds make a rerun identical."""
    from tao_jobs.models import tiny

    model_dir = tmp_path / "model"
    tiny.build("tiny://gpu?hidden=256&steps=100", model_dir)  # head_dim 64
    write_jsonl(tmp_path / "in" / "shard.jsonl", _prompts(6))
    texts = []
    for _ in range(2):
        inputs = {"prompts": "in/shard.jsonl", "model": model_dir.as_uri() + "/"}
        spec = make_spec("generate", tmp_path, inputs=inputs, params=PARAMS | {"engine": "vllm"})
        rc, _, stderr, _ = run_stage("generate", spec, timeout=600)
        assert rc == 0, stderr
        rows = read_jsonl(spec_output(spec) + "generations.jsonl")
        assert len(rows) == 24 and all(r["finish_reason"] in ("stop", "length") for r in rows)
        texts.append([r["text"] for r in rows])
    assert texts[0] == texts[1]
