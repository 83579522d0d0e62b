"""The container contract: exit codes, every spec problem listed, progress lines, reason file, manifests."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from conftest import make_spec, run_stage, write_jsonl
from tao_jobs import contract
from tao_jobs.manifest import MANIFEST_SCHEMA, publish
from tao_jobs.spec import load, validate
from tao_jobs.store import Store


def test_invalid_spec_exits_64_listing_every_problem(tmp_path):
    uri = make_spec(
        "prepare",
        tmp_path,
        params={"shards": 0, "onInvalid": "ignore", "extra": 1},
        inputs={"prompts": "http://example.com/p.jsonl"},
        extra={"output": "file:///no-trailing-slash"},
    )
    rc, stdout, stderr, reason = run_stage("prepare", uri)
    assert rc == 64
    expected = ["output: ", "inputs.prompts: ", "params: ", "params.onInvalid: ", "params.shards: "]
    problems = [line.removeprefix("invalid stage spec: ") for line in stderr.splitlines()]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
        assert f"; {prefix}" in reason or reason.startswith(f"invalid stage spec: {prefix}"), reason
    assert len(problems) == len(expected)
    assert "\n" not in reason
    assert stdout == ""


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (None, "--spec: .*does not exist"),
        ("{not json", "not valid JSON \\(line 1, column 2"),
    ],
)
def test_unreadable_spec_exits_64(tmp_path, write, match):
    path = tmp_path / "spec.json"
    if write is not None:
        path.write_text(write)
    rc, _, _, reason = run_stage("prepare", path.as_uri())
    assert rc == 64
    assert re.search(match, reason), reason


def test_spec_for_another_stage_exits_64(tmp_path):
    rc, _, _, reason = run_stage("score", make_spec("prepare", tmp_path))
    assert rc == 64
    assert "stage: spec is for stage 'prepare' but the job was started as 'score'" in reason


def test_corrupt_input_exits_65_naming_file_and_line(tmp_path):
    rows = [{"prompt_id": "a", "messages": [{"role": "user", "content": "q"}], "task": None}] * 4
    uri = write_jsonl(tmp_path / "in" / "prompts" / "shard-0000.jsonl", rows, raw_lines={3: "{oops"})
    write_jsonl(tmp_path / "in" / "generations.jsonl", [])
    rc, _, stderr, reason = run_stage("score", make_spec("score", tmp_path))
    assert rc == 65
    assert reason.startswith(f"bad input: {uri}:3: not valid JSON")
    assert f"bad input: {uri}:3:" in stderr


def test_missing_input_exits_65(tmp_path):
    rc, _, _, reason = run_stage("score", make_spec("score", tmp_path))
    missing = (tmp_path / "in" / "prompts" / "shard-0000.jsonl").as_uri()
    assert rc == 65
    assert reason == f"bad input: {missing}: input file does not exist"


def test_default_specs_of_every_stage_are_valid(tmp_path):
    for stage in ("prepare", "generate", "score", "dataset", "train", "evaluate"):
        spec, _ = load(make_spec(stage, tmp_path), stage)
        assert validate(spec) == []
        assert spec["output"].endswith("/")


def test_emit_and_progress_write_json_lines(capsys):
    contract.progress("score", 3, 10, prompts=2)
    contract.emit("warning", message="m")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "progress" and lines[0]["done"] == 3 and lines[0]["total"] == 10
    assert lines[0]["stage"] == "score" and lines[0]["prompts"] == 2 and isinstance(lines[0]["ts"], float)
    assert lines[1]["event"] == "warning"


def test_write_reason_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TAO_TERMINATION_LOG", str(tmp_path / "reason"))
    contract.write_reason("first\nsecond\t third")
    assert (tmp_path / "reason").read_text() == "first second third"


class RecordingStore(Store):
    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def upload_file(self, local, uri):
        self.writes.append(uri)
        super().upload_file(local, uri)

    def write_bytes(self, uri, data, *, if_none_match=False):
        self.writes.append(uri)
        super().write_bytes(uri, data, if_none_match=if_none_match)


def _spec(tmp_path) -> dict:
    spec, _ = load(make_spec("score", tmp_path), "score")
    return spec


def test_manifest_is_written_last_with_digests_sizes_and_records(tmp_path):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "scores.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    (work / "sub" / "blob.bin").write_bytes(b"\x00" * 10)
    spec = _spec(tmp_path)
    store = RecordingStore()
    m = publish(
        store,
        spec,
        work,
        outputs={"scores": "scores.jsonl"},
        records_in=5,
        records_out=2,
        metrics={"x": 1},
        started_at=0,
    )
    assert store.writes[-1] == spec["output"] + "manifest.json"
    assert len(store.writes) == 3
    assert m["schema"] == MANIFEST_SCHEMA and m["stage"] == "score" and m["key"] == spec["key"]
    assert m["files"] == [
        {
            "path": "scores.jsonl",
            "size": 18,
            "sha256": hashlib.sha256(b'{"a": 1}\n{"a": 2}\n').hexdigest(),
            "records": 2,
        },
        {"path": "sub/blob.bin", "size": 10, "sha256": hashlib.sha256(b"\x00" * 10).hexdigest()},
    ]
    assert m["records"] == {"in": 5, "out": 2} and m["metrics"] == {"x": 1}
    on_disk = json.loads((tmp_path / "out" / spec["key"] / "manifest.json").read_text())
    assert on_disk == m


def test_second_publish_returns_the_first_manifest(tmp_path):
    spec = _spec(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "scores.jsonl").write_text("{}\n")

    def attempt(n: int) -> dict:
        outputs = {"scores": "scores.jsonl"}
        return publish(
            Store(),
            spec,
            work,
            outputs=outputs,
            records_in=1,
            records_out=1,
            metrics={"attempt": n},
            started_at=0,
        )

    first, second = attempt(1), attempt(2)
    assert second == first and second["metrics"] == {"attempt": 1}


def test_a_corrupt_manifest_is_quarantined_once_and_the_fresh_one_published(tmp_path):
    """Issue 11, item 2: before, the conditional create failed on the corrupt file, the job read it back and
    crashed (json error), every retry the same. Now it is moved aside (kept for inspection) and replaced."""
    spec = _spec(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "scores.jsonl").write_text("{}\n")
    out = tmp_path / "out" / spec["key"]
    out.mkdir(parents=True)
    (out / "manifest.json").write_text('{"schema": "tao.manifest/v1", "stage": "sco')  # torn write
    store = Store()
    m = publish(
        store, spec, work, outputs={"scores": "scores.jsonl"}, records_in=1, records_out=1, metrics={}, started_at=0
    )
    assert json.loads((out / "manifest.json").read_text()) == m
    [kept] = list((out / "quarantine").glob("*/manifest.json"))
    assert kept.read_text() == '{"schema": "tao.manifest/v1", "stage": "sco'
    assert "not JSON" in (kept.parent / "reason.txt").read_text()

    # a manifest of another key is not this stage's either
    (out / "manifest.json").write_text(json.dumps(m | {"key": "other"}))
    again = publish(
        store, spec, work, outputs={"scores": "scores.jsonl"}, records_in=1, records_out=1, metrics={}, started_at=0
    )
    assert again["key"] == spec["key"]
    assert len(list((out / "quarantine").glob("*/manifest.json"))) == 2
