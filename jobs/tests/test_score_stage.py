"""score stage: rows per (sample, scorer) plus combined, metrics, and bad generations."""

from __future__ import annotations

import pytest

from conftest import make_spec, read_jsonl, read_manifest, run_stage, spec_output, write_jsonl
from tao_jobs.contract import BadInput, InvalidSpec
from tao_jobs.spec import load
from tao_jobs.stages import score

PARAMS = {
    "scorers": [
        {"name": "digit", "type": "regex", "weight": 3, "params": {"pattern": "[0-9]"}},
        {"name": "short", "type": "length", "weight": 1, "params": {"max": 10}},
    ],
    "tasks": {"chat": ["short"]},
}


def prepared(pid: str, task: str | None = None) -> dict:
    return {"prompt_id": pid, "messages": [{"role": "user", "content": f"{pid}?"}], "task": task}


def gen(pid: str, sid: str, text: str) -> dict:
    sampling = {"temperature": 1.0, "top_p": 1.0, "seed": 1}
    return {
        "prompt_id": pid,
        "sample_id": sid,
        "strategy": "plain",
        "sampling": sampling,
        "text": text,
        "finish_reason": "stop",
        "model_rev": "m",
    }


def setup_inputs(tmp_path, generations: list, raw_lines: dict | None = None) -> None:
    write_jsonl(tmp_path / "in" / "prompts" / "shard-0000.jsonl", [prepared("a"), prepared("b", "chat")])
    write_jsonl(tmp_path / "in" / "generations.jsonl", generations, raw_lines=raw_lines)


def test_scores_every_sample_with_applicable_scorers(tmp_path):
    setup_inputs(
        tmp_path,
        [
            gen("a", "a-0", "8"),
            gen("a", "a-1", "eight legs in all"),
            gen("b", "b-0", "hi 1"),
            gen("b", "b-1", "hi 2"),
        ],
    )
    spec = make_spec("score", tmp_path, params=PARAMS)
    rc, _, stderr, _ = run_stage("score", spec)
    assert rc == 0, stderr
    out = spec_output(spec)
    m = read_manifest(out)
    assert m["outputs"] == {"scores": "scores.jsonl"}
    rows = read_jsonl(out + "scores.jsonl")
    table = {(r["prompt_id"], r["sample_id"], r["scorer"]): r["score"] for r in rows}
    assert table[("a", "a-0", "digit")] == 1.0 and table[("a", "a-0", "short")] == 1.0
    assert table[("a", "a-0", "combined")] == 1.0
    assert table[("a", "a-1", "combined")] == pytest.approx((0 + 1 * (1 - 7 / 10)) / 4)
    assert ("b", "b-0", "digit") not in table  # task "chat" uses only "short"
    assert table[("b", "b-0", "combined")] == 1.0
    assert len(rows) == 2 * 3 + 2 * 2
    assert rows[0] == {
        "prompt_id": "a",
        "sample_id": "a-0",
        "scorer": "digit",
        "score": 1.0,
        "details": {"matched": True},
    }
    assert "details" not in rows[2] and rows[2]["scorer"] == "combined"
    metrics = m["metrics"]
    assert metrics["samples"] == 4 and metrics["prompts"] == 2
    assert metrics["zeroVarianceFraction"] == 0.5  # prompt b: both samples score 1.0
    assert metrics["scorerMeans"]["digit"] == 0.5
    assert metrics["meanCombined"] == pytest.approx((1 + 0.075 + 1 + 1) / 4)
    assert m["records"] == {"in": 4, "out": 10}
    files = {f["path"]: f for f in m["files"]}
    assert files["scores.jsonl"]["records"] == 10


def test_unknown_prompt_id_names_file_and_line(tmp_path):
    setup_inputs(tmp_path, [gen("a", "a-0", "x"), gen("zzz", "z-0", "x")])
    uri = (tmp_path / "in" / "generations.jsonl").as_uri()
    rc, _, _, reason = run_stage("score", make_spec("score", tmp_path, params=PARAMS))
    assert rc == 65
    assert reason == f"bad input: {uri}:2: prompt_id 'zzz' is not in the prompts input"


def test_corrupt_generation_line_names_file_and_line(tmp_path):
    setup_inputs(tmp_path, [gen("a", "a-0", "x"), None, gen("a", "a-2", "y")], raw_lines={2: '{"prompt_id": "a"'})
    uri = (tmp_path / "in" / "generations.jsonl").as_uri()
    rc, _, _, reason = run_stage("score", make_spec("score", tmp_path, params=PARAMS))
    assert rc == 65
    assert reason.startswith(f"bad input: {uri}:2: not valid JSON")


def test_duplicate_sample_and_missing_text(tmp_path):
    setup_inputs(tmp_path, [gen("a", "a-0", "x"), gen("a", "a-0", "y")])
    spec, store = load(make_spec("score", tmp_path, params=PARAMS), "score")
    with pytest.raises(BadInput, match=r"generations.jsonl:2: duplicate sample 'a-0' of prompt 'a'"):
        score.run(spec, store)
    bad = gen("a", "a-1", "x")
    del bad["text"]
    setup_inputs(tmp_path, [bad])
    with pytest.raises(BadInput, match=r"generations.jsonl:1: missing field 'text'"):
        score.run(spec, store)


def test_bad_scorer_params_exit_64(tmp_path):
    setup_inputs(tmp_path, [gen("a", "a-0", "x")])
    params = {
        "scorers": [{"name": "r", "type": "regex", "weight": 1, "params": {"pattern": "("}}],
        "tasks": {},
    }
    rc, _, _, reason = run_stage("score", make_spec("score", tmp_path, params=params))
    assert rc == 64
    assert "params.scorers.0.params.pattern: not a valid regular expression" in reason
    spec, store = load(make_spec("score", tmp_path, params={"scorers": []}), "score")
    with pytest.raises(InvalidSpec, match="params.scorers: at least one scorer"):
        score.run(spec, store)


def test_empty_shard_scores_nothing(tmp_path):
    setup_inputs(tmp_path, [])
    spec, store = load(make_spec("score", tmp_path, params=PARAMS), "score")
    m = score.run(spec, store)
    assert m["metrics"]["samples"] == 0 and m["metrics"]["meanCombined"] is None
    assert m["metrics"]["promptsWithoutSamples"] == 2
