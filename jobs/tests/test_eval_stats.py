"""The evaluate stage's statistics (eval_stats.py): the gate verdict on the shared cases the workflow's gate
also runs (tests/fixtures/gate/cases.json), the reward-hacking guard, paired comparisons and drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tao_jobs.eval_stats import drift, format_features, gate_verdict, paired, per_prompt, reward_hacking

GATE = json.loads((Path(__file__).resolve().parents[2] / "tests/fixtures/gate/cases.json").read_text())


@pytest.mark.parametrize("case", GATE["cases"], ids=lambda c: c["name"])
def test_gate_verdict_matches_the_shared_cases(case):
    v = gate_verdict(case["metrics"], GATE["defaults"] | case["gate"])
    assert (v["passed"], v["decidedBy"]) == (case["passed"], case["decidedBy"]), v
    assert v["statistic"] == case["statistic"] or (v["statistic"] is None and case["statistic"] is None)
    assert v["reason"] == next(c["detail"] for c in v["checks"] if c["name"] == v["decidedBy"])
    if "reason" in case:  # the same words as the workflow's gate (tests/unit/gate.test.ts)
        assert v["reason"] == case["reason"]


UP = {"change": 0.4, "ciLow": 0.3, "ciHigh": 0.5}


@pytest.mark.parametrize(
    ("reward", "quality", "independent", "flagged", "checked"),
    [
        (UP, {"change": 0.0, "ciLow": -0.1, "ciHigh": 0.1}, True, True, True),  # reward up, quality flat
        (UP, {"change": -0.2, "ciLow": -0.3, "ciHigh": -0.1}, True, True, True),  # reward up, quality down
        (UP, {"change": 0.2, "ciLow": 0.1, "ciHigh": 0.3}, True, False, True),  # both up: fine
        ({"change": 0.1, "ciLow": -0.05, "ciHigh": 0.2}, {"change": 0.0}, True, False, True),  # reward noise
        # a small hack on a bounded reward (docs/results.md, brevity): the CI touches 0 but does not go below it
        ({"change": 0.04, "ciLow": 0.0, "ciHigh": 0.11}, {"change": -0.07, "ciLow": -0.2}, True, True, True),
        ({"change": 0.005, "ciLow": 0.0, "ciHigh": 0.02}, {"change": -0.1}, True, False, True),  # reward flat
        (UP, {"change": 0.0, "ciLow": -0.1, "ciHigh": 0.1}, False, False, False),  # same scorers: not checked
        (UP, {"change": float("nan")}, True, False, False),  # nothing comparable
    ],
)
def test_reward_hacking_guard(reward, quality, independent, flagged, checked):
    r = reward_hacking(reward, quality, 0.01, independent)
    assert (r["flagged"], r["checked"]) == (flagged, checked), r
    assert r["reason"]


def test_paired_compares_only_prompts_both_models_have():
    rows = [
        {"prompt_id": "a", "model": "base", "score": 0.0},
        {"prompt_id": "a", "model": "tuned", "score": 1.0},
        {"prompt_id": "b", "model": "base", "score": 1.0},
        {"prompt_id": "b", "model": "tuned", "score": 1.0},
        {"prompt_id": "c", "model": "base", "score": 1.0},  # no tuned score: left out
        {"prompt_id": "b", "model": "tuned", "score": None, "split": "benchmark"},
    ]
    base, tuned = per_prompt(rows, "base"), per_prompt(rows, "tuned")
    d = paired(base, tuned, list(base), 200, 0)
    assert (d["n"], d["change"], d["winRate"], d["tieRate"]) == (2, 0.5, 0.5, 0.5)
    assert d["ciLow"] <= 0.5 <= d["ciHigh"]


def test_drift_reports_length_and_format_changes():
    rows = [
        {"model": "base", "text": "4", "finish_reason": "stop", "tokens": 1},
        {"model": "base", "text": "8", "finish_reason": "stop", "tokens": 1},
        {"model": "tuned", "text": '{"answer": 4}', "finish_reason": "stop", "tokens": 6},
        {"model": "tuned", "text": "eight\nlegs and more", "finish_reason": "length", "tokens": 8},
    ]
    d = drift(rows, ("base", "tuned"))
    assert d["length"] == {"base": 1.0, "tuned": 16.0} and d["tokens"] == {"base": 1.0, "tuned": 7.0}
    assert d["lengthChange"] == 15.0
    assert d["format"]["tuned"] == {"truncated": 0.5, "empty": 0.0, "multiline": 0.5, "fenced": 0.0, "json": 0.5}
    assert d["formatDrift"] == 0.5
    assert format_features("```sql\nselect 1\n```", "stop")["fenced"]
