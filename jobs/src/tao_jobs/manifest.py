"""Stage output manifests (docs/design.md#rule-8): written last, so a valid manifest means the stage is done."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from . import __version__
from .store import AlreadyExists, Store, join

MANIFEST_SCHEMA = "tao.manifest/v1"


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
    orchestrator resolves the next stage's inputs from it. The manifest is a conditional create: if a
    concurrent attempt already published, its manifest wins and this one is discarded (same inputs, same
    result).
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
    try:
        store.write_bytes(join(prefix, "manifest.json"), json.dumps(manifest, indent=2).encode(), if_none_match=True)
    except AlreadyExists:
        return json.loads(store.read_text(join(prefix, "manifest.json")))
    return manifest
