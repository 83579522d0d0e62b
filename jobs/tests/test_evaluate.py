"""The evaluate stage: metrics agree with eval.jsonl, the report has the table, the bootstrap is sane."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from conftest import SCORING, make_spec, read_jsonl, read_manifest, run_stage, spec_output, write_jsonl
from tao_jobs.contract import BadInput
from tao_jobs.models.local import tiny_cached
from tao_jobs.stages.evaluate import bootstrap_ci, summarize

BASE, OTHER = "tiny://engine?steps=100", "tiny://engine?steps=100&seed=1"
QUESTIONS = [
    "How many legs does a spider have?",
    "How many days are in a week?",
    "How many sides does a triangle have?",
    "How many keys does a piano have?",
    "How many eggs are in a dozen?",
]


def _heldout(tmp_path: Path) -> None:
    rows = [{"prompt_id": f"h{i}", "messages": [{"role": "user", "content": q}]} for i, q in enumerate(QUESTIONS)]
    write_jsonl(tmp_path / "in" / "heldout.jsonl", rows)


def test_evaluate_metrics_agree_with_eval_jsonl(tmp_path):
    _heldout(tmp_path)
    base, tuned = (tiny_cached(u).as_uri() + "/" for u in (BASE, OTHER))
    params = {"samplesPerPrompt": 2, "temperature": 0.8, "maxTokens": 20, "seed": 5, "bootstrap": 200}
    spec = make_spec("evaluate", tmp_path, inputs={"base": base, "tuned": tuned}, params=params)
    rc, _, stderr, _ = run_stage("evaluate", spec)
    assert rc == 0, stderr
    out = spec_output(spec)
    manifest = read_manifest(out)
    assert manifest["outputs"] == {"report": "report.md", "results": "eval.jsonl"}
    rows = read_jsonl(out + "eval.jsonl")
    assert len(rows) == 5 * 2 * 2
    m = manifest["metrics"]
    per_prompt = {}
    for model in ("base", "tuned"):
        mine = [r for r in rows if r["model"] == model]
        assert {r["prompt_id"] for r in mine} == {f"h{i}" for i in range(5)}
        per_prompt[model] = [statistics.fmean(r["score"] for r in mine if r["prompt_id"] == f"h{i}") for i in range(5)]
        assert m[model]["mean"] == pytest.approx(statistics.fmean(per_prompt[model]))
        assert m[model]["meanLength"] == pytest.approx(statistics.fmean(len(r["text"]) for r in mine))
        assert m[model]["n"] == 5 and m[model]["ciLow"] <= m[model]["mean"] <= m[model]["ciHigh"]
    assert m["improvement"] == pytest.approx(m["tuned"]["mean"] - m["base"]["mean"])
    diffs = [t - b for b, t in zip(per_prompt["base"], per_prompt["tuned"], strict=True)]
    assert m["winRate"] == pytest.approx(sum(d > 1e-9 for d in diffs) / 5)
    assert m["tieRate"] == pytest.approx(sum(abs(d) <= 1e-9 for d in diffs) / 5)
    # Paired seeds: base and tuned sample i of a prompt use the same seed.
    seeds = {(r["prompt_id"], r["sample_id"], r["model"]): r["seed"] for r in rows}
    assert all(seeds[p, s, "base"] == seeds[p, s, "tuned"] for p, s, _ in seeds)
    names = {s["name"] for s in SCORING["scorers"]}
    assert all(set(r["scores"]) == names for r in rows)
    report = Path(out.removeprefix("file://"), "report.md").read_text()
    assert "| base |" in report and "| tuned |" in report and "Improvement" in report


def test_same_model_greedy_is_all_ties(tmp_path):
    from tao_jobs.stages import evaluate
    from tao_jobs.store import Store

    _heldout(tmp_path)
    model = tiny_cached(BASE).as_uri() + "/"
    uri = make_spec("evaluate", tmp_path, inputs={"base": model, "tuned": model}, params={"maxTokens": 20})
    m = evaluate.run(json.loads(Path(uri.removeprefix("file://")).read_text()), Store())["metrics"]
    assert m["improvement"] == 0 and m["tieRate"] == 1 and m["winRate"] == 0
    assert m["base"] | {"n": 0} == m["tuned"] | {"n": 0}


def test_bootstrap_ci_and_summary():
    assert bootstrap_ci([0.5] * 10, 200, 0) == (0.5, 0.5)
    lo, hi = bootstrap_ci([0.0, 1.0] * 20, 1000, 0)
    assert 0.3 < lo < 0.5 < hi < 0.7
    rows = [
        {"prompt_id": p, "model": m, "score": s, "text": "x" * n}
        for p, (b, t) in {"a": (0.0, 1.0), "b": (0.5, 0.5)}.items()
        for m, s, n in (("base", b, 4), ("tuned", t, 2))
    ]
    m = summarize(rows, ["a", "b"], 100, 0)
    assert (m["base"]["mean"], m["tuned"]["mean"], m["improvement"]) == (0.25, 0.75, 0.5)
    assert (m["winRate"], m["tieRate"], m["base"]["meanLength"]) == (0.5, 0.5, 4)


def test_summary_leaves_out_unscored_samples_and_prompts():
    # prompt "c" has no score for the tuned model (every scorer abstained): it is left out of the paired
    # comparison instead of counting as 0; "a"'s unscored base sample is left out of "a"'s mean.
    rows = [
        {"prompt_id": "a", "model": "base", "score": 0.2, "text": "x"},
        {"prompt_id": "a", "model": "base", "score": None, "text": "x"},
        {"prompt_id": "a", "model": "tuned", "score": 0.6, "text": "x"},
        {"prompt_id": "c", "model": "base", "score": 0.9, "text": "x"},
        {"prompt_id": "c", "model": "tuned", "score": None, "text": "x"},
    ]
    m = summarize(rows, ["a", "c"], 100, 0)
    assert (m["base"]["n"], m["base"]["mean"], m["tuned"]["mean"], m["unscoredSamples"]) == (1, 0.2, 0.6, 2)
    with pytest.raises(BadInput, match="no evaluation prompt has a score for every model"):
        summarize([r for r in rows if r["prompt_id"] == "c"], ["c"], 100, 0)
