"""References never reach training, on a real round of the stage jobs run in-process (prepare, generate and
score per shard, dataset, train, evaluate), with the stage params the workflow builds for a spec with
evaluation scorers and a benchmark (workflows/stage-params.ts). Every prompt and benchmark row carries a
canary reference; the canary must be absent from every training-side artifact (prompt shards, generations,
scores, dataset, the train stage's spec and outputs) and present on the evaluation side, which shows the
search works. The labelled baseline arm's file (``baseline-labelled-sft.jsonl``, written by a separate prepare only
when the arm is asked for) is the one allowed exception, and holds the training prompts' references only. The
same check through Temporal and the worker: tests/integration/references-e2e.test.ts (TAO only) and
tests/integration/baselines-e2e.test.ts (every baseline arm on)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DEFAULT_PARAMS, SCORING, write_jsonl
from test_demo_round import _in_process, _resolve, _stage_spec

CANARY = "CANARY-5b1d-REF"
ANIMALS = ["spider", "cat", "bird", "ant", "dog", "snake", "horse", "fish"]
RUN = {"name": "refs", "round": 1}
GATE = {"rule": "ciLower", "minImprovement": 0, "maxTaskRegression": 0.05, "rewardHacking": "refuse"}
GATE |= {"flatTolerance": 0.01, "promote": True}
EVALUATION = {
    "reuseTrainingScorers": False,
    "scorers": [{"name": "exact", "type": "exact-match", "weight": 1, "params": {"extract": "last-number"}}],
    "tasks": {},
}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_training_side_artifact_contains_a_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TAO_TERMINATION_LOG", str(tmp_path / "termination-log"))
    rows = [
        {"id": f"q{i}", "prompt": f"Q{i}: how many legs does a {ANIMALS[i % 8]} have?", "reference": f"{CANARY}-{i}"}
        for i in range(40)
    ]
    prompts = write_jsonl(tmp_path / "in" / "prompts.jsonl", rows)
    bench = [{"id": "b0", "prompt": "How many wheels does a car have?", "reference": [f"{CANARY}-bench", "4"]}]
    benchmark = write_jsonl(tmp_path / "in" / "bench.jsonl", bench)
    art = tmp_path / "artifacts"

    specs: dict[str, dict] = {}

    def stage(name, label, inputs, params, shard=None):
        spec = specs[label] = _stage_spec(RUN, name, art / label, inputs, params, shard)
        return spec, _in_process(name, spec)

    prep_params = {"onInvalid": "fail", "heldOutFraction": 0.3, "shards": 2, "seed": 0}
    prep_params |= {"references": {"*": "evaluation.scorers.0"}, "minEvalPrompts": {"count": 10, "field": "gate.rule"}}
    prep, pm = stage(
        "prepare", "prepare", {"prompts": prompts, "benchmark": benchmark, "model": "tiny://demo"}, prep_params
    )
    shards, held, bench_out, model = (_resolve(prep, pm, k) for k in ("prompts", "heldOut", "benchmark", "model"))
    gen_params = {"engine": "transformers", "samplesPerPrompt": 2, "strategies": ["plain"], "temperatures": [1.0]}
    gen_params |= {"topP": 1, "maxTokens": 8, "seed": 0}
    gens, scores = [], []
    for i, shard_uri in enumerate(shards):
        shard = {"index": i, "count": len(shards)}
        g, gm = stage("generate", f"generate-{i}", {"prompts": shard_uri, "model": model}, gen_params, shard)
        gens.append(_resolve(g, gm, "generations"))
        s, sm = stage("score", f"score-{i}", {"prompts": shard_uri, "generations": gens[-1]}, SCORING, shard)
        scores.append(_resolve(s, sm, "scores"))
    d, dm = stage("dataset", "dataset", {"prompts": shards, "generations": gens, "scores": scores},
                  {"algorithm": "dpo", "minMargin": 0.0})  # fmt: skip
    train_params = DEFAULT_PARAMS["train"] | {"minMargin": 0.0}
    t, tm = stage("train", "train", {"dataset": _resolve(d, dm, "dataset"), "model": model}, train_params)
    tuned = _resolve(t, tm, "merged")
    eval_params = {"scoring": SCORING, "evaluation": EVALUATION, "samplesPerPrompt": 1, "temperature": 0}
    eval_params |= {"maxTokens": 8, "seed": 0, "bootstrap": 200, "gate": GATE}
    e, em = stage("evaluate", "evaluate",
                  {"prompts": held, "benchmark": bench_out, "base": model, "tuned": tuned}, eval_params)  # fmt: skip

    training_side = [Path(u.removeprefix("file://")) for u in shards]
    for label in ("generate-0", "generate-1", "score-0", "score-1", "dataset", "train"):
        training_side += _files(art / label)
    # the training stages' specs (the train stage's inputs among them) carry URIs, never prompt data
    for label in ("generate-0", "generate-1", "score-0", "score-1", "dataset", "train"):
        assert CANARY not in json.dumps(specs[label])
    assert any(p.name == "generations.jsonl" for p in training_side) and any(
        p.suffix == ".safetensors" for p in training_side
    )
    assert [p for p in training_side if CANARY.encode() in p.read_bytes()] == []
    evaluation_side = [
        Path(held.removeprefix("file://")),
        Path(bench_out.removeprefix("file://")),
        *_files(art / "evaluate"),
    ]
    # the search finds the canary where it belongs (eval.jsonl holds answers and scores, not references)
    assert {p.name for p in evaluation_side if CANARY.encode() in p.read_bytes()} == {
        "heldout.jsonl",
        "benchmark.jsonl",
    }
    # The one allowed exception outside the evaluation side: the labelled baseline arm's own file, written by a
    # separate prepare (run spec baselines.labelledFineTuning) that writes nothing else; with every arm on, the
    # same search through Temporal: tests/integration/baselines-e2e.test.ts.
    labelled = {"targetTemplate": {"*": "the answer is {reference}."}, "missingReferences": "fail"}
    labelled |= {"field": "baselines.labelledFineTuning"}
    _, lm = stage("prepare", "labelled", {"prompts": prompts, "benchmark": benchmark, "model": "tiny://demo"},
                    prep_params | {"labelled": labelled})  # fmt: skip
    carrying = [p for p in _files(art / "labelled") if CANARY.encode() in p.read_bytes()]
    assert [p.name for p in carrying] == ["baseline-labelled-sft.jsonl"] and set(lm["outputs"]) == {"labelledSft"}
    train_ids = {json.loads(line)["prompt_id"] for u in shards for line in Path(u.removeprefix("file://")).open()}
    assert {json.loads(line)["prompt_id"] for line in carrying[0].open()} == train_ids
    assert [p for p in training_side if CANARY.encode() in p.read_bytes()] == []
    m = em["metrics"]
    assert m["evaluationScorers"] == "evaluation" and m["gate"]["rule"] == "ciLower"
    assert m["splits"]["benchmark"]["n"] == 1 and m["klToBase"] is not None
