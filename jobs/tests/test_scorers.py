"""Scorers: the documented values on hand-made cases, weighted combination, per-task selection, bad params."""

from __future__ import annotations

import pytest

from tao_jobs.contract import InvalidSpec
from tao_jobs.scorers import COMBINED, ScoringPlan


def one(type_: str, params: dict, text: str, task: str | None = None) -> tuple[float, object]:
    plan = ScoringPlan.from_params({"scorers": [{"name": "s", "type": type_, "weight": 1, "params": params}]})
    r = plan.score_group({"prompt_id": "p", "task": task}, [text])[0]
    assert r["combined"] == r["scores"]["s"]
    return r["scores"]["s"], r["details"]["s"]


@pytest.mark.parametrize(
    ("params", "text", "expected"),
    [
        ({"pattern": "[0-9]+"}, "a spider has 8 legs", 1.0),
        ({"pattern": "[0-9]+", "mode": "search"}, "eight", 0.0),
        ({"pattern": "[0-9]+", "mode": "fullmatch"}, "42", 1.0),
        ({"pattern": "[0-9]+", "mode": "fullmatch"}, "42 ", 0.0),  # whitespace is not stripped
        ({"pattern": "yes", "mode": "fullmatch", "flags": "i"}, "YES", 1.0),
        ({"pattern": "yes", "mode": "fullmatch"}, "YES", 0.0),
        ({"pattern": "a", "mode": "fraction"}, "aaab", 0.75),
        ({"pattern": "ab", "mode": "fraction"}, "ababxxxx", 0.5),
        ({"pattern": "aa", "mode": "fraction"}, "aaa", 2 / 3),  # non-overlapping
        ({"pattern": "x*", "mode": "fraction"}, "abc", 0.0),  # empty matches count 0
        ({"pattern": "a", "mode": "fraction"}, "", 0.0),  # empty text
    ],
)
def test_regex_values(params, text, expected):
    score, _ = one("regex", params, text)
    assert score == pytest.approx(expected)


def test_regex_details():
    assert one("regex", {"pattern": "b"}, "abc")[1] == {"matched": True}
    assert one("regex", {"pattern": "a", "mode": "fraction"}, "aab")[1] == {"matchedChars": 2, "length": 3}


@pytest.mark.parametrize(
    ("params", "text", "expected"),
    [
        ({"min": 10, "max": 20}, "x" * 5, 0.5),
        ({"min": 10, "max": 20}, "x" * 10, 1.0),
        ({"min": 10, "max": 20}, "x" * 15, 1.0),
        ({"min": 10, "max": 20}, "x" * 20, 1.0),
        ({"min": 10, "max": 20}, "x" * 30, 0.5),
        ({"min": 10, "max": 20}, "x" * 40, 0.0),
        ({"min": 10, "max": 20}, "x" * 100, 0.0),
        ({"min": 10, "max": 20}, "", 0.0),
        ({"max": 4, "unit": "words"}, "one two three four five six", 0.5),
        ({"min": 4, "unit": "words"}, "one two", 0.5),
        ({"min": 4, "unit": "words"}, "  one   two three four  ", 1.0),
        ({"max": 0}, "", 1.0),
        ({"max": 0}, "x", 0.0),
        ({"min": 0, "max": 3}, "", 1.0),
    ],
)
def test_length_values(params, text, expected):
    score, details = one("length", params, text)
    assert score == pytest.approx(expected)
    assert details["unit"] == params.get("unit", "chars")


@pytest.mark.parametrize(
    ("params", "text", "expected", "error"),
    [
        ({}, '{"a": 1}', 1.0, None),
        ({}, "  [1, 2]  ", 1.0, None),  # the whole text may be any JSON value
        ({}, "8", 1.0, None),
        ({}, 'Sure! ```json\n{"a": {"b": 2}}\n``` done', 1.0, None),  # first {...} block
        ({}, '{not json} then {"ok": true}', 1.0, None),  # first block that parses
        ({}, "no json here", 0.0, "no JSON value found"),
        ({}, "{broken", 0.0, "no JSON value found"),
        ({"schema": {"type": "object", "required": ["answer"]}}, '{"answer": 3}', 1.0, None),
        (
            {"schema": {"type": "object", "required": ["answer"]}},
            '{"other": 3}',
            0.0,
            "schema: $: 'answer' is",
        ),
        (
            {"schema": {"type": "object", "properties": {"n": {"type": "integer"}}}},
            'x {"n": "three"}',
            0.0,
            "schema: $['n']: 'three' is not of type 'integer'",
        ),
    ],
)
def test_json_values(params, text, expected, error):
    score, details = one("json", params, text)
    assert score == expected
    assert details["valid"] is (expected == 1.0)
    if error:
        assert details["error"].startswith(error)


def plan_params() -> dict:
    return {
        "scorers": [
            {"name": "digit", "type": "regex", "weight": 3, "params": {"pattern": "[0-9]"}},
            {"name": "short", "type": "length", "weight": 1, "params": {"max": 10}},
            {"name": "json", "type": "json", "weight": 1, "params": {}},
        ],
        "tasks": {"math": ["digit", "short"], "api": ["json"]},
    }


def test_weighted_mean_and_task_selection():
    plan = ScoringPlan.from_params(plan_params())
    texts = ["8", "eight eight eight"]  # 1 char with a digit; 17 chars, no digit
    math = plan.score_group({"prompt_id": "p", "task": "math"}, texts)
    assert set(math[0]["scores"]) == {"digit", "short"}
    assert math[0]["combined"] == pytest.approx((3 * 1.0 + 1 * 1.0) / 4)
    assert math[1]["combined"] == pytest.approx((3 * 0.0 + 1 * (1 - 7 / 10)) / 4)
    api = plan.score_group({"prompt_id": "p", "task": "api"}, ['{"a": 1}'])
    assert api[0] == {"combined": 1.0, "scores": {"json": 1.0}, "details": {"json": {"valid": True}}}
    # an unlisted task, and no task at all, use every scorer
    for task in ("other", None):
        r = plan.score_group({"prompt_id": "p", "task": task}, ["n=8"])[0]  # not JSON
        assert set(r["scores"]) == {"digit", "short", "json"}
        assert r["combined"] == pytest.approx((3 + 1 + 0) / 5)
    assert plan.score_group({"prompt_id": "p"}, []) == []


def problems_of(params: dict, path: str = "params") -> list[str]:
    with pytest.raises(InvalidSpec) as e:
        ScoringPlan.from_params(params, path)
    return e.value.problems


def test_bad_params_list_every_problem_with_its_path():
    params = {
        "scorers": [
            {"name": "a", "type": "regex", "weight": 1, "params": {"pattern": "(", "mode": "all"}},
            {"name": "b", "type": "length", "weight": 0, "params": {"min": 5, "max": 2, "unit": "lines"}},
            {"name": "a", "type": "bleu", "weight": 1, "params": {}},
            {"name": "c", "type": "json", "weight": 1, "params": {"schema": {"type": 3}, "strict": True}},
            {"name": COMBINED, "type": "length", "weight": 1, "params": {}},
        ],
        "tasks": {"t": ["a", "nope"], "u": []},
    }
    problems = problems_of(params)
    expected_prefixes = [
        "params.scorers.0.params.mode: ",
        "params.scorers.0.params.pattern: not a valid regular expression",
        "params.scorers.1.weight: must be a positive number",
        "params.scorers.1.params.unit: ",
        "params.scorers.1.params.min: must be <= max",
        "params.scorers.2.name: duplicate scorer name 'a'",
        "params.scorers.2.type: unknown scorer type 'bleu'",
        "params.scorers.3.params.strict: unknown parameter",
        "params.scorers.3.params.schema: not a valid JSON Schema",
        "params.scorers.4.name: 'combined' is reserved",
        "params.scorers.4.params.min: set min, max or both",
        "params.tasks.t.1: unknown scorer name 'nope'",
        "params.tasks.u: must be a non-empty list",
    ]
    for prefix in expected_prefixes:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
    assert len(problems) == len(expected_prefixes), problems


def test_bad_params_path_prefix_for_evaluate_and_empty_list():
    assert problems_of({"scorers": [], "tasks": {}}, "params.scoring") == [
        "params.scoring.scorers: at least one scorer is required"
    ]
    bad = {"scorers": [{"name": "r", "type": "regex", "weight": 1, "params": {"flags": "q"}}], "tasks": {}}
    assert problems_of(bad, "params.scoring") == [
        "params.scoring.scorers.0.params.flags: unknown flag 'q' (allowed: i, m, s, x)",
        "params.scoring.scorers.0.params.pattern: required, a non-empty regular expression string",
    ]
