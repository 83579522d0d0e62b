"""The baseline arms' job pieces (run spec ``baselines``): the random reward, the labelled baseline's dataset
(prepare's ``labelled`` mode: the one artifact outside the evaluation side that holds references), best-of-N's
pick, and the evaluate stage reporting every arm beside TAO with the same paired statistics. The whole round
through Temporal: tests/integration/baselines-e2e.test.ts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_spec, read_jsonl, read_manifest, write_jsonl
from tao_jobs.baselines import LABELLED_FILE, labelled_rows, pick_best, random_reward, sft_target
from tao_jobs.contract import BadInput
from tao_jobs.models.local import tiny_cached
from tao_jobs.spec import load
from tao_jobs.stages import evaluate, prepare
from tao_jobs.store import Store

CANARY = "CANARY-baseline-REF"
LABELLED = {"targetTemplate": {"*": "the answer is {reference}."}, "missingReferences": "fail"}
LABELLED |= {"field": "baselines.labelledFineTuning"}


def test_random_reward_is_reproducible_uninformative_and_seeded():
    p = {"prompt_id": "q1"}
    values = [random_reward(p, f"answer {i}") for i in range(200)]
    assert values == [random_reward(p, f"answer {i}") for i in range(200)]
    assert all(0 <= v < 1 for v in values)
    assert 0.4 < sum(values) / len(values) < 0.6  # spread over [0, 1), not a constant
    assert random_reward(p, "x", seed=1) != random_reward(p, "x", seed=0)
    assert random_reward({"prompt_id": "q2"}, "x") != random_reward(p, "x")


def test_sft_target_uses_the_tasks_template_and_the_first_of_several_references():
    templates = {"trivia": "the answer is {reference}.", "*": "{reference}"}
    assert sft_target(templates, "trivia", "8") == "the answer is 8."
    assert sft_target(templates, "sql", "SELECT 1") == "SELECT 1"
    assert sft_target(templates, None, ["4", "four"]) == "4"
    assert sft_target({}, "trivia", 8) == "8"


def _train(n: int, *, without: set[int] = frozenset()) -> list[dict]:
    return [
        {
            "prompt_id": f"p{i}",
            "messages": [{"role": "user", "content": f"q{i}?"}],
            "task": "trivia",
            "source": {"uri": "file:///in/prompts.jsonl", "line": i + 1},
        }
        | ({} if i in without else {"reference": str(i)})
        for i in range(n)
    ]


def test_labelled_rows_refuse_missing_references_naming_the_field():
    with pytest.raises(BadInput, match=r"baselines.labelledFineTuning: none of the 3 training prompt\(s\)"):
        labelled_rows(_train(3, without={0, 1, 2}), LABELLED)
    with pytest.raises(BadInput, match=r"1 of 3 .* first at file:///in/prompts.jsonl:2 .*missingReferences"):
        labelled_rows(_train(3, without={1}), LABELLED)
    rows, missing = labelled_rows(_train(3, without={1}), LABELLED | {"missingReferences": "skip"})
    assert [r["prompt_id"] for r in rows] == ["p0", "p2"] and [m["prompt_id"] for m in missing] == ["p1"]
    assert rows[1]["completion"] == [{"role": "assistant", "content": "the answer is 2."}]
    assert rows[1]["prompt"] == [{"role": "user", "content": "q2?"}]


def test_pick_best_takes_the_highest_training_score_ties_to_the_lowest_sample():
    gens = [{"prompt_id": "a", "sample_id": i, "text": t} for i, t in enumerate(["x", "y", "z"])]
    gens += [{"prompt_id": "b", "sample_id": i, "text": t} for i, t in enumerate(["u", "v"])]
    picks = pick_best(gens, {("a", 0): 0.2, ("a", 1): 0.9, ("a", 2): 0.9, ("b", 0): None, ("b", 1): 0.0})
    assert picks["a"]["text"] == "y" and picks["b"]["text"] == "v"


def _prompts(tmp_path: Path, n: int = 12) -> None:
    rows = [{"id": f"p{i:02d}", "prompt": f"question {i}?", "task": "trivia", "reference": f"{CANARY}-{i}"}
            for i in range(n)]  # fmt: skip
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows)


def _prepare(tmp_path: Path, model: str, **params) -> tuple[dict, str]:
    uri = make_spec("prepare", tmp_path, inputs={"model": model}, params=params)
    spec, store = load(uri, "prepare")
    manifest = prepare.run(spec, store)
    return manifest, spec["output"]


def test_prepare_labelled_mode_writes_only_the_named_file_for_the_same_training_prompts(tmp_path):
    model = tmp_path / "in" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    _prompts(tmp_path)
    main, main_out = _prepare(tmp_path, model.as_uri() + "/")
    lab, lab_out = _prepare(tmp_path, model.as_uri() + "/", labelled=LABELLED)

    # the TAO arm's training side has no reference; the labelled file is the only other place that has them
    shards = [read_jsonl(main_out + s) for s in main["outputs"]["prompts"]]
    train_ids = sorted(p["prompt_id"] for shard in shards for p in shard)
    assert train_ids and all("reference" not in p for shard in shards for p in shard)
    for shard in main["outputs"]["prompts"]:
        assert CANARY not in Path((main_out + shard).removeprefix("file://")).read_text()
    assert LABELLED_FILE not in json.dumps(main)

    assert set(lab["outputs"]) == {"labelledSft"} and lab["outputs"]["labelledSft"] == LABELLED_FILE
    rows = read_jsonl(lab_out + LABELLED_FILE)
    assert sorted(r["prompt_id"] for r in rows) == train_ids  # the same split: training prompts only
    for r in rows:
        i = int(r["prompt_id"][1:])
        assert r["completion"] == [{"role": "assistant", "content": f"the answer is {CANARY}-{i}."}]
    assert lab["metrics"]["rows"] == len(train_ids) and lab["metrics"]["withoutReference"] == 0
    published = {f["path"] for f in read_manifest(lab_out)["files"]}
    assert published == {LABELLED_FILE}  # no shards, no held-out file, no model


def test_prepare_labelled_mode_refuses_training_prompts_without_references(tmp_path):
    rows = [{"id": f"p{i:02d}", "prompt": f"question {i}?"} for i in range(12)]
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows)
    with pytest.raises(BadInput, match=r"^baselines.labelledFineTuning: none of the \d+ training prompt"):
        _prepare(tmp_path, "tiny://test?steps=0", labelled=LABELLED)


BASE, OTHER = "tiny://engine?steps=100", "tiny://engine?steps=100&seed=1"
OWN = {"reuseTrainingScorers": False, "scorers": [{"name": "exact", "type": "exact-match", "weight": 1,
       "params": {"extract": "last-number"}}], "tasks": {}}  # fmt: skip
ANSWERS = ["8", "4", "2", "6", "10", "4"]


def test_evaluate_reports_every_arm_beside_tao_with_paired_statistics(tmp_path):
    held = [{"prompt_id": f"h{i}", "messages": [{"role": "user", "content": f"How many legs, item {i}?"}],
             "task": "trivia", "reference": a} for i, a in enumerate(ANSWERS)]  # fmt: skip
    write_jsonl(tmp_path / "in" / "heldout.jsonl", held)
    # best-of-N: 3 samples per prompt; the training score prefers the right answer on even prompts only
    gens, scores = [], []
    for i, a in enumerate(ANSWERS):
        for s, text in enumerate([f"it has {int(a) + 1} legs.", f"it has {a} legs.", "no idea"]):
            gens.append({"prompt_id": f"h{i}", "sample_id": s, "strategy": "plain", "text": text})
            best = 1 if i % 2 == 0 else 0
            scores.append({"prompt_id": f"h{i}", "sample_id": s, "scorer": "combined",
                           "score": 1.0 if s == best else 0.5 if s < 2 else 0.0})  # fmt: skip
    write_jsonl(tmp_path / "in" / "bon-generations.jsonl", gens)
    write_jsonl(tmp_path / "in" / "bon-scores.jsonl", scores)
    base, tuned, labelled = (tiny_cached(u).as_uri() + "/" for u in (BASE, OTHER, BASE + "&seed=2"))
    inputs = {"base": base, "tuned": tuned, "labelledFineTuning": labelled, "randomReward": base}
    inputs |= {"bestOfNGenerations": "in/bon-generations.jsonl", "bestOfNScores": "in/bon-scores.jsonl"}
    uri = make_spec("evaluate", tmp_path, inputs=inputs, params={"maxTokens": 8, "evaluation": OWN, "bootstrap": 200})
    spec = json.loads(Path(uri.removeprefix("file://")).read_text())
    m = evaluate.run(spec, Store())["metrics"]
    out = spec["output"]

    rows = read_jsonl(out + "eval.jsonl")
    assert {r["model"] for r in rows} == {"base", "tuned", "labelledFineTuning", "randomReward", "bestOfN"}
    picked = {r["prompt_id"]: r for r in rows if r["model"] == "bestOfN"}
    assert len(picked) == 6 and all(r["picked"]["of"] == 3 for r in picked.values())
    # best-of-N is right exactly where the training scorers picked the right sample (even prompts)
    assert [picked[f"h{i}"]["score"] for i in range(6)] == [1.0, 0.0] * 3

    arms = m["baselines"]
    assert list(arms) == ["labelledFineTuning", "bestOfN", "randomReward"]
    assert arms["bestOfN"]["score"]["mean"] == pytest.approx(0.5) and arms["bestOfN"]["samplesPerPrompt"] == 3
    base_mean, tuned_mean = m["base"]["mean"], m["tuned"]["mean"]
    for arm in arms.values():
        assert arm["score"]["n"] == 6 and arm["vsBase"]["n"] == 6 and arm["taoVsArm"]["n"] == 6
        assert arm["vsBase"]["change"] == pytest.approx(arm["score"]["mean"] - base_mean)
        assert arm["taoVsArm"]["change"] == pytest.approx(tuned_mean - arm["score"]["mean"])
        assert arm["vsBase"]["ciLow"] <= arm["vsBase"]["change"] <= arm["vsBase"]["ciHigh"]
    # the random-reward arm here is the base model itself: no change, every prompt a tie
    assert arms["randomReward"]["vsBase"]["change"] == 0 and arms["randomReward"]["vsBase"]["tieRate"] == 1
    # arms leave TAO's own comparison alone
    assert m["base"]["n"] == 6 and m["tuned"]["n"] == 6 and m["improvement"] == pytest.approx(tuned_mean - base_mean)

    report = Path(out.removeprefix("file://"), "report.md").read_text()
    assert "## Baselines beside TAO" in report
    assert f"| TAO (tuned) | {tuned_mean:.3f} (" in report and f"n={m['tuned']['n']}) | — |" in report
    assert "| best-of-3 at inference" in report and "| labelled fine-tuning" in report
    assert "| random-reward control" in report and "Arms do not gate promotion." in report


def test_evaluate_without_arms_reports_no_baselines(tmp_path):
    held = [{"prompt_id": "h0", "messages": [{"role": "user", "content": "How many legs?"}], "reference": "8"}]
    write_jsonl(tmp_path / "in" / "heldout.jsonl", held)
    model = tiny_cached(BASE).as_uri() + "/"
    uri = make_spec("evaluate", tmp_path, inputs={"base": model, "tuned": model}, params={"evaluation": OWN})
    spec = json.loads(Path(uri.removeprefix("file://")).read_text())
    m = evaluate.run(spec, Store())["metrics"]
    assert "baselines" not in m
    assert "Baselines" not in Path(spec["output"].removeprefix("file://"), "report.md").read_text()


def sees_reference(prompt: dict, text: str) -> float:
    """A training verifier that would cheat: 1.0 when the prompt row it is given carries a reference."""
    return 1.0 if "reference" in prompt else 0.0


def test_training_scorers_never_see_a_reference_even_on_held_out_prompts(tmp_path):
    # best-of-N scores the held-out file (references kept there) with the training scorers
    from tao_jobs.stages import score

    held = [{"prompt_id": f"h{i}", "messages": [{"role": "user", "content": "q?"}], "reference": "8"} for i in range(2)]
    write_jsonl(tmp_path / "in" / "heldout.jsonl", held)
    gens = [{"prompt_id": f"h{i}", "sample_id": s, "text": "8"} for i in range(2) for s in range(2)]
    write_jsonl(tmp_path / "in" / "generations.jsonl", gens)
    cheat = {"name": "cheat", "type": "python", "weight": 1, "params": {"module": "test_baselines:sees_reference"}}
    uri = make_spec(
        "score",
        tmp_path,
        inputs={"prompts": "in/heldout.jsonl", "generations": "in/generations.jsonl"},
        params={"scorers": [cheat], "tasks": {}},
    )
    spec, store = load(uri, "score")
    score.run(spec, store)
    rows = read_jsonl(spec["output"] + "scores.jsonl")
    assert len(rows) == 8 and {r["score"] for r in rows} == {0.0}
