"""dataset: turn scored samples into the training set of the round's algorithm (``params.algorithm``).

Every algorithm reads the same inputs (prompts, generations and the per-sample ``combined`` scores; samples on
which every scorer abstained are left out) and writes one JSONL file, the ``dataset`` output, named after the
algorithm. Ties are broken by the lowest sample_id, so the set is the same on every run.

- ``dpo`` (``dpo.jsonl``): for each prompt, the best and the worst sample form a pair when ``best - worst >=
  minMargin`` and ``> 0``. TRL's conversational preference format (``prompt`` / ``chosen`` / ``rejected``
  message lists) plus the prompt_id, margin and both scores for inspection.
- ``sft`` (``sft.jsonl``, best-of-N / RAFT): each prompt's best sample when its score ``>= minScore``. TRL's
  conversational prompt-completion format ``{prompt, completion: [{role: assistant, content}]}``.
- ``kto`` (``kto.jsonl``): per prompt, the top ``ktoQuantile`` fraction of the samples (at least one) are
  desirable and the bottom fraction (at least one) undesirable; a prompt needs two samples and non-zero
  variance. A score found on both sides is dropped from both (see ``kto_labels``): the best sample is always
  desirable and the worst always undesirable. TRL's unpaired preference format ``{prompt, completion, label: bool}``.
- ``grpo`` (``grpo.jsonl``, offline group-relative): every sample of a prompt with
  ``advantage = (score - mean) / (std + 1e-6)`` over the prompt's group (sample standard deviation, as TRL's
  GRPO); groups of zero variance carry no signal and are dropped. ``{prompt, completion, advantage, score}``.

Zero usable rows is BadInput with the reason (usually: the scorers gave every sample the same score).
"""

from __future__ import annotations

import math
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
ALGORITHMS = ("dpo", "sft", "kto", "grpo")
ADV_EPS = 1e-6
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


class _Ctx:
    """The inputs read once: prompts in input order, sample texts and combined scores grouped by prompt."""

    def __init__(self, prompts: dict, texts: dict, combined: dict):
        self.prompts, self.texts, self.combined = prompts, texts, combined
        self.by_prompt: dict[str, list[tuple[object, float]]] = {}
        for (pid, sid), score in combined.items():
            self.by_prompt.setdefault(pid, []).append((sid, score))

    def groups(self):
        """(prompt_id, prompt, [(sample_id, score)]) per prompt, with progress lines."""
        for i, (pid, prompt) in enumerate(self.prompts.items(), start=1):
            if i % 500 == 0 or i == len(self.prompts):
                progress(STAGE, i, len(self.prompts))
            yield pid, prompt, self.by_prompt.get(pid, [])

    def summary(self) -> str:
        return f"{len(self.prompts)} prompts, {len(self.combined)} scored samples"


def _ranked(scored: list[tuple[object, float]]) -> list[tuple[object, float]]:
    """Best first; equal scores by the lowest sample_id."""
    return sorted(sorted(scored, key=lambda s: sample_order(s[0])), key=lambda s: -s[1])


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _dpo(ctx: _Ctx, params: dict) -> tuple[list[dict], dict, str]:
    min_margin = params["minMargin"]
    pairs: list[dict] = []
    low_margin = too_few = 0
    for pid, prompt, scored in ctx.groups():
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
                "chosen": _assistant(ctx.texts[pid, best_id]),
                "rejected": _assistant(ctx.texts[pid, worst_id]),
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
            f"over {ctx.summary()} ({low_margin} below the margin, "
            f"{too_few} with fewer than 2 samples); the scorers gave every sample the same score?"
        )
    metrics = {
        "pairs": len(pairs),
        "droppedLowMargin": low_margin,
        "droppedTooFewSamples": too_few,
        "meanMargin": statistics.fmean(p["margin"] for p in pairs),
    }
    return pairs, metrics, "dpo.jsonl"


def _sft(ctx: _Ctx, params: dict) -> tuple[list[dict], dict, str]:
    min_score = params.get("minScore", 0.0)
    rows: list[dict] = []
    low_score = unscored = 0
    for pid, prompt, scored in ctx.groups():
        if not scored:
            unscored += 1
            continue
        best_id, best = _ranked(scored)[0]
        if best < min_score:
            low_score += 1
            continue
        rows.append(
            {
                "prompt_id": pid,
                "prompt": prompt["messages"],
                "completion": _assistant(ctx.texts[pid, best_id]),
                "score": best,
                "sample_id": best_id,
                "samples": len(scored),
            }
        )
    if not rows:
        raise BadInput(
            f"no SFT rows: no prompt's best sample scored >= minScore {min_score} over {ctx.summary()} "
            f"({low_score} below minScore, {unscored} without a scored sample); lower minScore, or are the "
            f"scorers failing every sample?"
        )
    metrics = {
        "rows": len(rows),
        "droppedLowScore": low_score,
        "droppedNoSamples": unscored,
        "meanScore": statistics.fmean(r["score"] for r in rows),
    }
    return rows, metrics, "sft.jsonl"


def kto_labels(scored: list[tuple[object, float]], quantile: float) -> tuple[list, list]:
    """(desirable, undesirable) (sample_id, score) lists of one prompt's samples (non-zero variance): the top
    and bottom ``quantile`` fraction (at least one each). A top sample scoring the group's minimum is not
    desirable, a bottom one scoring the maximum not undesirable, and scores left on both sides are dropped
    from both: the best sample is always desirable, the worst always undesirable."""
    ranked = _ranked(scored)
    k = max(1, math.floor(quantile * len(ranked)))
    best, worst = ranked[0][1], ranked[-1][1]
    top = [x for x in ranked[:k] if x[1] > worst]
    bottom = [x for x in reversed(ranked[-k:]) if x[1] < best]
    both = {s for _, s in top} & {s for _, s in bottom}
    return [x for x in top if x[1] not in both], [x for x in bottom if x[1] not in both]


def _kto(ctx: _Ctx, params: dict) -> tuple[list[dict], dict, str]:
    quantile = params.get("ktoQuantile", 0.25)
    rows: list[dict] = []
    too_few = flat = 0
    for pid, prompt, scored in ctx.groups():
        if len(scored) < 2:
            too_few += 1
            continue
        if max(s for _, s in scored) == min(s for _, s in scored):
            flat += 1
            continue
        good, bad = kto_labels(scored, quantile)
        for label, chosen in ((True, good), (False, bad)):
            for sid, score in chosen:
                rows.append(
                    {
                        "prompt_id": pid,
                        "prompt": prompt["messages"],
                        "completion": _assistant(ctx.texts[pid, sid]),
                        "label": label,
                        "score": score,
                        "sample_id": sid,
                    }
                )
    if not rows:
        raise BadInput(
            f"no KTO rows: no prompt had two samples with different scores over {ctx.summary()} "
            f"({flat} with zero variance, {too_few} with fewer than 2 samples); the scorers gave every sample "
            f"the same score?"
        )
    desirable = sum(r["label"] for r in rows)
    metrics = {
        "rows": len(rows),
        "desirable": desirable,
        "undesirable": len(rows) - desirable,
        "droppedZeroVariance": flat,
        "droppedTooFewSamples": too_few,
    }
    return rows, metrics, "kto.jsonl"


def group_advantages(scored: list[tuple[object, float]]) -> list[tuple[object, float, float]] | None:
    """(sample_id, score, advantage) per sample, sample_id order; None for a group of zero variance."""
    scores = [s for _, s in scored]
    std = statistics.stdev(scores)
    if std == 0:
        return None
    mean = statistics.fmean(scores)
    ordered = sorted(scored, key=lambda s: sample_order(s[0]))
    return [(sid, s, (s - mean) / (std + ADV_EPS)) for sid, s in ordered]


def _grpo(ctx: _Ctx, params: dict) -> tuple[list[dict], dict, str]:
    rows: list[dict] = []
    too_few = flat = groups = 0
    for pid, prompt, scored in ctx.groups():
        if len(scored) < 2:
            too_few += 1
            continue
        adv = group_advantages(scored)
        if adv is None:
            flat += 1
            continue
        groups += 1
        for sid, score, a in adv:
            rows.append(
                {
                    "prompt_id": pid,
                    "prompt": prompt["messages"],
                    "completion": _assistant(ctx.texts[pid, sid]),
                    "advantage": a,
                    "score": score,
                    "sample_id": sid,
                }
            )
    if not rows:
        raise BadInput(
            f"no GRPO groups: every prompt's samples scored the same (or it had fewer than 2) over "
            f"{ctx.summary()} ({flat} with zero variance, {too_few} with fewer than 2 samples); the scorers "
            f"gave every sample the same score?"
        )
    metrics = {
        "rows": len(rows),
        "groups": groups,
        "droppedZeroVariance": flat,
        "droppedTooFewSamples": too_few,
        "meanAbsAdvantage": statistics.fmean(abs(r["advantage"]) for r in rows),
    }
    return rows, metrics, "grpo.jsonl"


BUILDERS = {"dpo": _dpo, "sft": _sft, "kto": _kto, "grpo": _grpo}


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    _check(spec)
    params = spec["params"]
    algorithm = params.get("algorithm", "dpo")
    if algorithm not in BUILDERS:
        raise InvalidSpec([f"params.algorithm: must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"])
    ctx = _Ctx(*_read(store, spec))
    rows, algo_metrics, name = BUILDERS[algorithm](ctx, params)
    metrics = {"prompts": len(ctx.prompts), "samples": len(ctx.combined), **algo_metrics}
    if algorithm != "dpo":  # the DPO metrics predate the other algorithms: kept as they were
        metrics = {"algorithm": algorithm, **metrics}
    workdir = Path(tempfile.mkdtemp(prefix="tao-dataset-"))
    try:
        write_jsonl(workdir / name, rows)
        return publish(
            store,
            spec,
            workdir,
            outputs={"dataset": name},
            records_in=len(ctx.combined),
            records_out=len(rows),
            metrics=metrics,
            started_at=started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
