"""prepare: de-duplication, held-out split, sharding (stable across runs), onInvalid, model staging."""

from __future__ import annotations

import json

import pytest

from conftest import make_spec, read_jsonl, read_manifest, run_stage, spec_output, write_jsonl
from tao_jobs.contract import BadInput, InvalidSpec
from tao_jobs.spec import load
from tao_jobs.stages import prepare


def prompts(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"p{i:03d}", "prompt": f"question {i}?", "task": "trivia"} for i in range(start, start + n)]


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "in" / "model"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    return d.as_uri() + "/"


def run_in_process(uri: str) -> dict:
    spec, store = load(uri, "prepare")
    return prepare.run(spec, store)


def test_end_to_end_dedupes_splits_shards_and_skips_invalid(tmp_path, model_dir):
    rows = prompts(40)
    rows.append({"id": "p001", "prompt": "same id, other text"})  # duplicate id
    rows.append({"id": "copy", "prompt": "question 2?", "task": "trivia"})  # duplicate content
    rows.append({"id": "bad"})
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows)
    spec = make_spec("prepare", tmp_path, inputs={"model": model_dir}, params={"onInvalid": "skip", "shards": 3})
    rc, stdout, stderr, reason = run_stage("prepare", spec)
    assert rc == 0, stderr
    assert reason == ""
    out = spec_output(spec)
    m = read_manifest(out)
    assert m["outputs"] == {
        "prompts": ["prompts/shard-0000.jsonl", "prompts/shard-0001.jsonl", "prompts/shard-0002.jsonl"],
        "heldOut": "heldout.jsonl",
        "model": model_dir,
    }
    metrics = m["metrics"]
    assert metrics["promptsIn"] == 43 and metrics["invalid"] == 1 and metrics["duplicates"] == 2
    assert metrics["train"] + metrics["heldOut"] == 40
    assert 1 <= metrics["heldOut"] < 40 and sum(metrics["perShard"]) == metrics["train"]
    train = [r for rel in m["outputs"]["prompts"] for r in read_jsonl(out + rel)]
    held = read_jsonl(out + "heldout.jsonl")
    assert [len(read_jsonl(out + rel)) for rel in m["outputs"]["prompts"]] == metrics["perShard"]
    ids = [r["prompt_id"] for r in train + held]
    assert sorted(ids) == [f"p{i:03d}" for i in range(40)]
    assert next(r for r in train + held if r["prompt_id"] == "p001")["messages"][0]["content"] == "question 1?"
    for rel in m["outputs"]["prompts"]:
        shard = int(rel[-10:-6])
        assert all(prepare.shard_of(r["prompt_id"], 3) == shard for r in read_jsonl(out + rel))
    assert m["records"] == {"in": 43, "out": 40}
    events = [json.loads(line) for line in stdout.splitlines()]
    assert any(e["event"] == "warning" and "skipped 1 invalid" in e["message"] for e in events)
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4]
    assert events[-1]["event"] == "done"


def test_split_and_shards_are_stable_across_runs_and_additions(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", prompts(60))
    write_jsonl(tmp_path / "in" / "more.jsonl", list(reversed(prompts(80))))  # reordered, 20 added
    params = {"heldOutFraction": 0.2, "shards": 4, "seed": 7}
    a = run_in_process(make_spec("prepare", tmp_path, inputs={"model": model_dir}, params=params))
    b = run_in_process(make_spec("prepare", tmp_path, inputs={"model": model_dir}, params=params))
    c = run_in_process(
        make_spec("prepare", tmp_path, inputs={"model": model_dir, "prompts": "in/more.jsonl"}, params=params)
    )
    assert [f["sha256"] for f in a["files"]] == [f["sha256"] for f in b["files"]]

    def placement(spec_out: str, m: dict) -> dict[str, str]:
        where = {r["prompt_id"]: "held" for r in read_jsonl(spec_out + m["outputs"]["heldOut"])}
        for rel in m["outputs"]["prompts"]:
            where |= {r["prompt_id"]: rel for r in read_jsonl(spec_out + rel)}
        return where

    out_a = (tmp_path / "out" / a["key"]).as_uri() + "/"
    out_c = (tmp_path / "out" / c["key"]).as_uri() + "/"
    pa, pc = placement(out_a, a), placement(out_c, c)
    assert all(pc[pid] == side for pid, side in pa.items())
    assert a["metrics"] == b["metrics"] and a["outputs"] == b["outputs"]
    d = run_in_process(make_spec("prepare", tmp_path, inputs={"model": model_dir}, params=params | {"seed": 8}))
    assert d["files"] != a["files"]  # another seed, another split


def test_heldout_file_is_removed_from_training(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", prompts(10))
    held_rows = [{"id": "p003", "prompt": "question 3?"}, {"id": "h1", "prompt": "question 4?"}]
    write_jsonl(tmp_path / "in" / "held.jsonl", [*held_rows, {"id": "h2", "prompt": "new"}])
    m = run_in_process(
        make_spec(
            "prepare",
            tmp_path,
            inputs={"model": model_dir, "heldOut": "in/held.jsonl"},
            params={"heldOutFraction": None, "shards": 1},
        )
    )
    out = (tmp_path / "out" / m["key"]).as_uri() + "/"
    assert [r["prompt_id"] for r in read_jsonl(out + "heldout.jsonl")] == ["p003", "h1", "h2"]
    train_ids = [r["prompt_id"] for r in read_jsonl(out + "prompts/shard-0000.jsonl")]
    assert "p003" not in train_ids and "p004" not in train_ids and len(train_ids) == 8
    assert m["metrics"]["removedAsHeldOut"] == 2 and m["metrics"]["heldOut"] == 3


def test_on_invalid_fail_exits_65_naming_file_and_line(tmp_path, model_dir):
    uri = write_jsonl(tmp_path / "in" / "prompts.jsonl", [*prompts(5), None], raw_lines={6: '{"id": "x",'})
    spec = make_spec("prepare", tmp_path, inputs={"model": model_dir})
    rc, _, stderr, reason = run_stage("prepare", spec)
    assert rc == 65, stderr
    assert reason.startswith(f"bad input: {uri}: 1 invalid prompt line(s)") and "line 6: not valid JSON" in reason
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("manifest.json"))


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([{"id": "only", "prompt": "q"}], "only 1 valid prompt"),
        ([{"id": "a", "prompt": "q"}, {"id": "b", "prompt": "q"}], "only 1 valid prompt"),  # a duplicate
    ],
)
def test_too_few_prompts_to_split(tmp_path, model_dir, rows, match):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", rows)
    with pytest.raises(BadInput, match=match):
        run_in_process(make_spec("prepare", tmp_path, inputs={"model": model_dir}))


def test_two_prompts_split_one_each_side(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", prompts(2))
    for fraction in (0.01, 0.99):
        m = run_in_process(
            make_spec("prepare", tmp_path, inputs={"model": model_dir}, params={"heldOutFraction": fraction})
        )
        assert (m["metrics"]["train"], m["metrics"]["heldOut"]) == (1, 1)


def test_no_training_prompts_left(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", prompts(3))
    write_jsonl(tmp_path / "in" / "held.jsonl", prompts(3))
    spec = make_spec(
        "prepare",
        tmp_path,
        inputs={"model": model_dir, "heldOut": "in/held.jsonl"},
        params={"heldOutFraction": None},
    )
    with pytest.raises(BadInput, match="no training prompts remain .*3 also in the held-out set"):
        run_in_process(spec)


def test_spec_problems_exit_64_listing_each(tmp_path, model_dir):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", prompts(3))
    spec = make_spec(
        "prepare",
        tmp_path,
        inputs={"model": model_dir, "heldOut": "in/prompts.jsonl"},
        params={"heldOutFraction": 1.5},
    )
    rc, _, stderr, reason = run_stage("prepare", spec)
    assert rc == 64
    assert "params.heldOutFraction: set exactly one of" in reason
    assert "params.heldOutFraction: must be between 0 and 1" in reason
    assert stderr.count("invalid stage spec: ") == 2
    with pytest.raises(InvalidSpec) as e:
        run_in_process(make_spec("prepare", tmp_path, inputs={"model": model_dir}, params={"heldOutFraction": None}))
    assert e.value.problems == ["params.heldOutFraction: set exactly one of params.heldOutFraction and inputs.heldOut"]


def test_model_must_be_a_model_directory(tmp_path):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", prompts(4))
    with pytest.raises(BadInput, match="no config.json"):
        run_in_process(make_spec("prepare", tmp_path, inputs={"model": "in/nowhere/"}))


def test_tiny_model_is_built_into_the_output(tmp_path):
    write_jsonl(tmp_path / "in" / "prompts.jsonl", prompts(4))
    m = run_in_process(make_spec("prepare", tmp_path, inputs={"model": "tiny://t?steps=0"}))
    assert m["outputs"]["model"] == "model/"
    names = {f["path"] for f in m["files"]}
    assert {"model/config.json", "model/tokenizer.json"} <= names
