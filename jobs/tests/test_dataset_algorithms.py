"""dataset stage per algorithm (sft, kto, grpo) on hand-made scores: rows, formats, drops, metrics, errors."""

from __future__ import annotations

import statistics

import pytest

from conftest import make_spec, read_jsonl, run_stage, spec_output, write_jsonl
from tao_jobs.contract import BadInput
from tao_jobs.spec import load
from tao_jobs.stages import dataset

MESSAGES = {pid: [{"role": "user", "content": f"question {pid}?"}] for pid in "abcdef"}


def _inputs(tmp_path, scores: dict[str, dict[object, float | None]]) -> None:
    """One shard: prompts, generations and combined scores; ``scores`` maps prompt_id -> {sample_id: score}."""
    prompts = [{"prompt_id": pid, "messages": MESSAGES[pid], "task": None} for pid in scores]
    gens, rows = [], []
    for pid, samples in scores.items():
        for sid, s in samples.items():
            gens.append({"prompt_id": pid, "sample_id": sid, "text": f"answer {pid}/{sid}"})
            rows.append({"prompt_id": pid, "sample_id": sid, "scorer": "combined", "score": s})
    write_jsonl(tmp_path / "in" / "p.jsonl", prompts)
    write_jsonl(tmp_path / "in" / "g.jsonl", gens)
    write_jsonl(tmp_path / "in" / "s.jsonl", rows)


def _run(tmp_path, algorithm: str, **params) -> tuple[dict, list[dict]]:
    uri = make_spec(
        "dataset",
        tmp_path,
        inputs={"prompts": ["in/p.jsonl"], "generations": ["in/g.jsonl"], "scores": ["in/s.jsonl"]},
        params={"algorithm": algorithm, **params},
    )
    spec, store = load(uri, "dataset")  # also validates the params against the stage-spec schema
    manifest = dataset.run(spec, store)
    return manifest, read_jsonl(spec_output(uri) + manifest["outputs"]["dataset"])


def _answer(pid: str, sid: str) -> list[dict]:
    return [{"role": "assistant", "content": f"answer {pid}/{sid}"}]


def test_sft_keeps_each_prompts_best_sample_above_min_score(tmp_path):
    _inputs(
        tmp_path,
        {
            "a": {"s0": 0.2, "s1": 0.9, "s2": 0.9},  # tie: lowest sample_id
            "b": {"s0": 0.3, "s1": 0.4},  # best below minScore
            "c": {"s0": 0.5},  # one sample is enough for SFT
            "d": {"s0": None},  # unscored: nothing to pick
        },
    )
    manifest, rows = _run(tmp_path, "sft", minScore=0.5)
    assert manifest["outputs"] == {"dataset": "sft.jsonl"}
    assert [(r["prompt_id"], r["sample_id"]) for r in rows] == [("a", "s1"), ("c", "s0")]
    assert rows[0]["prompt"] == MESSAGES["a"] and rows[0]["completion"] == _answer("a", "s1")
    assert rows[0]["score"] == 0.9 and "chosen" not in rows[0]
    assert manifest["metrics"] == {
        "algorithm": "sft",
        "prompts": 4,
        "samples": 6,
        "rows": 2,
        "droppedLowScore": 1,
        "droppedNoSamples": 1,
        "meanScore": pytest.approx(0.7),
    }


def test_kto_labels_top_and_bottom_quantiles_at_least_one_each(tmp_path):
    _inputs(
        tmp_path,
        {
            "a": {f"s{i}": i / 7 for i in range(8)},  # 8 samples, quantile 0.25: 2 up, 2 down
            "b": {"s0": 0.1, "s1": 0.9},  # 2 samples: 1 each
            "c": {"s0": 0.5, "s1": 0.5, "s2": 0.5},  # zero variance
            "d": {"s0": 1.0},  # too few
        },
    )
    manifest, rows = _run(tmp_path, "kto", ktoQuantile=0.25)
    assert manifest["outputs"] == {"dataset": "kto.jsonl"}
    labels = {(r["prompt_id"], r["sample_id"]): r["label"] for r in rows}
    assert labels == {
        ("a", "s7"): True,
        ("a", "s6"): True,
        ("a", "s0"): False,
        ("a", "s1"): False,
        ("b", "s1"): True,
        ("b", "s0"): False,
    }
    assert all(isinstance(r["label"], bool) for r in rows)
    assert all(r["completion"] == _answer(r["prompt_id"], r["sample_id"]) for r in rows)
    m = manifest["metrics"]
    assert (m["rows"], m["desirable"], m["undesirable"]) == (6, 3, 3)
    assert (m["droppedZeroVariance"], m["droppedTooFewSamples"]) == (1, 1)


def test_kto_drops_samples_tied_across_the_two_sides():
    # quantile 0.5 on [1, .5, .5, 0]: the two 0.5s would land on opposite sides; both are left out.
    good, bad = dataset.kto_labels([("s0", 1.0), ("s1", 0.5), ("s2", 0.5), ("s3", 0.0)], 0.5)
    assert good == [("s0", 1.0)] and bad == [("s3", 0.0)]
    # [1, 1, 1, 0] at 0.5: the best is always desirable, the worst always undesirable.
    good, bad = dataset.kto_labels([("s0", 1.0), ("s1", 1.0), ("s2", 1.0), ("s3", 0.0)], 0.5)
    assert good == [("s0", 1.0), ("s1", 1.0)] and bad == [("s3", 0.0)]


def test_grpo_group_relative_advantages_and_zero_variance_groups_dropped(tmp_path):
    _inputs(
        tmp_path,
        {
            "a": {"s0": 0.0, "s1": 0.5, "s2": 1.0},
            "b": {"s0": 0.2, "s1": 0.2},  # zero variance: no signal
            "c": {"s0": 0.9},  # too few
            "e": {"s0": 1.0, "s1": 0.0, "s2": None},  # the unscored sample is left out of the group
        },
    )
    manifest, rows = _run(tmp_path, "grpo")
    assert manifest["outputs"] == {"dataset": "grpo.jsonl"}
    adv = {(r["prompt_id"], r["sample_id"]): r["advantage"] for r in rows}
    std_a = statistics.stdev([0.0, 0.5, 1.0])
    assert adv[("a", "s0")] == pytest.approx(-0.5 / (std_a + 1e-6))
    assert adv[("a", "s1")] == pytest.approx(0.0)
    assert adv[("a", "s2")] == pytest.approx(0.5 / (std_a + 1e-6))
    std_e = statistics.stdev([1.0, 0.0])
    assert adv[("e", "s0")] == pytest.approx(0.5 / (std_e + 1e-6)) and ("e", "s2") not in adv
    assert all(sum(a for (p, _), a in adv.items() if p == pid) == pytest.approx(0, abs=1e-9) for pid in "ae")
    assert {r["score"] for r in rows if r["prompt_id"] == "a"} == {0.0, 0.5, 1.0}
    assert all(r["completion"] == _answer(r["prompt_id"], r["sample_id"]) for r in rows)
    m = manifest["metrics"]
    assert (m["rows"], m["groups"], m["droppedZeroVariance"], m["droppedTooFewSamples"]) == (5, 2, 1, 1)
    assert m["algorithm"] == "grpo" and m["meanAbsAdvantage"] > 0


@pytest.mark.parametrize(
    ("algorithm", "params", "reason"),
    [
        ("sft", {"minScore": 0.95}, "no SFT rows: no prompt's best sample scored >= minScore 0.95"),
        ("kto", {}, "no KTO rows: no prompt had two samples with different scores"),
        ("grpo", {}, "no GRPO groups: every prompt's samples scored the same"),
    ],
)
def test_zero_rows_is_bad_input_with_a_reason(tmp_path, algorithm, params, reason):
    _inputs(tmp_path, {"a": {"s0": 0.5, "s1": 0.5}, "b": {"s0": 0.9, "s1": 0.9}})
    with pytest.raises(BadInput, match=reason):
        _run(tmp_path, algorithm, **params)


def test_zero_rows_exits_65_through_the_entry_point(tmp_path):
    _inputs(tmp_path, {"a": {"s0": 0.5, "s1": 0.5}})
    uri = make_spec(
        "dataset",
        tmp_path,
        inputs={"prompts": ["in/p.jsonl"], "generations": ["in/g.jsonl"], "scores": ["in/s.jsonl"]},
        params={"algorithm": "grpo"},
    )
    rc, _, _, reason = run_stage("dataset", uri)
    assert rc == 65 and "no GRPO groups" in reason and "1 with zero variance" in reason


def test_dpo_is_the_default_and_unchanged(tmp_path):
    _inputs(tmp_path, {"a": {"s0": 0.1, "s1": 0.9}})
    manifest, rows = _run(tmp_path, "dpo")
    assert manifest["outputs"] == {"dataset": "dpo.jsonl"} and "algorithm" not in manifest["metrics"]
    assert rows[0]["chosen"] == _answer("a", "s1") and rows[0]["rejected"] == _answer("a", "s0")
