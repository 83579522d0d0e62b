"""prepare: validate and de-duplicate prompts, split off the held-out set, shard the rest, stage the model.

References (gold answers, ``reference`` on a prompt row) are for evaluation only: they stay in
``heldout.jsonl`` and ``benchmark.jsonl`` (the fixed benchmark, ``inputs.benchmark``) and are dropped from every
training shard, so nothing downstream of the shards (generations, scores, datasets, train) can contain them.
Benchmark prompts are also kept out of training. Before anything is written or the model is built, the
evaluation data is checked against what the evaluation needs (``params.references``: tasks whose evaluation
scorers need a reference; ``params.minEvalPrompts``: the gate rule's minimum), each error naming the run-spec
field it comes from.

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

from ..baselines import LABELLED_FILE, labelled_rows
from ..contract import BadInput, InvalidSpec, emit, progress
from ..manifest import publish
from ..prompts import MAX_LISTED, read_prompts, strip_reference, write_jsonl
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
    for task, field in (params.get("references") or {}).items():
        if field is not None and (not isinstance(field, str) or not field):
            problems.append(f"params.references.{task}: must be the field of a reference scorer, or null")
    if problems:
        raise InvalidSpec(problems)


def _stage_model(store: Store, uri: str, workdir: Path) -> str:
    """The ``model`` output: a tiny model built into ``model/``, or the input URI passed through."""
    if uri.startswith("tiny://"):
        # torch/transformers only when a tiny model is asked for. Builds are deterministic, so the machine's
        # cached build (keyed by URI and builder source) is the same files: a round no longer pre-trains it again.
        from ..models import tiny
        from ..models.local import tiny_cached

        try:
            shutil.copytree(tiny_cached(uri), workdir / "model")
        except PermissionError:  # no writable cache (a read-only home in a container): build in place
            shutil.rmtree(workdir / "model", ignore_errors=True)
            tiny.build(uri, workdir / "model")
        return "model/"
    if not store.exists(join(uri, "config.json")):
        raise BadInput(f"{uri}: not a Hugging Face model directory (no config.json)")
    return uri


def _reference_field(references: dict, task: str | None) -> str | None:
    """The reference scorer (its run-spec field) that needs this task's evaluation prompts to carry a reference."""
    if task is not None and task in references:
        return references[task]
    return references.get("*")


def _check_evaluation(params: dict, inputs: dict, held: list[dict], bench: list[dict]) -> list[str]:
    """Checks the evaluation data against the evaluation's needs; returns ``file:line: reason`` problems for
    prompts missing a reference (handled under ``onInvalid``) and raises BadInput for a set that cannot work."""
    references = params.get("references") or {}
    if bench and not any("reference" in p for p in bench):
        raise BadInput(
            f"evaluation.benchmarkUri: {inputs['benchmark']} has no references: a benchmark is scored against "
            "the gold answers its rows carry in 'reference'"
        )
    problems: list[str] = []
    needing: dict[str, list[dict]] = {}
    for p in held + bench:
        field = _reference_field(references, p.get("task"))
        if field is not None:
            needing.setdefault(field, []).append(p)
    for field, rows in needing.items():
        if not any("reference" in p for p in rows):
            where = " and ".join(inputs[k] for k in ("heldOut", "benchmark") if k in inputs) or inputs["prompts"]
            raise BadInput(
                f"{field}: a reference scorer, but none of the {len(rows)} evaluation prompt(s) it scores carries a "
                f"'reference' ({where}); add references, or use a scorer that needs none"
            )
        for p in rows:
            if "reference" not in p:
                problems.append(f"{p['source']['uri']}:{p['source']['line']}: reference: required by {field}")
    return problems


def _read_benchmark(store: Store, inputs: dict, on_invalid: str) -> tuple[list[dict], list[str], int]:
    if "benchmark" not in inputs:
        return [], [], 0
    src = read_prompts(store, inputs["benchmark"], on_invalid)
    bench, dupes = dedupe(src.prompts)
    if not bench:
        raise BadInput(f"evaluation.benchmarkUri: {inputs['benchmark']}: no valid benchmark prompts")
    return bench, [f"{inputs['benchmark']}: {p}" for p in src.problems], dupes


def _split(store: Store, spec: dict) -> tuple[list[dict], list[dict], list[dict], dict]:
    """Reads, de-duplicates and splits the prompts: (train, held out, benchmark, counts for the metrics). The
    training prompts still carry their references: only the labelled baseline's file may keep them."""
    params, inputs = spec["params"], spec["inputs"]
    source = read_prompts(store, inputs["prompts"], params["onInvalid"])
    prompts, duplicates = dedupe(source.prompts)
    problems = list(source.problems)
    bench, bench_problems, bench_dupes = _read_benchmark(store, inputs, params["onInvalid"])
    problems += bench_problems
    duplicates += bench_dupes
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
    else:
        train, held = split_fraction(prompts, params["heldOutFraction"], params["seed"])
    # The benchmark is never trained on: a training prompt asking what a benchmark prompt asks is dropped.
    bench_contents = {_messages_key(p) for p in bench}
    kept = [p for p in train if _messages_key(p) not in bench_contents]
    removed = len(prompts) - len(kept) - (0 if "heldOut" in inputs else len(held))
    train = kept  # references still on: run() strips them before any shard is written

    missing = _check_evaluation(params, inputs, held, bench)
    if missing:
        if params["onInvalid"] == "fail":
            listed = "; ".join(missing[:MAX_LISTED])
            more = f"; and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
            raise BadInput(
                f"{len(missing)} evaluation prompt(s) without the reference their scorer needs "
                f"(set prompts.onInvalid to 'skip' to leave them out of the evaluation): {listed}{more}"
            )
        references = params.get("references") or {}

        def usable(p: dict) -> bool:
            return "reference" in p or _reference_field(references, p.get("task")) is None

        held, bench = [p for p in held if usable(p)], [p for p in bench if usable(p)]
        if not held and not bench:
            raise BadInput(f"{inputs.get('heldOut', inputs['prompts'])}: no evaluation prompt carries a reference")
        problems += missing
    if (need := params.get("minEvalPrompts")) and len(held) + len(bench) < need["count"]:
        raise BadInput(
            f"{need['field']}: needs at least {need['count']} evaluation prompts, the evaluation set has "
            f"{len(held) + len(bench)} ({len(held)} held out + {len(bench)} benchmark): add prompts, raise "
            "evaluation.heldOutFraction, add a benchmark, or choose a rule that needs fewer"
        )
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
            f"{source.invalid} invalid, {duplicates} duplicates, {removed} also in the held-out set or benchmark)"
        )
    counts = {"promptsIn": source.lines, "invalid": len(problems), "duplicates": duplicates}
    with_ref = sum("reference" in p for p in held)
    return train, held, bench, counts | {"removedAsHeldOut": removed, "heldOutWithReference": with_ref}


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    _check(spec)
    steps = 4
    with_refs, held, bench, counts = _split(store, spec)
    if spec["params"].get("labelled"):
        return _labelled(spec, store, with_refs, counts, started)
    train = [strip_reference(p) for p in with_refs]
    progress(STAGE, 1, steps, train=len(train), heldOut=len(held), benchmark=len(bench))

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
        outputs = {"prompts": shard_paths, "heldOut": "heldout.jsonl"}
        if "benchmark" in spec["inputs"]:
            write_jsonl(workdir / "benchmark.jsonl", bench)
            outputs["benchmark"] = "benchmark.jsonl"
        if empty := sum(not b for b in buckets):
            emit("warning", stage=STAGE, message=f"{empty} of {shards} shards are empty")
        progress(STAGE, 2, steps)

        model = _stage_model(store, spec["inputs"]["model"], workdir)
        progress(STAGE, 3, steps)

        manifest = publish(
            store,
            spec,
            workdir,
            outputs=outputs | {"model": model},
            records_in=counts["promptsIn"],
            records_out=len(train) + len(held) + len(bench),
            metrics=counts
            | {
                "train": len(train),
                "heldOut": len(held),
                "benchmark": len(bench),
                "shards": shards,
                "perShard": [len(b) for b in buckets],
            },
            started_at=started,
        )
        progress(STAGE, 4, steps)
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _labelled(spec: dict, store: Store, train: list[dict], counts: dict, started: float) -> dict:
    """The labelled baseline's dataset (``params.labelled``): the training prompts of the same split with their
    references as SFT targets, written as ``baseline-labelled-sft.jsonl`` and nothing else (no shards, no
    held-out file, no model): the only artifact outside the evaluation side that holds references."""
    rows, missing = labelled_rows(train, spec["params"]["labelled"])
    progress(STAGE, 1, 2, rows=len(rows), withoutReference=len(missing))
    workdir = Path(tempfile.mkdtemp(prefix="tao-prepare-labelled-"))
    try:
        write_jsonl(workdir / LABELLED_FILE, rows)
        manifest = publish(
            store,
            spec,
            workdir,
            outputs={"labelledSft": LABELLED_FILE},
            records_in=counts["promptsIn"],
            records_out=len(rows),
            metrics=counts | {"train": len(train), "rows": len(rows), "withoutReference": len(missing)},
            started_at=started,
        )
        progress(STAGE, 2, 2)
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
