"""The artifact store: file:// semantics, and s3:// end to end against a real SeaweedFS server."""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import make_spec, run_stage, write_jsonl
from tao_jobs.contract import BadInput
from tao_jobs.store import AlreadyExists, S3Options, Store, join


def test_join():
    assert join("s3://b/run/", "a", "/b.json") == "s3://b/run/a/b.json"
    assert join("file:///x", "y/") == "file:///x/y/"


def test_file_store_round_trip(tmp_path):
    s = Store()
    root = tmp_path.as_uri() + "/root/"
    s.write_text(root + "a/x.txt", "hello")
    s.write_bytes(root + "b.bin", b"\x00\x01")
    assert s.read_text(root + "a/x.txt") == "hello"
    assert s.exists(root + "b.bin") and not s.exists(root + "nope")
    assert s.list(root) == [root + "a/x.txt", root + "b.bin"]
    assert s.list(root + "missing/") == []
    assert s.local_dir(root) == tmp_path / "root"
    s.delete(root + "b.bin")
    assert s.list(root) == [root + "a/x.txt"]
    with pytest.raises(BadInput, match="input file does not exist"):
        s.read_bytes(root + "b.bin")
    with pytest.raises(BadInput, match="input directory does not exist"):
        s.local_dir(root + "missing/")


def test_file_conditional_create(tmp_path):
    s = Store()
    uri = tmp_path.as_uri() + "/m.json"
    s.write_bytes(uri, b"first", if_none_match=True)
    with pytest.raises(AlreadyExists):
        s.write_bytes(uri, b"second", if_none_match=True)
    assert s.read_text(uri) == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_s3_prepare_end_to_end(tmp_path, s3_server, monkeypatch):
    """prepare reads prompts from and writes outputs to a real S3 server; the store's S3 paths all work."""
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    opts = s3_server.store_options()["s3"]
    store = Store(S3Options(endpoint=opts["endpoint"], region=opts["region"], force_path_style=True))
    prefix = f"s3://{s3_server.bucket}/{uuid.uuid4().hex}/"

    # inputs in S3: the prompt source and a (fake) model directory
    local = tmp_path / "prompts.jsonl"
    write_jsonl(local, [{"id": f"p{i}", "prompt": f"question {i}?"} for i in range(12)])
    store.upload_file(local, prefix + "in/prompts.jsonl")
    store.write_text(prefix + "in/model/config.json", "{}")

    spec = make_spec(
        "prepare",
        tmp_path,
        inputs={"prompts": prefix + "in/prompts.jsonl", "model": prefix + "in/model/"},
        params={"shards": 2},
        output=prefix + "out/",
        store=s3_server.store_options(),
    )
    rc, _, stderr, reason = run_stage("prepare", spec, env=s3_server.env)
    assert rc == 0, stderr + reason

    out = prefix + "out/"
    manifest = json.loads(store.read_text(out + "manifest.json"))
    assert manifest["outputs"]["model"] == prefix + "in/model/"
    assert store.list(out) == sorted(
        out + p for p in ["heldout.jsonl", "manifest.json", "prompts/shard-0000.jsonl", "prompts/shard-0001.jsonl"]
    )
    assert manifest["metrics"]["train"] + manifest["metrics"]["heldOut"] == 12

    # a re-run of the same stage keeps the first manifest (conditional create on the real server)
    rc, _, stderr, _ = run_stage("prepare", spec, env=s3_server.env)
    assert rc == 0, stderr
    assert json.loads(store.read_text(out + "manifest.json")) == manifest
    with pytest.raises(AlreadyExists):
        store.write_bytes(out + "manifest.json", b"{}", if_none_match=True)

    # local_dir downloads a prefix with its layout
    d = store.local_dir(out + "prompts/")
    assert sorted(p.name for p in d.iterdir()) == ["shard-0000.jsonl", "shard-0001.jsonl"]
    shard_rows = sum(len(p.read_text().splitlines()) for p in d.iterdir())
    assert shard_rows == manifest["metrics"]["train"]

    # missing objects and prefixes are BadInput (exit 65), not crashes
    assert not store.exists(out + "nope.jsonl")
    with pytest.raises(BadInput, match="input object does not exist"):
        store.read_bytes(out + "nope.jsonl")
    with pytest.raises(BadInput, match="no objects under this prefix"):
        store.local_dir(prefix + "nothing/")
    store.delete(out + "heldout.jsonl")
    assert not store.exists(out + "heldout.jsonl")


def test_file_conditional_create_has_exactly_one_winner_under_threads(tmp_path):
    """Issue 11, items 3 and 6: the temporary file name was per process, so two threads shared it and one
    could link the other's bytes; now each writer has its own, and exactly one of many creators wins."""
    from concurrent.futures import ThreadPoolExecutor

    s = Store()
    uri = tmp_path.as_uri() + "/manifest.json"

    def create(i: int) -> bool:
        try:
            s.write_bytes(uri, f"writer {i} ".encode() * 20000, if_none_match=True)
            return True
        except AlreadyExists:
            return False

    with ThreadPoolExecutor(16) as pool:
        won = [i for i, ok in enumerate(pool.map(create, range(64))) if ok]
    assert len(won) == 1
    assert s.read_bytes(uri) == f"writer {won[0]} ".encode() * 20000  # whole, and the winner's
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_s3_conditional_create_has_exactly_one_winner(s3_server, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    opts = s3_server.store_options()["s3"]
    s = Store(S3Options(endpoint=opts["endpoint"], region=opts["region"], force_path_style=True))
    uri = f"s3://{s3_server.bucket}/{uuid.uuid4().hex}/manifest.json"

    def create(i: int) -> bool:
        try:
            s.write_bytes(uri, f"writer {i}".encode(), if_none_match=True)
            return True
        except AlreadyExists:
            return False

    with ThreadPoolExecutor(8) as pool:
        won = [i for i, ok in enumerate(pool.map(create, range(24))) if ok]
    assert len(won) == 1
    assert s.read_bytes(uri) == f"writer {won[0]}".encode()
