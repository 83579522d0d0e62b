"""evaluate: base vs tuned on the held-out prompts, scored with the same scoring plan as training.

Both models answer every held-out prompt (plain messages, no strategy) ``samplesPerPrompt`` times with the
same per-sample seeds (greedy when ``temperature`` is 0). The unit of the statistics is the prompt: a
prompt's score is the mean over its samples. Means get a percentile bootstrap 95% CI over prompts
(``bootstrap`` resamples, seeded), the improvement a paired bootstrap CI; a prompt is a win when its tuned
score beats its base score by more than ``TIE_EPS``, a tie within it.

Outputs ``eval.jsonl`` (one row per prompt, model and sample: text, finish reason, combined and per-scorer
scores) and ``report.md`` (the round report), with its score histogram ``plots/scores.svg`` beside it.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ..contract import BadInput, progress
from ..engines import Request, open_engine
from ..eval_report import SCORES_PLOT, render_report, scores_svg
from ..manifest import publish
from ..models.local import local_model_dir, model_rev
from ..prompts import expand, read_prepared, write_jsonl
from ..scorers import ScoringPlan
from ..store import Store
from ..strategies import sample_seed

STAGE = "evaluate"
MODELS = ("base", "tuned")
TIE_EPS = 1e-9


def bootstrap_ci(values: list[float], resamples: int, seed: int) -> tuple[float, float]:
    """Percentile 95% CI of the mean of ``values`` (resampled with replacement)."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * (resamples - 1))], means[int(round(0.975 * (resamples - 1)))]


def _generate(model: str, model_dir: Path, prompts: list[dict], params: dict) -> list[dict]:
    engine = open_engine("transformers", model_dir)
    try:
        requests, rows = [], []
        for p in prompts:
            for i in range(params["samplesPerPrompt"]):
                seed = sample_seed(params["seed"], 0, p["prompt_id"], "eval", i)
                requests.append(Request(p["messages"], params["temperature"], 1.0, params["maxTokens"], seed))
                rows.append({"prompt_id": p["prompt_id"], "model": model, "sample_id": i, "seed": seed})
        completions = engine.generate(requests)
    finally:
        engine.close()
    return [
        r | {"text": c.text, "finish_reason": c.finish_reason, "tokens": c.tokens}
        for r, c in zip(rows, completions, strict=True)
    ]


def _score(plan: ScoringPlan, prompts: list[dict], rows: list[dict]) -> None:
    """Adds combined and per-scorer scores to each row, scoring each prompt's samples as one group."""
    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    for p in prompts:
        group = by_prompt.get(p["prompt_id"], [])
        for r, s in zip(group, plan.score_group(p, [r["text"] for r in group]), strict=True):
            r |= {"score": s["combined"], "scores": s["scores"]}


def summarize(rows: list[dict], prompt_ids: list[str], resamples: int, seed: int) -> dict:
    """The evaluation metrics from scored rows (``eval.jsonl``): see the module docstring."""
    per: dict[str, dict[str, list[float]]] = {m: {} for m in MODELS}
    lengths: dict[str, list[int]] = {m: [] for m in MODELS}
    unscored = 0
    for r in rows:
        lengths[r["model"]].append(len(r["text"]))
        if r["score"] is None:  # every scorer abstained on this sample (e.g. unparseable judge verdicts)
            unscored += 1
            continue
        per[r["model"]].setdefault(r["prompt_id"], []).append(r["score"])
    # Base and tuned are compared prompt by prompt: a prompt without a score for either model is left out.
    prompt_ids = [pid for pid in prompt_ids if all(per[m].get(pid) for m in MODELS)]
    if not prompt_ids:
        raise BadInput("no held-out prompt has a score for both models: every scorer abstained")
    means = {m: [statistics.fmean(per[m][pid]) for pid in prompt_ids] for m in MODELS}
    out: dict = {"unscoredSamples": unscored}
    for m in MODELS:
        lo, hi = bootstrap_ci(means[m], resamples, seed)
        out[m] = {
            "mean": statistics.fmean(means[m]),
            "ciLow": lo,
            "ciHigh": hi,
            "meanLength": statistics.fmean(lengths[m]),
            "n": len(means[m]),
        }
    diffs = [t - b for b, t in zip(means["base"], means["tuned"], strict=True)]
    lo, hi = bootstrap_ci(diffs, resamples, seed + 1)
    out["improvement"] = out["tuned"]["mean"] - out["base"]["mean"]
    out["improvementCiLow"], out["improvementCiHigh"] = lo, hi
    out["winRate"] = sum(d > TIE_EPS for d in diffs) / len(diffs)
    out["tieRate"] = sum(abs(d) <= TIE_EPS for d in diffs) / len(diffs)
    return out


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    # The plan may hold worker processes (sql) and models (reward-model): close them whatever happens.
    with ScoringPlan.from_params(spec["params"]["scoring"], path="params.scoring", store=store) as plan:
        return _evaluate(spec, store, plan, started)


def _evaluate(spec: dict, store: Store, plan: ScoringPlan, started: float) -> dict:
    params = spec["params"]
    prompts = [p for f in expand(store, spec["inputs"]["prompts"]) for p in read_prepared(store, f)]
    if not prompts:
        raise BadInput(f"{spec['inputs']['prompts']}: no held-out prompts")
    dirs = {m: local_model_dir(store, spec["inputs"][m]) for m in MODELS}
    revs = {m: model_rev(d) for m, d in dirs.items()}

    rows: list[dict] = []
    for i, m in enumerate(MODELS, start=1):
        generated = _generate(m, dirs[m], prompts, params)
        _score(plan, prompts, generated)
        rows += generated
        progress(STAGE, i, len(MODELS), model=m)

    resamples = params.get("bootstrap", 1000)
    metrics = summarize(rows, [p["prompt_id"] for p in prompts], resamples, params["seed"])
    metrics["modelRevs"] = revs
    workdir = Path(tempfile.mkdtemp(prefix="tao-evaluate-"))
    try:
        write_jsonl(workdir / "eval.jsonl", rows)
        report = render_report(spec, metrics, rows, prompts, plan.names)
        (workdir / "report.md").write_text(report, encoding="utf-8")
        (workdir / SCORES_PLOT).parent.mkdir(parents=True, exist_ok=True)
        (workdir / SCORES_PLOT).write_text(scores_svg(rows), encoding="utf-8")
        return publish(
            store,
            spec,
            workdir,
            outputs={"report": "report.md", "results": "eval.jsonl"},
            records_in=len(prompts),
            records_out=len(rows),
            metrics=metrics,
            started_at=started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
