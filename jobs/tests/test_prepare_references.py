"""prepare and references: gold answers stay on the evaluation side (held-out, benchmark) and never reach a
training shard; the evaluation data is checked against what the evaluation needs before anything is built,
each error naming the run-spec field; malformed reference rows are reported with file and line under
``onInvalid``."""

from __future__ import annotations

import json

import pytest

from conftest import make_spec, read_jsonl, run_stage, write_jsonl
from tao_jobs.contract import BadInput
from tao_jobs.spec import load
from tao_jobs.stages import prepare

CANARY = "CANARY-REF-7f3a"


def rows(n: int, start: int = 0, task: str = "trivia", reference=True) -> list[dict]:
    out = []
    for i in range(start, start + n):
        r = {"id": f"p{i:03d}", "prompt": f"question {i}?", "task": task}
        if reference:
            r["reference"] = f"{CANARY}-{i}"
        out.append(r)
    return out


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "in" / "model"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    return d.as_uri() + "/"


def run(tmp_path, model_dir, *, inputs=None, params=None) -> tuple[dict, str]:
    uri = make_spec("prepare", tmp_path, inputs={"model": model_dir, **(inputs or {})}, params=params)
    spec, store = load(uri, "prepare")
    m = prepare.run(spec, store)
    return m, spec["output"]


def test_references_stay_on_the_evaluation_side(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows(40))
    bench = [{"id": f"b{i}", "prompt": f"bench {i}?", "reference": [f"{CANARY}-b{i}", i]} for i in range(3)]
    bench.append({"id": "dup", "prompt": "question 5?", "reference": "5"})  # asks what a training prompt asks
    write_jsonl(tmp_path / "in" / "bench.jsonl", bench)
    m, out = run(tmp_path, model_dir, inputs={"benchmark": "in/bench.jsonl"}, params={"references": {"*": "e.0"}})
    shards = [r for rel in m["outputs"]["prompts"] for r in read_jsonl(out + rel)]
    held = read_jsonl(out + "heldout.jsonl")
    benchmark = read_jsonl(out + "benchmark.jsonl")
    assert shards and held and len(benchmark) == 4
    assert all("reference" not in r for r in shards) and CANARY not in json.dumps(shards)
    assert all(r["reference"].startswith(CANARY) for r in held)
    assert benchmark[0]["reference"] == [f"{CANARY}-b0", 0]
    assert "p005" not in {r["prompt_id"] for r in shards}  # the benchmark is never trained on
    assert m["metrics"]["benchmark"] == 4 and m["metrics"]["heldOutWithReference"] == len(held)
    assert m["outputs"]["benchmark"] == "benchmark.jsonl"


def test_a_reference_scorer_without_any_reference_names_its_field(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows(20, reference=False))
    with pytest.raises(BadInput, match=r"^evaluation\.scorers\.1: a reference scorer, but none of the \d+ evaluation"):
        run(tmp_path, model_dir, params={"references": {"*": "evaluation.scorers.1"}})
    assert not list(tmp_path.glob("out/**/manifest.json"))


def test_a_benchmark_without_references_is_refused(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows(20))
    write_jsonl(tmp_path / "in" / "bench.jsonl", rows(3, 100, reference=False))
    with pytest.raises(BadInput, match=r"^evaluation\.benchmarkUri: .*bench\.jsonl has no references"):
        run(tmp_path, model_dir, inputs={"benchmark": "in/bench.jsonl"})


def test_too_few_evaluation_prompts_for_the_gate_rule(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows(20))
    held = run(tmp_path, model_dir)[0]["metrics"]["heldOut"]
    assert held < 10
    with pytest.raises(
        BadInput, match=rf"^gate\.rule: needs at least 10 evaluation prompts, the evaluation set has {held}"
    ):
        run(tmp_path, model_dir, params={"minEvalPrompts": {"count": 10, "field": "gate.rule"}})
    # a benchmark counts towards the evaluation set
    write_jsonl(tmp_path / "in" / "bench.jsonl", rows(10 - held, 100))
    m, _ = run(
        tmp_path,
        model_dir,
        inputs={"benchmark": "in/bench.jsonl"},
        params={"minEvalPrompts": {"count": 10, "field": "gate.rule"}},
    )
    assert m["metrics"]["heldOut"] + m["metrics"]["benchmark"] == 10


def test_prompts_missing_their_reference_follow_on_invalid(tmp_path, model_dir):
    data = rows(20)
    for r in data[::2]:
        del r["reference"]
    uri = write_jsonl(tmp_path / "in" / "prompts.jsonl", data)
    spec = make_spec(
        "prepare", tmp_path, inputs={"model": model_dir}, params={"references": {"*": "evaluation.scorers.0"}}
    )
    rc, _, stderr, reason = run_stage("prepare", spec)
    assert rc == 65, stderr
    assert "evaluation prompt(s) without the reference their scorer needs" in reason
    assert f"{uri}:" in reason and "reference: required by evaluation.scorers.0" in reason
    # with skip, they are left out of the evaluation (still trained on, without a reference)
    m, out = run(tmp_path, model_dir, params={"onInvalid": "skip", "references": {"*": "evaluation.scorers.0"}})
    assert all("reference" in r for r in read_jsonl(out + "heldout.jsonl"))
    # only tasks whose scorers need references need them
    every = run(tmp_path, model_dir, params={"onInvalid": "skip"})[0]["metrics"]["heldOut"]
    m, out = run(tmp_path, model_dir, params={"references": {"*": "evaluation.scorers.0", "trivia": None}})
    assert m["metrics"]["heldOut"] == every


def test_malformed_references_are_reported_with_file_and_line(tmp_path, model_dir):
    data = rows(10)
    data[3]["reference"] = ""
    data[6]["reference"] = {"answer": 4}
    uri = write_jsonl(tmp_path / "in" / "prompts.jsonl", data)
    spec = make_spec("prepare", tmp_path, inputs={"model": model_dir})
    rc, _, _, reason = run_stage("prepare", spec)
    assert rc == 65
    assert f"{uri}: 2 invalid prompt line(s)" in reason
    assert "line 4: reference: must be a non-empty string" in reason and "line 7: reference:" in reason
    m, out = run(tmp_path, model_dir, params={"onInvalid": "skip"})
    assert m["metrics"]["invalid"] == 2
