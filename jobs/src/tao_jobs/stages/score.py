"""score: score every generated sample of one shard with the configured scorers.

Writes ``scores.jsonl``: per sample, one row per applicable scorer ``{prompt_id, sample_id, scorer, score,
details}`` followed by one ``scorer: "combined"`` row with the weighted mean (the dataset stage reads that).
Samples are scored per prompt group so group scorers (votes) see all of a prompt's samples at once; the
shard's groups are handed to each scorer together (``ScoringPlan.score_groups``) so a judge keeps up to its
``concurrency`` requests in flight across prompts. Progress counts (scorer, prompt) pairs.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ..contract import BadInput, progress
from ..manifest import publish
from ..prompts import expand, read_artifact, read_prepared, strip_reference, write_jsonl
from ..scorers import COMBINED, ScoringPlan
from ..store import Store

STAGE = "score"
GENERATION_FIELDS: dict = {"prompt_id": str, "sample_id": (str, int), "text": str}


def read_generations(store: Store, uri: str, prompt_ids: set[str]) -> dict[str, list[dict]]:
    """Generations grouped by prompt_id (file order kept). BadInput naming file and line for an unknown
    prompt_id or a repeated (prompt_id, sample_id)."""
    groups: dict[str, list[dict]] = {}
    seen: dict[tuple[str, object], str] = {}
    for file in expand(store, uri):
        for n, row in read_artifact(store, file, GENERATION_FIELDS):
            pid, sid = row["prompt_id"], row["sample_id"]
            if pid not in prompt_ids:
                raise BadInput(f"{file}:{n}: prompt_id {pid!r} is not in the prompts input")
            if (pid, sid) in seen:
                raise BadInput(f"{file}:{n}: duplicate sample {sid!r} of prompt {pid!r} (first at {seen[pid, sid]})")
            seen[pid, sid] = f"{file}:{n}"
            groups.setdefault(pid, []).append(row)
    return groups


def _mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    # The plan may hold worker processes (sql) and models (reward-model): close them whatever happens.
    with ScoringPlan.from_params(spec["params"], store=store) as plan:
        return _score(spec, store, plan, started)


def _score(spec: dict, store: Store, plan: ScoringPlan, started: float) -> dict:
    # Training scorers never see a reference, even on prompts that carry one (best-of-N scores held-out prompts).
    prompts = {
        p["prompt_id"]: strip_reference(p)
        for f in expand(store, spec["inputs"]["prompts"])
        for p in read_prepared(store, f)
    }
    groups = read_generations(store, spec["inputs"]["generations"], set(prompts))

    rows: list[dict] = []
    combined: list[float] = []
    per_scorer: dict[str, list[float]] = {name: [] for name in plan.names}
    zero_variance = 0
    unscored = 0

    # The whole shard in one call: a judge keeps up to its concurrency in flight across prompts.
    def on_progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            progress(STAGE, done, total)

    items = list(groups.items())
    scored = plan.score_groups([(prompts[pid], [s["text"] for s in samples]) for pid, samples in items], on_progress)
    for (pid, samples), results in zip(items, scored, strict=True):
        for sample, result in zip(samples, results, strict=True):
            base = {"prompt_id": pid, "sample_id": sample["sample_id"]}
            for name, score in result["scores"].items():
                rows.append(base | {"scorer": name, "score": score, "details": result["details"][name]})
                per_scorer[name].append(score)
            # An abstaining scorer (e.g. an unparseable judge verdict) is written with a null score and its
            # reason, so it is counted and visible, never silently scored.
            for name in result.get("abstained", []):
                rows.append(base | {"scorer": name, "score": None, "details": result["details"].get(name)})
            rows.append(base | {"scorer": COMBINED, "score": result["combined"]})
            if result["combined"] is None:
                unscored += 1
            else:
                combined.append(result["combined"])
        if len({r["combined"] for r in results}) == 1:
            zero_variance += 1

    samples = len(combined) + unscored
    metrics = {
        "samples": samples,
        "unscoredSamples": unscored,
        "scorerStats": plan.stats(),
        "prompts": len(groups),
        "promptsWithoutSamples": len(prompts) - len(groups),
        "meanCombined": _mean(combined),
        "scorerMeans": {name: _mean(xs) for name, xs in per_scorer.items()},
        "zeroVarianceFraction": zero_variance / len(groups) if groups else None,
    }
    workdir = Path(tempfile.mkdtemp(prefix="tao-score-"))
    try:
        write_jsonl(workdir / "scores.jsonl", rows)
        return publish(
            store,
            spec,
            workdir,
            outputs={"scores": "scores.jsonl"},
            records_in=samples,
            records_out=len(rows),
            metrics=metrics,
            started_at=started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
