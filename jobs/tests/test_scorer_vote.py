"""``vote``: majority vote on extracted answers, and a ScoringPlan combining it with a rule scorer per task."""

from __future__ import annotations

import pytest

from tao_jobs.contract import InvalidSpec
from tao_jobs.scorers import ScoringPlan
from tao_jobs.scorers.base import ScorerParamsError
from tao_jobs.scorers.vote import VoteScorer, canonical_number, last_boxed, last_number

P = {"prompt_id": "p", "messages": [{"role": "user", "content": "q"}], "task": None}


def scores(params: dict, texts: list[str]) -> list[float]:
    return [s for s, _ in VoteScorer(params).score_group(P, texts)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("1,000 apples", "1000"),
        ("it costs 1000.0 dollars", "1000"),
        ("3.50", "3.5"),
        ("first 3 then -7", "-7"),
        ("+4", "4"),
        ("-0", "0"),
        (".5 of it", "0.5"),
        ("half is 1/2", "2"),
        ("x2 and abc123", None),
        ("no digits here", None),
        ("2024-01-05", "5"),
    ],
)
def test_last_number(text, expected):
    assert last_number(text) == expected


def test_canonical_number():
    assert canonical_number("12,345,678.900") == "12345678.9"
    assert canonical_number("100") == "100"  # not 1E+2
    assert canonical_number("not") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{7}", "7"),
        (r"\boxed{1} then \boxed{ \frac{1}{2} }", r"\frac{1}{2}"),
        (r"\boxed{3} and an unclosed \boxed{4", "3"),
        ("no box", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_majority_scores_one_for_the_mode_and_zero_otherwise():
    texts = ["it is 4", "answer: 4.0", "I think 5", "no idea", "4"]
    results = VoteScorer({}).score_group(P, texts)
    assert [s for s, _ in results] == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert results[2][1] == {"answer": "5", "majority": "4", "votes": 3, "voters": 4, "tie": False}
    assert results[3][1]["answer"] is None  # no answer: scores 0, does not vote


def test_tie_goes_to_the_answer_seen_first():
    # 7 and 9 both have two votes; 9 appears first, so 9 wins.
    results = VoteScorer({}).score_group(P, ["9", "7", "7", "9", "8"])
    assert [s for s, _ in results] == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert results[0][1]["tie"] is True and results[0][1]["majority"] == "9"
    # Same multiset, other order: the winner follows the order (deterministic, documented).
    assert scores({}, ["7", "9", "9", "7", "8"]) == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_no_answers_at_all_scores_zero_everywhere():
    results = VoteScorer({}).score_group(P, ["none", "nothing"])
    assert [s for s, _ in results] == [0.0, 0.0]
    assert results[0][1]["majority"] is None and results[0][1]["voters"] == 0


def test_single_sample_is_its_own_majority():
    assert scores({}, ["5"]) == [1.0]
    assert VoteScorer({}).score_group(P, []) == []


def test_boxed_with_lower_strip():
    texts = [r"\boxed{Paris}", r"\boxed{ paris }", r"\boxed{London}", r"\boxed{PARIS  }"]
    assert scores({"extract": "boxed", "normalize": "lower-strip"}, texts) == [1.0, 1.0, 0.0, 1.0]
    # Without normalization the three spellings differ: "Paris" is first among the 1-vote ties.
    assert scores({"extract": "boxed"}, texts) == [1.0, 0.0, 0.0, 0.0]


def test_regex_uses_the_last_match_and_its_first_group():
    params = {"extract": "regex", "pattern": r"answer:\s*(\w+)", "flags": "i", "normalize": "lower-strip"}
    texts = ["Answer: yes. Wait, ANSWER: no", "answer: no", "answer: yes", "nothing"]
    results = VoteScorer(params).score_group(P, texts)
    assert [d["answer"] for _, d in results] == ["no", "no", "yes", None]
    assert [s for s, _ in results] == [1.0, 1.0, 0.0, 0.0]
    # Without groups the whole match is the answer.
    assert scores({"extract": "regex", "pattern": r"[A-D]\b"}, ["B", "so B", "C"]) == [1.0, 1.0, 0.0]


def test_bad_params():
    with pytest.raises(ScorerParamsError) as e:
        VoteScorer({"extract": "first-word", "normalize": "upper", "k": 1})
    assert e.value.problems == [
        "k: unknown parameter (allowed: extract, flags, normalize, pattern)",
        "extract: must be one of 'last-number', 'boxed', 'regex', got 'first-word'",
        "normalize: must be one of 'none', 'lower-strip', got 'upper'",
    ]
    with pytest.raises(ScorerParamsError, match="pattern: required with extract 'regex'"):
        VoteScorer({"extract": "regex"})
    with pytest.raises(ScorerParamsError, match=r"pattern: not a valid regular expression"):
        VoteScorer({"extract": "regex", "pattern": "("})
    with pytest.raises(ScorerParamsError, match="pattern: only allowed with extract 'regex'"):
        VoteScorer({"pattern": "x"})


def test_plan_combines_vote_with_a_rule_scorer_per_task():
    plan = ScoringPlan.from_params(
        {
            "scorers": [
                {"name": "maj", "type": "vote", "weight": 3, "params": {"extract": "last-number"}},
                {"name": "short", "type": "length", "weight": 1, "params": {"max": 10}},
                {"name": "digit", "type": "regex", "weight": 1, "params": {"pattern": "[0-9]"}},
            ],
            "tasks": {"math": ["maj", "short"], "chat": ["digit"]},
        }
    )
    texts = ["x = 4", "it is 4 for sure!!", "5"]  # lengths 5, 18, 1
    math = plan.score_group({"prompt_id": "p", "task": "math"}, texts)
    assert [r["scores"] for r in math] == [
        {"maj": 1.0, "short": 1.0},
        {"maj": 1.0, "short": pytest.approx(1 - 8 / 10)},
        {"maj": 0.0, "short": 1.0},
    ]
    assert [r["combined"] for r in math] == pytest.approx([1.0, (3 * 1 + 0.2) / 4, 0.25])
    assert math[2]["details"]["maj"] == {"answer": "5", "majority": "4", "votes": 2, "voters": 3, "tie": False}
    chat = plan.score_group({"prompt_id": "p", "task": "chat"}, texts)
    assert [r["scores"] for r in chat] == [{"digit": 1.0}] * 3
    # An unlisted task uses every scorer.
    other = plan.score_group({"prompt_id": "p", "task": None}, texts)
    assert set(other[0]["scores"]) == {"maj", "short", "digit"}
    assert other[1]["combined"] == pytest.approx((3 * 1 + 0.2 + 1) / 5)


def test_plan_reports_vote_params_with_their_path():
    with pytest.raises(InvalidSpec) as e:
        ScoringPlan.from_params({"scorers": [{"name": "m", "type": "vote", "params": {"extract": "regex"}}]})
    assert e.value.problems == [
        "params.scorers.0.params.pattern: required with extract 'regex', a non-empty regular expression"
    ]
