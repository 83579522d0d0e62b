"""generate: sample ``samplesPerPrompt`` candidates per prompt of one shard with the configured engine.

Samples are spread over strategies x temperatures round-robin (``strategies.assign``). Each sample has its
own seed, ``sha256(seed, round, prompt_id, strategy, sample index)``, recorded with it, so any sample can be
regenerated on its own. Output ``generations.jsonl``, one row per sample::

    {prompt_id, sample_id, strategy, sampling: {temperature, top_p, seed, max_tokens},
     text, finish_reason: "stop" | "length", model_rev}

``sample_id`` is the sample index (0..samplesPerPrompt-1) within its prompt.

Resume: prompts are generated in chunks of ``CHUNK_PROMPTS``; each finished chunk is written to the store
at once (``<output>chunks/chunk-00000.jsonl``). A rerun of the same spec (same output prefix, e.g. after
preemption) reuses finished chunks and generates only the rest; per-sample seeds make the result the same
as an uninterrupted run. The chunks are concatenated into ``generations.jsonl`` and deleted once the
manifest is published.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..contract import BadInput, emit, progress
from ..engines import Request, open_engine
from ..manifest import publish
from ..models.local import local_model_dir, model_rev
from ..prompts import expand, read_prepared
from ..store import Store, join
from ..strategies import assign, build_messages, sample_seed

STAGE = "generate"
CHUNK_PROMPTS = int(os.environ.get("TAO_GENERATE_CHUNK_PROMPTS", "32"))


def plan_requests(prompt: dict, params: dict, round_: int) -> list[tuple[dict, Request]]:
    """(row without text, request) for each sample of one prompt."""
    out = []
    pid = prompt["prompt_id"]
    for s in assign(params["samplesPerPrompt"], params["strategies"], params["temperatures"]):
        seed = sample_seed(params["seed"], round_, pid, s.strategy, s.index)
        req = Request(
            messages=build_messages(s.strategy, prompt["messages"]),
            temperature=s.temperature,
            top_p=params["topP"],
            max_tokens=params["maxTokens"],
            seed=seed,
        )
        row = {
            "prompt_id": pid,
            "sample_id": s.index,
            "strategy": s.strategy,
            "sampling": {
                "temperature": s.temperature,
                "top_p": params["topP"],
                "seed": seed,
                "max_tokens": params["maxTokens"],
            },
        }
        out.append((row, req))
    return out


def _chunk_uri(spec: dict, i: int) -> str:
    return join(spec["output"], f"chunks/chunk-{i:05d}.jsonl")


def _read_chunk(store: Store, uri: str, expected: int) -> list[dict] | None:
    """A finished chunk's rows, or None when absent or not complete (then it is regenerated)."""
    if not store.exists(uri):
        return None
    try:
        rows = [json.loads(line) for line in store.read_text(uri).splitlines() if line.strip()]
    except (ValueError, BadInput):
        return None
    return rows if len(rows) == expected else None


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    params = spec["params"]
    prompts = [p for f in expand(store, spec["inputs"]["prompts"]) for p in read_prepared(store, f)]
    model_dir = local_model_dir(store, spec["inputs"]["model"])
    rev = model_rev(model_dir)
    chunks = [prompts[i : i + CHUNK_PROMPTS] for i in range(0, len(prompts), CHUNK_PROMPTS)]
    per_prompt = params["samplesPerPrompt"]

    engine = None
    rows: list[dict] = []
    generated = resumed = 0
    gen_seconds = 0.0
    progress(STAGE, 0, len(prompts))
    try:
        for i, chunk in enumerate(chunks):
            uri = _chunk_uri(spec, i)
            chunk_rows = _read_chunk(store, uri, len(chunk) * per_prompt)
            if chunk_rows is not None:
                resumed += 1
            else:
                if engine is None:
                    engine = open_engine(params["engine"], model_dir)
                planned = [pr for p in chunk for pr in plan_requests(p, params, spec["run"]["round"])]
                t0 = time.time()
                completions = engine.generate([req for _, req in planned])
                gen_seconds += time.time() - t0
                generated += len(completions)
                chunk_rows = [
                    row | {"text": c.text, "finish_reason": c.finish_reason, "model_rev": rev}
                    for (row, _), c in zip(planned, completions, strict=True)
                ]
                body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk_rows)
                store.write_text(uri, body)
            rows += chunk_rows
            progress(STAGE, sum(len(c) for c in chunks[: i + 1]), len(prompts), samples=len(rows))
    finally:
        if engine is not None:
            engine.close()
    if resumed:
        emit("resumed", stage=STAGE, chunks=resumed, of=len(chunks))

    workdir = Path(tempfile.mkdtemp(prefix="tao-generate-"))
    try:
        with open(workdir / "generations.jsonl", "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        metrics = {
            "prompts": len(prompts),
            "samples": len(rows),
            "meanLength": statistics.fmean(len(r["text"]) for r in rows) if rows else 0.0,
            "finishReasons": dict(Counter(r["finish_reason"] for r in rows)),
            "samplesPerSecond": round(generated / gen_seconds, 2) if gen_seconds > 0 else None,
            "resumedChunks": resumed,
            "engine": params["engine"],
            "modelRev": rev,
        }
        manifest = publish(
            store,
            spec,
            workdir,
            outputs={"generations": "generations.jsonl"},
            records_in=len(prompts),
            records_out=len(rows),
            metrics=metrics,
            started_at=started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for i in range(len(chunks)):
        store.delete(_chunk_uri(spec, i))
    if spec["output"].startswith("file://"):  # object stores have no directories to remove
        shutil.rmtree(Path(unquote(urlparse(spec["output"]).path)) / "chunks", ignore_errors=True)
    return manifest
