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


# --- independent evaluation (issue 10) ---------------------------------------------------------------------

GATE = {"rule": "ciLower", "minImprovement": 0, "maxTaskRegression": 0.05, "rewardHacking": "refuse"}
GATE |= {"flatTolerance": 0.01, "promote": True}
OWN = {"reuseTrainingScorers": False, "scorers": [{"name": "exact", "type": "exact-match", "weight": 1,
       "params": {"extract": "last-number"}}], "tasks": {}}  # fmt: skip


def _with_references(tmp_path: Path) -> None:
    answers = ["8", "7", "3", "88", "12"]
    rows = [
        {"prompt_id": f"h{i}", "messages": [{"role": "user", "content": q}], "task": "trivia" if i % 2 else "math",
         "reference": a}
        for i, (q, a) in enumerate(zip(QUESTIONS, answers, strict=True))
    ]  # fmt: skip
    write_jsonl(tmp_path / "in" / "heldout.jsonl", rows)
    bench = [{"prompt_id": "h0", "messages": [{"role": "user", "content": "How many wheels does a car have?"}],
              "task": "math", "reference": ["4", "four"]}]  # fmt: skip
    write_jsonl(tmp_path / "in" / "benchmark.jsonl", bench)


def _run(tmp_path: Path, inputs: dict, params: dict) -> tuple[dict, str]:
    from tao_jobs.stages import evaluate
    from tao_jobs.store import Store

    uri = make_spec("evaluate", tmp_path, inputs=inputs, params=params)
    spec = json.loads(Path(uri.removeprefix("file://")).read_text())
    return evaluate.run(spec, Store())["metrics"], spec["output"]


def test_independent_evaluation_compares_base_candidate_and_promoted(tmp_path):
    _with_references(tmp_path)
    base, tuned, promoted = (tiny_cached(u).as_uri() + "/" for u in (BASE, OTHER, BASE + "&seed=2"))
    inputs = {"base": base, "tuned": tuned, "promoted": promoted, "benchmark": "in/benchmark.jsonl"}
    m, out = _run(tmp_path, inputs, {"maxTokens": 12, "evaluation": OWN, "gate": GATE, "bootstrap": 200})
    rows = read_jsonl(out + "eval.jsonl")
    assert {r["model"] for r in rows} == {"base", "tuned", "promoted"}
    assert {(r["split"], r["prompt_id"]) for r in rows if r["model"] == "base"} == {
        *(("heldOut", f"h{i}") for i in range(5)),
        ("benchmark", "h0"),  # the same id in both splits stays two prompts
    }
    assert all(set(r["scores"]) == {"exact"} and set(r["rewards"]) == {"has_digit", "short"} for r in rows)
    assert m["evaluationScorers"] == "evaluation" and m["scorerNames"]["training"] == ["has_digit", "short"]
    assert (
        m["base"]["n"] == 6 and set(m["splits"]) == {"heldOut", "benchmark"} and set(m["tasks"]) == {"trivia", "math"}
    )
    assert m["splits"]["benchmark"]["n"] == 1 and m["tasks"]["math"]["n"] == 4
    assert m["reward"]["n"] == 6 and m["reward"]["ciLow"] <= m["reward"]["change"] <= m["reward"]["ciHigh"]
    assert m["vsPromoted"]["compared"] and m["vsPromoted"]["n"] == 6 and m["promoted"]["n"] == 6
    assert m["klToBase"] is not None and m["klToBase"] > 0  # different weights: the candidate drifted
    assert set(m["drift"]["length"]) == {"base", "tuned", "promoted"} and 0 <= m["drift"]["formatDrift"] <= 1
    assert m["rewardHacking"]["checked"] is True and isinstance(m["rewardHacking"]["flagged"], bool)
    assert m["gate"]["rule"] == "ciLower" and m["gate"]["checks"][0]["name"] == "rule"
    assert [c["name"] for c in m["gate"]["checks"]][:3] == ["rule", "promoted", "tasks"]
    report = Path(out.removeprefix("file://"), "report.md").read_text()
    parts = ["## Gate", "Judged by the evaluation's own scorers (exact)", "| training reward (has_digit, short) |"]
    parts += ["## Per task", "## Held-out and benchmark", "## The promoted model", "## Drift", "KL(tuned ‖ base)"]
    for part in parts:
        assert part in report, part


def test_promoted_model_equal_to_base_is_not_generated_again(tmp_path):
    _with_references(tmp_path)
    base, tuned = (tiny_cached(u).as_uri() + "/" for u in (BASE, OTHER))
    m, out = _run(tmp_path, {"base": base, "tuned": tuned, "promoted": base}, {"evaluation": OWN, "gate": GATE})
    assert m["vsPromoted"] | {"uri": None, "rev": None} == {
        "uri": None,
        "rev": None,
        "sameAs": "base",
        "compared": False,
    }
    assert {r["model"] for r in read_jsonl(out + "eval.jsonl")} == {"base", "tuned"}
    assert [c["name"] for c in m["gate"]["checks"]][:2] == ["rule", "tasks"]  # no "promoted" check
    assert "promoted" not in [c["name"] for c in m["gate"]["checks"]]


def test_reusing_the_training_scorers_is_reported_and_not_checked_for_hacking(tmp_path):
    _with_references(tmp_path)
    base, tuned = (tiny_cached(u).as_uri() + "/" for u in (BASE, OTHER))
    m, out = _run(tmp_path, {"base": base, "tuned": tuned}, {"evaluation": {"reuseTrainingScorers": True}})
    assert m["evaluationScorers"] == "training" and m["reward"]["change"] == pytest.approx(m["improvement"])
    assert m["rewardHacking"]["checked"] is False and "gate" not in m
    assert "**not** independent" in Path(out.removeprefix("file://"), "report.md").read_text()


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"scoring": {"scorers": [{"name": "x", "type": "exact-match", "weight": 1, "params": {}}], "tasks": {}}},
         "params.scoring.scorers.0.type: 'exact-match' compares with references"),
        ({"evaluation": {"reuseTrainingScorers": True, "scorers": OWN["scorers"]}}, "params.evaluation: set either"),
        ({"evaluation": {"reuseTrainingScorers": False}}, "params.evaluation: set either"),
    ],
)  # fmt: skip
def test_evaluation_scorer_choice_problems_exit_64(tmp_path, params, problem):
    _with_references(tmp_path)
    spec = make_spec("evaluate", tmp_path, params=params)
    rc, _, stderr, reason = run_stage("evaluate", spec)
    assert rc == 64, stderr
    assert problem in reason
