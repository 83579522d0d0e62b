"""Reference scorers (evaluation only): exact-match with vote's extractors and normalisations, numeric-match
with tolerances, contains with whole words, sql-execution-match on gold SQL (read-only execution as the sql
scorer), and the python verifier given the reference. Prompts without a reference are abstained on."""

from __future__ import annotations

import sqlite3
import sys
import textwrap

import pytest

from tao_jobs.contract import BadInput, InvalidSpec
from tao_jobs.scorers import ScoringPlan
from tao_jobs.scorers.python import PythonScorer
from tao_jobs.scorers.reference import ContainsScorer, ExactMatchScorer, NumericMatchScorer
from tao_jobs.scorers.sql_match import SqlExecutionMatchScorer


def prompt(reference=None, **extra) -> dict:
    p = {"prompt_id": "p1", "messages": [{"role": "user", "content": "q"}], "task": None, **extra}
    if reference is not None:
        p["reference"] = reference
    return p


def scores(scorer, reference, texts):
    return [s for s, _ in scorer.score_group(prompt(reference), texts)]


def test_exact_match_full_text_lower_strip_by_default():
    s = ExactMatchScorer({})
    assert scores(s, "Eight Legs", ["  eight   legs ", "eight legs.", "Eight Legs"]) == [1.0, 0.0, 1.0]
    assert scores(ExactMatchScorer({"normalize": "none"}), "Eight", ["eight", "Eight"]) == [0.0, 1.0]


def test_exact_match_with_vote_extractors_compares_numbers_by_value():
    s = ExactMatchScorer({"extract": "last-number"})
    assert scores(s, "1,000", ["it is 1000", "about 1000.0 of them", "999", "no number"]) == [1.0, 1.0, 0.0, 0.0]
    assert scores(s, 8, ["eight? no, 8"]) == [1.0]
    boxed = ExactMatchScorer({"extract": "boxed"})
    assert scores(boxed, "x+1", ["so \\boxed{X+1}", "\\boxed{x}"]) == [1.0, 0.0]
    rx = ExactMatchScorer({"extract": "regex", "pattern": r"answer: (\w+)", "flags": "i"})
    assert scores(rx, "Paris", ["ANSWER: paris", "paris"]) == [1.0, 0.0]


def test_several_references_any_one_counts():
    s = ExactMatchScorer({"extract": "last-number"})
    _, details = s.score_group(prompt(["4", "four"]), ["4"])[0]
    assert details == {"answer": "4", "reference": "4"}
    assert scores(ContainsScorer({}), ["four", "4"], ["it has 4 wheels"]) == [1.0]


def test_no_reference_abstains():
    for s in (ExactMatchScorer({}), NumericMatchScorer({}), ContainsScorer({})):
        assert s.score_group(prompt(), ["x", "y"]) == [(None, {"error": "no reference"})] * 2


def test_numeric_match_tolerances():
    s = NumericMatchScorer({"tolerance": 0.5})
    assert scores(s, 10, ["10.4", "about 10.6", "-10", "none"]) == [1.0, 0.0, 0.0, 0.0]
    rel = NumericMatchScorer({"relativeTolerance": 0.01})
    assert scores(rel, "1,000", ["1009", "1011"]) == [1.0, 0.0]
    _, d = rel.score_group(prompt(1000), ["1005"])[0]
    assert d == {"answer": 1005.0, "reference": 1000.0, "error": 5.0}
    with pytest.raises(BadInput, match="'p1': its reference is not a number"):
        s.score_group(prompt("eight"), ["8"])


def test_contains_whole_words_by_default():
    s = ContainsScorer({})
    assert scores(s, "8", ["it has 8 legs", "it has 18 legs", "8."]) == [1.0, 0.0, 1.0]
    assert scores(ContainsScorer({"wholeWord": False}), "8", ["18"]) == [1.0]
    assert scores(s, "New York", ["i live in new  york city"]) == [1.0]


@pytest.fixture
def shop(tmp_path) -> str:
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE item (name TEXT, price REAL, qty INTEGER)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?)", [("pen", 1.5, 10), ("ink", 4.0, 0), ("pad", 3.0, 5)])
    con.commit()
    con.close()
    return path.as_uri()


def test_sql_execution_match_compares_result_sets_with_the_gold_query(shop):
    s = SqlExecutionMatchScorer({"database": shop})
    try:
        gold = "SELECT name FROM item WHERE qty > 0 ORDER BY name"
        texts = [
            "```sql\nSELECT name FROM item WHERE qty >= 1\n```",  # same set, other order
            "SELECT name FROM item",  # a different set
            "DELETE FROM item",  # refused before execution
            "SELECT nope FROM item",  # an error
        ]
        out = s.score_group(prompt(gold), texts)
        assert [v for v, _ in out] == [1.0, 0.0, 0.0, 0.0]
        assert [d["status"] for _, d in out] == ["ok", "ok", "disallowed", "error"]
        assert out[0][1]["match"] and out[0][1]["gold"] == out[0][1]["result"]
        # empty equals empty (a question whose right answer is no rows)
        empty = s.score_group(
            prompt("SELECT name FROM item WHERE price > 100"), ["SELECT name FROM item WHERE qty < 0"]
        )
        assert empty[0][0] == 1.0
        with pytest.raises(BadInput, match="'p1': the gold SQL in 'reference' does not run"):
            s.score_group(prompt("SELECT missing FROM item"), ["SELECT 1"])
        assert s.score_group(prompt(), ["SELECT 1"]) == [(None, {"error": "no reference"})]
        assert s.stats()["goldQueries"] == 2  # distinct gold queries that ran
        con = sqlite3.connect(shop.removeprefix("file://"))
        assert con.execute("SELECT count(*) FROM item").fetchone() == (3,)  # the DELETE never ran
        con.close()
    finally:
        s.close()


def test_python_verifier_gets_the_reference(tmp_path, monkeypatch):
    (tmp_path / "ref_verifiers.py").write_text(
        textwrap.dedent(
            """
            def exact(prompt, text, reference, strip=True):
                return float((text.strip() if strip else text) == reference), {"ref": reference}

            def no_reference(prompt, text):
                return 1.0
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("ref_verifiers", None)
    s = PythonScorer({"module": "ref_verifiers:exact", "reference": True})
    assert s.score_group(prompt("42"), [" 42 ", "41"]) == [(1.0, {"ref": "42"}), (0.0, {"ref": "42"})]
    assert s.score_group(prompt(), ["42"]) == [(None, {"error": "no reference"})]
    with pytest.raises(
        InvalidSpec, match=r"params\.scorers\.0\.params\.args: .* does not accept \(prompt, text, reference"
    ):
        ScoringPlan.from_params(
            {
                "scorers": [
                    {
                        "name": "p",
                        "type": "python",
                        "params": {"module": "ref_verifiers:no_reference", "reference": True},
                    }
                ]
            }
        )


def test_reference_scorers_combine_in_a_plan_and_abstain_per_prompt():
    plan = ScoringPlan.from_params(
        {
            "scorers": [
                {"name": "exact", "type": "exact-match", "weight": 1, "params": {}},
                {"name": "len", "type": "length", "weight": 1, "params": {"max": 5}},
            ]
        }
    )
    with_ref = plan.score_group(prompt("four"), ["four"])[0]
    assert with_ref["combined"] == 1.0 and with_ref["scores"] == {"exact": 1.0, "len": 1.0}
    without = plan.score_group(prompt(), ["four"])[0]
    assert without["abstained"] == ["exact"] and without["combined"] == 1.0
