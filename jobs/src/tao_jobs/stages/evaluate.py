"""evaluate: base vs candidate (and the currently promoted model) on held-out and benchmark prompts, by the
evaluation's own scorers, with the training reward set beside them.

Inputs: ``prompts`` (held-out, references kept), optional ``benchmark`` (the fixed benchmark, references
kept), ``base``, ``tuned`` (the candidate), optional ``promoted`` (the model the registry points at; skipped
when its weights equal base's or the candidate's). Every model answers every prompt (plain messages, no
strategy) ``samplesPerPrompt`` times with the same per-sample seeds (greedy when ``temperature`` is 0).

Two scoring plans: the *independent metric* is ``params.evaluation``'s own scorers (reference scorers
allowed), or, when the user chose ``reuseTrainingScorers``, the training scorers (``params.scoring``); the
*training reward* is always ``params.scoring``. The statistics (``eval_stats.py``) are paired per prompt with
bootstrap 95% CIs (``bootstrap`` resamples, seeded): candidate − base overall, per task, per split
(heldOut/benchmark), candidate − promoted, the training reward's change, length and format drift, the
candidate's KL to base on the held-out prompts, the reward-hacking flag, and, with ``params.gate``, the gate's
verdict (the workflow decides with the same rules).

Baseline arms (run spec ``baselines``; tao_jobs/baselines.py): optional inputs ``labelledFineTuning`` and
``randomReward`` (the arms' merged models, which answer like base and candidate) and ``bestOfNGenerations`` +
``bestOfNScores`` (N samples per held-out prompt and their training scores: each prompt's best sample is the
arm's answer). ``metrics.baselines`` has per arm its score, arm − base and TAO − arm, paired per prompt with
bootstrap CIs over the prompts base and candidate are compared on; they never enter the gate.

Outputs ``eval.jsonl`` (one row per prompt, model and sample: split, text, finish reason, tokens, the
independent ``score``/``scores`` and the training ``reward``/``rewards``) and ``report.md`` (the round report),
with its score histogram ``plots/scores.svg`` beside it.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..baselines import pick_best
from ..contract import BadInput, InvalidSpec, progress
from ..engines import Request, open_engine
from ..eval_report import SCORES_PLOT, render_report, scores_svg
from ..eval_stats import (
    NO_TASK,
    bootstrap_ci,
    drift,
    gate_verdict,
    paired,
    per_prompt,
    reward_hacking,
    summary,
)
from ..manifest import publish
from ..models.local import local_model_dir, model_rev
from ..prompts import expand, read_artifact, read_prepared, write_jsonl
from ..scorers import COMBINED, ScoringPlan
from ..scorers.registry import needs_reference
from ..store import Store
from ..strategies import sample_seed

STAGE = "evaluate"
MODELS = ("base", "tuned")
# The baseline arms (run spec ``baselines``): models that answer like base and tuned, and best-of-N's picks.
ARM_MODELS = ("labelledFineTuning", "randomReward")
BEST_OF_N = "bestOfN"
ARMS = ("labelledFineTuning", BEST_OF_N, "randomReward")
__all__ = ["bootstrap_ci", "run", "summarize"]


def _generate(model: str, model_dir: Path, prompts: list[dict], params: dict) -> list[dict]:
    engine = open_engine("transformers", model_dir)
    try:
        requests, rows = [], []
        for p in prompts:
            for i in range(params["samplesPerPrompt"]):
                seed = sample_seed(params["seed"], 0, p["prompt_id"], "eval", i)
                requests.append(Request(p["messages"], params["temperature"], 1.0, params["maxTokens"], seed))
                rows.append(
                    {"prompt_id": p["prompt_id"], "split": p["split"], "model": model, "sample_id": i, "seed": seed}
                )
        completions = engine.generate(requests)
    finally:
        engine.close()
    return [
        r | {"text": c.text, "finish_reason": c.finish_reason, "tokens": c.tokens}
        for r, c in zip(rows, completions, strict=True)
    ]


def _score(plan: ScoringPlan, prompts: list[dict], rows: list[dict], score: str, scores: str) -> None:
    """Adds the plan's combined and per-scorer scores to each row (as ``score``/``scores``), scoring each
    prompt's samples as one group; all groups go to the plan at once, so a judge keeps its requests in
    flight across prompts."""
    by_prompt: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_prompt.setdefault((r["split"], r["prompt_id"]), []).append(r)
    groups = [by_prompt.get((p["split"], p["prompt_id"]), []) for p in prompts]
    results = plan.score_groups([(p, [r["text"] for r in g]) for p, g in zip(prompts, groups, strict=True)])
    for group, scored in zip(groups, results, strict=True):
        for r, s in zip(group, scored, strict=True):
            r |= {score: s["combined"], scores: s["scores"]}


def summarize(rows: list[dict], prompt_ids: list, resamples: int, seed: int, models=MODELS) -> dict:
    """Quality metrics from scored rows: per model mean/CI/length over the prompts every model has a score
    for, and candidate − base (``improvement`` and its CI, win and tie rates). ``prompt_ids`` are
    ``(split, prompt_id)`` pairs (plain ids mean the held-out split)."""
    keys = [k if isinstance(k, tuple) else ("heldOut", k) for k in prompt_ids]
    per = {m: per_prompt(rows, m) for m in models}
    keys = [k for k in keys if all(k in per[m] for m in models)]
    if not keys:
        raise BadInput("no evaluation prompt has a score for every model: every scorer abstained")
    out: dict = {"unscoredSamples": sum(r["score"] is None for r in rows)}
    for m in models:
        out[m] = summary([per[m][k] for k in keys], resamples, seed) | {
            "meanLength": _mean_length(rows, m),
        }
    d = paired(per["base"], per["tuned"], keys, resamples, seed + 1)
    out["improvement"] = out["tuned"]["mean"] - out["base"]["mean"]
    out["improvementCiLow"], out["improvementCiHigh"] = d["ciLow"], d["ciHigh"]
    out["winRate"], out["tieRate"] = d["winRate"], d["tieRate"]
    return out


def _mean_length(rows: list[dict], model: str) -> float:
    lengths = [len(r["text"]) for r in rows if r["model"] == model]
    return sum(lengths) / len(lengths) if lengths else float("nan")


def _plans(params: dict, store: Store) -> tuple[ScoringPlan, ScoringPlan | None]:
    """(training plan, independent plan or None when the evaluation reuses the training scorers)."""
    problems = [
        f"params.scoring.scorers.{i}.type: {s.get('type')!r} compares with references, which training never has"
        for i, s in enumerate(params["scoring"].get("scorers", []))
        if needs_reference(s.get("type"), s.get("params") or {})
    ]
    ev = params.get("evaluation")
    if ev is not None:
        if ev["reuseTrainingScorers"] == bool(ev.get("scorers")):
            problems.append(
                "params.evaluation: set either scorers or reuseTrainingScorers: true (the explicit choice to "
                "judge the round by its own training reward)"
            )
    if problems:
        raise InvalidSpec(problems)
    training = ScoringPlan.from_params(params["scoring"], path="params.scoring", store=store)
    if ev is None or ev["reuseTrainingScorers"]:
        return training, None
    try:
        own = {"scorers": ev["scorers"], "tasks": ev.get("tasks") or {}}
        return training, ScoringPlan.from_params(own, path="params.evaluation", store=store)
    except BaseException:
        training.close()
        raise


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    # The plans may hold worker processes (sql) and models (reward-model): close them whatever happens.
    training, own = _plans(spec["params"], store)
    with training:
        if own is None:
            return _evaluate(spec, store, training, training, started)
        with own:
            return _evaluate(spec, store, own, training, started)


def _prompts(store: Store, inputs: dict) -> list[dict]:
    prompts = [p | {"split": "heldOut"} for f in expand(store, inputs["prompts"]) for p in read_prepared(store, f)]
    if "benchmark" in inputs:
        prompts += [p | {"split": "benchmark"} for p in read_prepared(store, inputs["benchmark"])]
    if not prompts:
        raise BadInput(f"{inputs['prompts']}: no held-out prompts")
    return prompts


def _models(store: Store, inputs: dict) -> tuple[dict, dict, dict]:
    """(model -> local dir, model -> rev, notes): the promoted model is dropped when it is base or candidate."""
    dirs = {m: local_model_dir(store, inputs[m]) for m in (*MODELS, *ARM_MODELS) if m in inputs}
    revs = {m: model_rev(d) for m, d in dirs.items()}
    notes: dict = {}
    if "promoted" in inputs:
        d = local_model_dir(store, inputs["promoted"])
        rev = model_rev(d)
        same = next((m for m in MODELS if revs[m] == rev), None)
        notes = {"uri": inputs["promoted"], "rev": rev, "sameAs": same, "compared": same is None}
        if same is None:
            dirs["promoted"], revs["promoted"] = d, rev
    return dirs, revs, notes


def _kl(dirs: dict, prompts: list[dict], rows: list[dict]) -> float | None:
    """Mean per-token KL(candidate || base) on the candidate's own answers to the held-out prompts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..models.drift import kl_to_base

    by_id = {p["prompt_id"]: p for p in prompts if p["split"] == "heldOut"}
    pairs = [
        {"prompt": by_id[r["prompt_id"]]["messages"], "chosen": [{"role": "assistant", "content": r["text"]}]}
        for r in rows
        if r["model"] == "tuned" and r["split"] == "heldOut" and r["sample_id"] == 0 and r["text"].strip()
    ]
    if not pairs:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # bf16 on GPUs that have it (two models side by side); the log-softmax in kl_to_base runs in float32
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(dirs["tuned"])
    tuned = AutoModelForCausalLM.from_pretrained(dirs["tuned"], dtype=dtype).to(device).eval()
    base = AutoModelForCausalLM.from_pretrained(dirs["base"], dtype=dtype).to(device).eval()
    try:
        return kl_to_base(tuned, base, tokenizer, pairs, device)
    finally:
        del tuned, base
        if device == "cuda":
            torch.cuda.empty_cache()


def _finite(value):
    """NaN and infinities (an empty comparison, a zero base length) as null: the manifest is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _breakdown(rows: list[dict], keys: list, key_of, resamples: int, seed: int) -> dict:
    """Candidate − base per group of prompts (task or split)."""
    base, tuned = per_prompt(rows, "base"), per_prompt(rows, "tuned")
    groups: dict[str, list] = {}
    for k in keys:
        groups.setdefault(key_of(k), []).append(k)
    return {g: paired(base, tuned, ks, resamples, seed + 7) for g, ks in sorted(groups.items())}


def _best_of_n(store: Store, inputs: dict, prompts: list[dict]) -> list[dict]:
    """Best-of-N's answers as evaluation rows (model ``bestOfN``, one per held-out prompt): each prompt's sample
    the training scorers ranked first (``bestOfNScores``' combined score) among its ``bestOfNGenerations``."""
    if "bestOfNGenerations" not in inputs:
        return []
    from .dataset import SCORE_FIELDS
    from .score import GENERATION_FIELDS

    held = {p["prompt_id"] for p in prompts if p["split"] == "heldOut"}
    gens = [
        row
        for f in expand(store, inputs["bestOfNGenerations"])
        for _, row in read_artifact(store, f, GENERATION_FIELDS)
        if row["prompt_id"] in held
    ]
    combined = {
        (row["prompt_id"], row["sample_id"]): row["score"]
        for f in expand(store, inputs["bestOfNScores"])
        for _, row in read_artifact(store, f, SCORE_FIELDS)
        if row["scorer"] == COMBINED
    }
    samples = Counter(g["prompt_id"] for g in gens)
    return [
        {
            "prompt_id": pid,
            "split": "heldOut",
            "model": BEST_OF_N,
            "sample_id": 0,
            "text": g["text"],
            "finish_reason": g.get("finish_reason"),
            "picked": {"sample_id": g["sample_id"], "strategy": g.get("strategy"), "of": samples[pid]},
        }
        for pid, g in sorted(pick_best(gens, combined).items())
    ]


def _baselines(rows: list[dict], keys: list, inputs: dict, resamples: int, seed: int) -> dict:
    """Each arm beside TAO on the prompts base and tuned are compared on (and the arm has a score for): its score,
    arm − base and TAO − arm, paired per prompt with bootstrap 95% CIs, as for candidate − base."""
    base, tuned = per_prompt(rows, "base"), per_prompt(rows, "tuned")
    scored = [k for k in keys if k in base and k in tuned]
    out = {}
    for i, arm in enumerate(ARMS):
        mine = per_prompt(rows, arm)
        if not mine:
            continue
        ks = [k for k in scored if k in mine]
        out[arm] = {
            "score": summary([mine[k] for k in ks], resamples, seed),
            "vsBase": paired(base, mine, ks, resamples, seed + 11 + i),
            "taoVsArm": paired(mine, tuned, ks, resamples, seed + 21 + i),
            "uri": inputs.get(arm) or inputs.get("bestOfNGenerations"),
        }
        if arm == BEST_OF_N:
            picks = [r["picked"]["of"] for r in rows if r["model"] == BEST_OF_N]
            out[arm]["samplesPerPrompt"] = max(picks) if picks else 0
    return out


def _evaluate(spec: dict, store: Store, quality: ScoringPlan, reward: ScoringPlan, started: float) -> dict:
    params, inputs = spec["params"], spec["inputs"]
    independent = quality is not reward
    prompts = _prompts(store, inputs)
    dirs, revs, promoted = _models(store, inputs)
    models = tuple(dirs)

    rows: list[dict] = []
    for i, m in enumerate(models, start=1):
        generated = _generate(m, dirs[m], prompts, params)
        _score(quality, prompts, generated, "score", "scores")
        if independent:
            _score(reward, prompts, generated, "reward", "rewards")
        else:
            for r in generated:
                r |= {"reward": r["score"], "rewards": r["scores"]}
        rows += generated
        progress(STAGE, i, len(models) + 1, model=m)
    if picked := _best_of_n(store, inputs, prompts):
        ids = {r["prompt_id"] for r in picked}
        asked = [p for p in prompts if p["split"] == "heldOut" and p["prompt_id"] in ids]
        _score(quality, asked, picked, "score", "scores")
        rows += [r | {"reward": None, "rewards": {}} for r in picked]

    resamples, seed = params.get("bootstrap", 1000), params["seed"]
    keys = [(p["split"], p["prompt_id"]) for p in prompts]
    metrics = summarize(rows, keys, resamples, seed)
    metrics["modelRevs"] = revs
    metrics["evaluationScorers"] = "evaluation" if independent else "training"
    metrics["scorerNames"] = {"evaluation": quality.names, "training": reward.names}
    base_q, tuned_q = per_prompt(rows, "base"), per_prompt(rows, "tuned")
    scored = [k for k in keys if k in base_q and k in tuned_q]
    task_of = {(p["split"], p["prompt_id"]): p.get("task") or NO_TASK for p in prompts}
    metrics["tasks"] = _breakdown(rows, scored, task_of.__getitem__, resamples, seed)
    metrics["splits"] = _breakdown(rows, scored, lambda k: k[0], resamples, seed)
    quality_change = paired(base_q, tuned_q, scored, resamples, seed + 1)
    reward_change = paired(
        per_prompt(rows, "base", "reward"), per_prompt(rows, "tuned", "reward"), keys, resamples, seed + 2
    )
    metrics["reward"] = reward_change
    if promoted:
        vs = paired(per_prompt(rows, "promoted"), tuned_q, keys, resamples, seed + 3) if promoted["compared"] else {}
        if promoted["compared"]:
            metrics["promoted"] = summary(list(per_prompt(rows, "promoted").values()), resamples, seed)
        metrics["vsPromoted"] = promoted | vs
    if arms := _baselines(rows, keys, inputs, resamples, seed):
        metrics["baselines"] = arms
    metrics["drift"] = drift(rows, models)
    tolerance = (params.get("gate") or {}).get("flatTolerance", 0.01)
    metrics["rewardHacking"] = reward_hacking(reward_change, quality_change, tolerance, independent)
    metrics["klToBase"] = _kl(dirs, prompts, rows)
    if params.get("gate"):
        metrics["gate"] = gate_verdict(metrics, params["gate"])
    progress(STAGE, len(models) + 1, len(models) + 1)

    workdir = Path(tempfile.mkdtemp(prefix="tao-evaluate-"))
    try:
        write_jsonl(workdir / "eval.jsonl", rows)
        report = render_report(spec, metrics, rows, prompts, quality.names)
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
            metrics=_finite(metrics),
            started_at=started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
