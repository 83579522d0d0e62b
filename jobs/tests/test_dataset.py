"""dataset stage: best vs worst per prompt, margins, deterministic ties, TRL format, the zero-pairs error."""

from __future__ import annotations

import pytest

from conftest import make_spec, read_jsonl, run_stage, spec_output, write_jsonl
from tao_jobs.contract import BadInput, InvalidSpec
from tao_jobs.spec import load
from tao_jobs.stages import dataset

MESSAGES = {pid: [{"role": "user", "content": f"question {pid}?"}] for pid in "abcd"}


def write_shard(tmp_path, i: int, scores: dict[str, dict[object, float]], extra_rows: list | None = None) -> None:
    """One shard: prompts, generations and scores; ``scores`` maps prompt_id -> {sample_id: combined}."""
    prompts = [{"prompt_id": pid, "messages": MESSAGES[pid], "task": None} for pid in scores]
    gens, rows = [], []
    for pid, samples in scores.items():
        for sid, s in samples.items():
            gens.append({"prompt_id": pid, "sample_id": sid, "text": f"answer {pid}/{sid}"})
            rows.append({"prompt_id": pid, "sample_id": sid, "scorer": "rule", "score": 0.5, "details": {}})
            rows.append({"prompt_id": pid, "sample_id": sid, "scorer": "combined", "score": s})
    write_jsonl(tmp_path / "in" / f"p{i}.jsonl", prompts)
    write_jsonl(tmp_path / "in" / f"g{i}.jsonl", gens)
    write_jsonl(tmp_path / "in" / f"s{i}.jsonl", rows + (extra_rows or []))


def spec_for(tmp_path, shards: int, min_margin: float = 0.1) -> str:
    return make_spec(
        "dataset",
        tmp_path,
        inputs={
            "prompts": [f"in/p{i}.jsonl" for i in range(shards)],
            "generations": [f"in/g{i}.jsonl" for i in range(shards)],
            "scores": [f"in/s{i}.jsonl" for i in range(shards)],
        },
        params={"minMargin": min_margin},
    )


def run_in_process(uri: str) -> dict:
    spec, store = load(uri, "dataset")
    return dataset.run(spec, store)


def test_pairs_margins_and_trl_format(tmp_path):
    write_shard(tmp_path, 0, {"a": {"s0": 0.2, "s1": 0.9, "s2": 0.5}, "b": {"s0": 0.5, "s1": 0.55}})
    write_shard(tmp_path, 1, {"c": {"s0": 1.0, "s1": 0.0}, "d": {"s0": 0.3}})
    uri = spec_for(tmp_path, 2, min_margin=0.1)
    rc, _, stderr, _ = run_stage("dataset", uri)
    assert rc == 0, stderr
    rows = read_jsonl(spec_output(uri) + "dpo.jsonl")
    assert [r["prompt_id"] for r in rows] == ["a", "c"]
    a = rows[0]
    assert a["prompt"] == MESSAGES["a"]
    assert a["chosen"] == [{"role": "assistant", "content": "answer a/s1"}]
    assert a["rejected"] == [{"role": "assistant", "content": "answer a/s0"}]
    assert a["margin"] == pytest.approx(0.7) and a["chosen_score"] == 0.9 and a["rejected_score"] == 0.2
    m = run_in_process(uri)  # same key: the manifest already there wins
    assert m["metrics"] == {
        "prompts": 4,
        "samples": 8,
        "pairs": 2,
        "droppedLowMargin": 1,
        "droppedTooFewSamples": 1,
        "meanMargin": pytest.approx((0.7 + 1.0) / 2),
    }
    assert m["outputs"] == {"dataset": "dpo.jsonl"}


def test_margin_equal_to_min_is_kept_and_zero_margin_never(tmp_path):
    write_shard(tmp_path, 0, {"a": {"s0": 0.5, "s1": 0.75}, "b": {"s0": 0.4, "s1": 0.4}})
    m = run_in_process(spec_for(tmp_path, 1, min_margin=0.25))
    assert m["metrics"]["pairs"] == 1
    write_shard(tmp_path, 0, {"a": {"s0": 0.5, "s1": 0.75}, "b": {"s0": 0.4, "s1": 0.4}})
    m = run_in_process(spec_for(tmp_path, 1, min_margin=0.0))
    assert m["metrics"]["pairs"] == 1 and m["metrics"]["droppedLowMargin"] == 1


def test_ties_pick_lowest_sample_id():
    best, worst = dataset.pick_pair([("s3", 1.0), ("s1", 1.0), ("s2", 0.0), ("s0", 0.0)])
    assert best == ("s1", 1.0) and worst == ("s0", 0.0)
    best, worst = dataset.pick_pair([(10, 0.5), (2, 0.5), (7, 0.1), (3, 0.1)])
    assert best == (2, 0.5) and worst == (3, 0.1)  # integers numerically, not "10" < "2"


def test_zero_pairs_is_bad_input_with_a_reason(tmp_path):
    write_shard(tmp_path, 0, {"a": {"s0": 0.5, "s1": 0.5}, "b": {"s0": 1.0, "s1": 1.0}})
    rc, _, _, reason = run_stage("dataset", spec_for(tmp_path, 1, min_margin=0.1))
    assert rc == 65
    assert "no prompt had a best-worst margin >= 0.1" in reason
    assert "the scorers gave every sample the same score?" in reason


def test_inconsistent_inputs(tmp_path):
    write_shard(tmp_path, 0, {"a": {"s0": 0.1, "s1": 0.9}})
    uri = make_spec(
        "dataset",
        tmp_path,
        inputs={
            "prompts": ["in/p0.jsonl"],
            "generations": ["in/g0.jsonl", "in/g0.jsonl"],
            "scores": ["in/s0.jsonl"],
        },
    )
    with pytest.raises(InvalidSpec, match="inputs.generations: 2 entries but inputs.prompts has 1"):
        run_in_process(uri)
    stray = [{"prompt_id": "a", "sample_id": "s9", "scorer": "combined", "score": 1.0}]
    write_shard(tmp_path, 0, {"a": {"s0": 0.1, "s1": 0.9}}, extra_rows=stray)
    with pytest.raises(BadInput, match=r"s0.jsonl:5: score for sample 's9' of prompt 'a', not generated"):
        run_in_process(spec_for(tmp_path, 1))
    write_shard(tmp_path, 0, {"a": {"s0": 0.1, "s1": 0.9}})
    (tmp_path / "in" / "s0.jsonl").write_text("\n".join((tmp_path / "in" / "s0.jsonl").read_text().splitlines()[:3]))
    with pytest.raises(BadInput, match=r"g0.jsonl:2: sample 's1' of prompt 'a' has no 'combined' score"):
        run_in_process(spec_for(tmp_path, 1))
    (tmp_path / "in" / "s0.jsonl").write_text('{"prompt_id": "a", "sample_id": "s0", "scorer": "combined"}\n')
    with pytest.raises(BadInput, match=r"s0.jsonl:1: missing field 'score'"):
        run_in_process(spec_for(tmp_path, 1))


def test_unscored_samples_are_never_paired(tmp_path):
    # s9 got no combined score (every scorer abstained, e.g. unparseable judge verdicts): it would be the
    # worst sample if its null were read as 0; it must be left out instead.
    write_shard(tmp_path, 0, {"a": {"s0": 0.2, "s1": 0.9, "s9": None}})
    uri = spec_for(tmp_path, 1)
    manifest = run_in_process(uri)
    rows = read_jsonl(spec_output(uri) + "dpo.jsonl")
    assert [(r["chosen_sample_id"], r["rejected_sample_id"]) for r in rows] == [("s1", "s0")]
    assert manifest["metrics"]["pairs"] == 1
