"""dataset: turn scored samples into a DPO preference set (best vs worst sample per prompt).

For each prompt, the best and the worst sample by combined score form a pair when ``best - worst >=
minMargin`` and ``> 0``. Ties pick the lowest sample_id on both ends, so the set is the same on every run.
Rows are TRL's conversational preference format (``prompt`` / ``chosen`` / ``rejected`` message lists),
plus the prompt_id, margin and both scores for inspection.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ..contract import BadInput, InvalidSpec, progress
from ..manifest import publish
from ..prompts import expand, read_artifact, read_prepared, write_jsonl
from ..scorers import COMBINED
from ..store import Store
from .score import GENERATION_FIELDS

STAGE = "dataset"
SCORE_FIELDS: dict = {"prompt_id": str, "sample_id": (str, int), "scorer": str, "score": (int, float, type(None))}


def sample_order(sample_id: object) -> tuple:
    """Sort key for tie-breaks: integer ids numerically before string ids lexicographically."""
    return (0, sample_id, "") if isinstance(sample_id, int) else (1, 0, str(sample_id))


def pick_pair(scored: list[tuple[object, float]]) -> tuple[tuple[object, float], tuple[object, float]]:
    """(best, worst) of (sample_id, score) pairs; ties go to the lowest sample_id on both ends."""
    ordered = sorted(scored, key=lambda s: sample_order(s[0]))
    best = max(ordered, key=lambda s: s[1])  # max/min return the first of equal elements
    worst = min(ordered, key=lambda s: s[1])
    return best, worst


def _check(spec: dict) -> None:
    inputs = spec["inputs"]
    n = len(inputs["prompts"])
    problems = [
        f"inputs.{k}: {len(inputs[k])} entries but inputs.prompts has {n} (one per shard)"
        for k in ("generations", "scores")
        if len(inputs[k]) != n
    ]
    if problems:
        raise InvalidSpec(problems)


def _read(store: Store, spec: dict) -> tuple[dict, dict, dict]:
    """(prompts by id, text by (prompt_id, sample_id), combined score by (prompt_id, sample_id))."""
    inputs = spec["inputs"]
    prompts: dict[str, dict] = {}
    for uri in inputs["prompts"]:
        for f in expand(store, uri):
            for p in read_prepared(store, f):
                prompts[p["prompt_id"]] = p
    texts: dict[tuple[str, object], str] = {}
    where: dict[tuple[str, object], str] = {}
    for uri in inputs["generations"]:
        for f in expand(store, uri):
            for n, row in read_artifact(store, f, GENERATION_FIELDS):
                key = (row["prompt_id"], row["sample_id"])
                if row["prompt_id"] not in prompts:
                    raise BadInput(f"{f}:{n}: prompt_id {row['prompt_id']!r} is not in the prompts inputs")
                texts[key] = row["text"]
                where[key] = f"{f}:{n}"
    combined: dict[tuple[str, object], float] = {}
    unscored: set[tuple[str, object]] = set()
    for uri in inputs["scores"]:
        for f in expand(store, uri):
            for n, row in read_artifact(store, f, SCORE_FIELDS):
                if row["scorer"] != COMBINED:
                    continue
                key = (row["prompt_id"], row["sample_id"])
                if key not in texts:
                    raise BadInput(f"{f}:{n}: score for sample {key[1]!r} of prompt {key[0]!r}, not generated")
                if row["score"] is None:
                    unscored.add(key)  # every scorer abstained: this sample cannot be ranked
                    continue
                combined[key] = float(row["score"])
    for key, at in where.items():
        if key not in combined and key not in unscored:
            raise BadInput(f"{at}: sample {key[1]!r} of prompt {key[0]!r} has no {COMBINED!r} score")
    return prompts, texts, combined


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    _check(spec)
    min_margin = spec["params"]["minMargin"]
    prompts, texts, combined = _read(store, spec)

    by_prompt: dict[str, list[tuple[object, float]]] = {}
    for (pid, sid), score in combined.items():
        by_prompt.setdefault(pid, []).append((sid, score))
    pairs: list[dict] = []
    low_margin = too_few = 0
    for i, (pid, prompt) in enumerate(prompts.items(), start=1):
        if i % 500 == 0 or i == len(prompts):
            progress(STAGE, i, len(prompts))
        scored = by_prompt.get(pid, [])
        if len(scored) < 2:
            too_few += 1
            continue
        (best_id, best), (worst_id, worst) = pick_pair(scored)
        margin = best - worst
        if margin <= 0 or margin < min_margin:
            low_margin += 1
            continue
        pairs.append(
            {
                "prompt_id": pid,
                "prompt": prompt["messages"],
                "chosen": [{"role": "assistant", "content": texts[pid, best_id]}],
                "rejected": [{"role": "assistant", "content": texts[pid, worst_id]}],
                "margin": margin,
                "chosen_score": best,
                "rejected_score": worst,
                "chosen_sample_id": best_id,
                "rejected_sample_id": worst_id,
            }
        )

    if not pairs:
        raise BadInput(
            f"no preference pairs: no prompt had a best-worst margin >= {min_margin} (and > 0) "
            f"over {len(prompts)} prompts, {len(combined)} scored samples ({low_margin} below the margin, "
            f"{too_few} with fewer than 2 samples); the scorers gave every sample the same score?"
        )
    metrics = {
        "prompts": len(prompts),
        "samples": len(combined),
        "pairs": len(pairs),
        "droppedLowMargin": low_margin,
        "droppedTooFewSamples": too_few,
        "meanMargin": statistics.fmean(p["margin"] for p in pairs),
    }
    workdir = Path(tempfile.mkdtemp(prefix="tao-dataset-"))
    try:
        write_jsonl(workdir / "dpo.jsonl", pairs)
        return publish(
            store,
            spec,
            workdir,
            outputs={"dataset": "dpo.jsonl"},
            records_in=len(combined),
            records_out=len(pairs),
            metrics=metrics,
            started_at=started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
