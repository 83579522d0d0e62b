"""Stage output manifests (docs/design.md#rule-8): written last, so a valid manifest means the stage is done."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

from . import __version__
from .contract import BadInput, emit
from .store import AlreadyExists, Store, join

MANIFEST_SCHEMA = "tao.manifest/v1"
QUARANTINE = "quarantine"


def _describe(path: Path, rel: str) -> dict:
    h = hashlib.sha256()
    lines = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            lines += block.count(b"\n")
    entry: dict = {"path": rel, "size": path.stat().st_size, "sha256": h.hexdigest()}
    if rel.endswith(".jsonl"):
        entry["records"] = lines
    return entry


def publish(
    store: Store,
    spec: dict,
    workdir: Path,
    *,
    outputs: dict[str, str],
    records_in: int,
    records_out: int,
    metrics: dict,
    started_at: float,
) -> dict:
    """Uploads every file of ``workdir`` under the spec's output prefix, then writes ``manifest.json`` last.

    ``outputs`` maps output names to paths relative to the prefix (directories end with ``/``); the
    orchestrator resolves the next stage's inputs from it. ``spec["output"]`` is this run's own attempt folder
    (the orchestrator publishes it to the stage by one conditional create; docs/stage-contract.md). The manifest
    is a conditional create here too: a valid manifest already there (a concurrent run of the same spec) wins
    and is returned; an invalid one (not JSON, another stage or key) is quarantined once and this one written.
    """
    prefix = spec["output"]
    files = []
    for p in sorted(workdir.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(workdir))
            store.upload_file(p, join(prefix, rel))
            files.append(_describe(p, rel))
    finished = time.time()
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "stage": spec["stage"],
        "shard": spec.get("shard"),
        "key": spec.get("key"),
        "outputs": outputs,
        "files": files,
        "records": {"in": records_in, "out": records_out},
        "metrics": metrics,
        "producer": {
            "name": "tao_jobs",
            "version": __version__,
            "codeVersion": spec["run"].get("codeVersion"),
        },
        "timings": {
            "startedAt": started_at,
            "finishedAt": finished,
            "durationS": round(finished - started_at, 3),
        },
    }
    uri = join(prefix, "manifest.json")
    body = json.dumps(manifest, indent=2).encode()
    for _ in range(2):  # at most one quarantine: then the fresh manifest is created, or a valid one is found
        try:
            store.write_bytes(uri, body, if_none_match=True)
            return manifest
        except AlreadyExists:
            try:
                raw = store.read_bytes(uri)
            except BadInput:
                continue  # quarantined by someone else meanwhile: create again
            problem = manifest_problem(raw, spec)
            if problem is None:
                return json.loads(raw)  # a concurrent attempt published first: its manifest wins
            quarantine(store, prefix, raw, problem)
    raise RuntimeError(f"{uri}: still invalid after quarantining it once")


def manifest_problem(raw: bytes, spec: dict) -> str | None:
    """Why an existing manifest cannot stand for this stage (None when it can): not JSON, another schema,
    another stage or key. Files are checked by the orchestrator (sizes, checksums) before any reuse."""
    try:
        m = json.loads(raw)
    except ValueError as e:
        return f"not JSON ({e})"
    if not isinstance(m, dict) or m.get("schema") != MANIFEST_SCHEMA:
        return f"not a {MANIFEST_SCHEMA} manifest"
    if m.get("stage") != spec["stage"] or m.get("key") != spec.get("key"):
        return f"written for {m.get('stage')}/{m.get('key')}, expected {spec['stage']}/{spec.get('key')}"
    if not isinstance(m.get("files"), list) or not isinstance(m.get("outputs"), dict):
        return "files or outputs missing"
    return None


def quarantine(store: Store, prefix: str, raw: bytes, reason: str) -> str:
    """Moves an invalid ``manifest.json`` to ``quarantine/<time>-<id>/`` (kept for inspection, with the reason);
    the original is removed only if it still holds these bytes. Returns the copy's URI."""
    folder = join(prefix, QUARANTINE, time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6])
    copy = join(folder, "manifest.json")
    store.write_bytes(copy, raw)
    store.write_text(join(folder, "reason.txt"), reason + "\n")
    uri = join(prefix, "manifest.json")
    try:
        if store.read_bytes(uri) == raw:
            store.delete(uri)
    except BadInput:
        pass  # already gone
    emit("quarantined", manifest=uri, copy=copy, reason=reason)
    return copy
