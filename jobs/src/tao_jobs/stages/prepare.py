"""prepare: validate and de-duplicate prompts, split off the held-out set, shard the rest, stage the model.

Everything here is deterministic in (inputs, params): the held-out split and the shard of a prompt depend
only on its ``prompt_id`` (and ``seed`` for the split), never on file order or the other prompts, so a
re-run, or a run with a few prompts added, keeps every existing prompt on the same side and in the same shard.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from ..contract import BadInput, InvalidSpec, emit, progress
from ..manifest import publish
from ..prompts import read_prompts, write_jsonl
from ..store import Store, join

STAGE = "prepare"


def unit_hash(*parts: object) -> float:
    """A stable value in [0, 1) from sha256 of the parts (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def shard_of(prompt_id: str, shards: int) -> int:
    return int(unit_hash("shard", prompt_id) * shards)


def _messages_key(prompt: dict) -> str:
    return json.dumps(prompt["messages"], sort_keys=True, ensure_ascii=False)


def dedupe(prompts: list[dict]) -> tuple[list[dict], int]:
    """Keeps the first of each prompt_id and of each identical message list; returns (kept, duplicates)."""
    ids: set[str] = set()
    contents: set[str] = set()
    kept = []
    for p in prompts:
        key = _messages_key(p)
        if p["prompt_id"] in ids or key in contents:
            continue
        ids.add(p["prompt_id"])
        contents.add(key)
        kept.append(p)
    return kept, len(prompts) - len(kept)


def split_fraction(prompts: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, held out): a prompt is held out when ``unit_hash(seed, prompt_id) < fraction``.

    With few prompts the hash can put all of them on one side; then the prompt nearest the boundary moves
    across (the lowest hash into held-out, or the highest into training), still deterministic.
    """
    if len(prompts) < 2:
        raise BadInput(
            f"only {len(prompts)} valid prompt(s) after de-duplication: need at least 2 "
            "(one for training, one held out for evaluation)"
        )
    ranked = sorted(prompts, key=lambda p: unit_hash(seed, p["prompt_id"]))
    n_held = sum(1 for p in ranked if unit_hash(seed, p["prompt_id"]) < fraction)
    n_held = min(max(n_held, 1), len(ranked) - 1)
    held_ids = {p["prompt_id"] for p in ranked[:n_held]}
    return (
        [p for p in prompts if p["prompt_id"] not in held_ids],
        [p for p in prompts if p["prompt_id"] in held_ids],
    )


def _check(spec: dict) -> None:
    params, inputs = spec["params"], spec["inputs"]
    problems = []
    fraction = params.get("heldOutFraction")
    if (fraction is None) == ("heldOut" not in inputs):
        problems.append("params.heldOutFraction: set exactly one of params.heldOutFraction and inputs.heldOut")
    if fraction is not None and not 0 < fraction < 1:
        problems.append(f"params.heldOutFraction: must be between 0 and 1 (exclusive), got {fraction}")
    if problems:
        raise InvalidSpec(problems)


def _stage_model(store: Store, uri: str, workdir: Path) -> str:
    """The ``model`` output: a tiny model built into ``model/``, or the input URI passed through."""
    if uri.startswith("tiny://"):
        from ..models import tiny  # torch/transformers only when a tiny model is asked for

        tiny.build(uri, workdir / "model")
        return "model/"
    if not store.exists(join(uri, "config.json")):
        raise BadInput(f"{uri}: not a Hugging Face model directory (no config.json)")
    return uri


def _split(store: Store, spec: dict) -> tuple[list[dict], list[dict], dict]:
    """Reads, de-duplicates and splits the prompts: (train, held out, counts for the metrics)."""
    params, inputs = spec["params"], spec["inputs"]
    source = read_prompts(store, inputs["prompts"], params["onInvalid"])
    prompts, duplicates = dedupe(source.prompts)
    problems = list(source.problems)
    removed = 0
    if "heldOut" in inputs:
        held_src = read_prompts(store, inputs["heldOut"], params["onInvalid"])
        problems += held_src.problems
        held, held_dupes = dedupe(held_src.prompts)
        duplicates += held_dupes
        if not held:
            raise BadInput(f"{inputs['heldOut']}: no valid held-out prompts")
        held_ids = {p["prompt_id"] for p in held}
        held_contents = {_messages_key(p) for p in held}
        train = [p for p in prompts if p["prompt_id"] not in held_ids and _messages_key(p) not in held_contents]
        removed = len(prompts) - len(train)
    else:
        train, held = split_fraction(prompts, params["heldOutFraction"], params["seed"])
    if problems:
        emit(
            "warning",
            stage=STAGE,
            message=f"skipped {len(problems)} invalid prompt lines",
            examples=problems[:5],
        )
    if not train:
        raise BadInput(
            f"{inputs['prompts']}: no training prompts remain ({source.lines} lines, "
            f"{source.invalid} invalid, {duplicates} duplicates, {removed} also in the held-out set)"
        )
    counts = {"promptsIn": source.lines, "invalid": len(problems), "duplicates": duplicates}
    return train, held, counts | {"removedAsHeldOut": removed}


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    _check(spec)
    steps = 4
    train, held, counts = _split(store, spec)
    progress(STAGE, 1, steps, train=len(train), heldOut=len(held))

    workdir = Path(tempfile.mkdtemp(prefix="tao-prepare-"))
    try:
        shards = spec["params"]["shards"]
        buckets: list[list[dict]] = [[] for _ in range(shards)]
        for p in train:
            buckets[shard_of(p["prompt_id"], shards)].append(p)
        shard_paths = [f"prompts/shard-{i:04d}.jsonl" for i in range(shards)]
        for rel, rows in zip(shard_paths, buckets, strict=True):
            write_jsonl(workdir / rel, rows)
        write_jsonl(workdir / "heldout.jsonl", held)
        if empty := sum(not b for b in buckets):
            emit("warning", stage=STAGE, message=f"{empty} of {shards} shards are empty")
        progress(STAGE, 2, steps)

        model = _stage_model(store, spec["inputs"]["model"], workdir)
        progress(STAGE, 3, steps)

        manifest = publish(
            store,
            spec,
            workdir,
            outputs={"prompts": shard_paths, "heldOut": "heldout.jsonl", "model": model},
            records_in=counts["promptsIn"],
            records_out=len(train) + len(held),
            metrics=counts
            | {
                "train": len(train),
                "heldOut": len(held),
                "shards": shards,
                "perShard": [len(b) for b in buckets],
            },
            started_at=started,
        )
        progress(STAGE, 4, steps)
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
