"""The demo tasks are ones where being right is not the same as being greedy: on the real tiny model
(``tiny://demo``, the demo's base model), the plain greedy answer is wrong on a good fraction of the example
prompts, and a majority vote over sampled answers (strategies plain + cot, the project's own ``vote`` and
``sql`` scorers: no labels) is right measurably more often. If the corpus, the model or the scorers lose that
signal, TAO has nothing to distil and this test fails."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tao_jobs.models import tiny_corpus
from tao_jobs.models.local import tiny_cached
from tao_jobs.models.tiny_signal import measure

ROOT = Path(__file__).resolve().parents[2]
DB = ROOT / "examples" / "sql" / "shop.sqlite"
MODEL = "tiny://demo"
MARGIN = 0.15  # vote accuracy must beat greedy accuracy by this much, per task, on the fixed seed


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_example_prompt_files_are_the_corpus_prompts():
    assert _rows(ROOT / "examples" / "demo" / "prompts.jsonl") == tiny_corpus.demo_prompts("trivia")
    assert _rows(ROOT / "examples" / "sql" / "prompts.jsonl") == tiny_corpus.demo_prompts("sql")
    both = tiny_corpus.demo_prompts("trivia")[::2] + tiny_corpus.demo_prompts("sql")[::2]
    assert _rows(ROOT / "examples" / "multitask" / "prompts.jsonl") == both


def test_shipped_database_is_built_from_schema_sql(tmp_path):
    built = sqlite3.connect(tmp_path / "db.sqlite")
    built.executescript((ROOT / "examples" / "sql" / "schema.sql").read_text())
    shipped = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    q = "SELECT * FROM employees ORDER BY id"
    assert shipped.execute(q).fetchall() == built.execute(q).fetchall()


def test_every_sql_item_separates_gold_misconception_and_noise():
    """The gold query returns rows; the misconception's result differs from it (else the greedy answer would
    be right by accident), and so does the same query on any other slot value (noise is wrong)."""
    con = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    result = lambda sql: frozenset(con.execute(sql).fetchall())  # noqa: E731
    for t, v in tiny_corpus.sql_items():
        _, slot, correct, wrong = tiny_corpus.SQL_TASKS[t]
        gold = result(tiny_corpus.gold_sql(t, v))
        assert gold, (t, v)
        assert all(result(c.format(v=v)) == gold for c in correct), (t, v)  # equivalent forms
        assert all(result(tiny_corpus._lower_keywords(c.format(v=v))) == gold for c in correct)
        assert result(wrong.format(v=v)) != gold, (t, v)
        others = tiny_corpus.DEPTS if slot == "dept" else tiny_corpus.CITIES
        assert all(result(correct[0].format(v=o)) != gold for o in others if o != v), (t, v)


def test_half_of_the_items_carry_a_misconception():
    trivia = [tiny_corpus.has_misconception("trivia", q) for q, _, _ in tiny_corpus.FACTS]
    sql = [tiny_corpus.has_misconception("sql", f"{t}:{v}") for t, v in tiny_corpus.sql_items()]
    assert sum(trivia) == len(trivia) // 2 and abs(sum(sql) - len(sql) / 2) <= 1


@pytest.fixture(scope="module")
def signal():
    rows = tiny_corpus.demo_prompts("trivia")[::4] + tiny_corpus.demo_prompts("sql")[::3]
    return measure(tiny_cached(MODEL), rows, database=DB.as_uri(), samples=8, seed=0)


@pytest.mark.parametrize("task", ["trivia", "sql"])
def test_votes_over_samples_beat_the_greedy_answer(signal, task):
    m = signal[task]
    assert m["prompts"] >= 27
    assert m["greedy"] <= 0.75, m  # the base model's greedy answer is wrong on a good fraction
    assert m["vote"] >= m["greedy"] + MARGIN, m  # the label-free signal carries real information
