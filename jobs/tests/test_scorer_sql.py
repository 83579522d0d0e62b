"""``sql``: SELECT-only checks, execution on a read-only copy in a worker process with a timeout, and the
self-consistency vote on result sets."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import stage_env
from tao_jobs.contract import BadInput, InvalidSpec
from tao_jobs.scorers import ScoringPlan
from tao_jobs.scorers.base import ScorerParamsError
from tao_jobs.scorers.sql import SqlScorer, check_sql, extract_sql

P = {"prompt_id": "q1", "messages": [{"role": "user", "content": "which cities?"}], "task": "sql"}
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def make_db(path: Path, cities: list[tuple[str, str, int]]) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE city (name TEXT, country TEXT, population INTEGER)")
    con.executemany("INSERT INTO city VALUES (?, ?, ?)", cities)
    con.commit()
    con.close()
    return path.as_uri()


CITIES = [("Paris", "FR", 2100), ("Lyon", "FR", 520), ("Berlin", "DE", 3600), ("Rome", "IT", 2800)]


@pytest.fixture
def db(tmp_path) -> str:
    return make_db(tmp_path / "cities.sqlite", CITIES)


@pytest.fixture
def scorer_factory():
    made = []

    def make(params: dict) -> SqlScorer:
        s = SqlScorer(params)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("text", "sql"),
    [
        ("SELECT 1", "SELECT 1"),
        ("Here you go:\n```sql\nSELECT name FROM city\n```\nDone.", "SELECT name FROM city"),
        ("```sql\nSELECT 1\n```\nbetter:\n```SQL\nSELECT 2;\n```", "SELECT 2;"),
        ("```\nSELECT 3\n```", "SELECT 3"),
        ("```python\nx = 1\n```\n```sql\nSELECT 4\n```\n```text\nnote\n```", "SELECT 4"),
        ("```sql\nSELECT 5 FROM city", "SELECT 5 FROM city"),  # cut off before the closing fence
        ("  \n", ""),
    ],
)
def test_extract_sql(text, sql):
    assert extract_sql(text) == sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT name FROM city",
        "select name from city;",
        "WITH big AS (SELECT * FROM city WHERE population > 1000) SELECT name FROM big",
        "SELECT name FROM city UNION SELECT country FROM city",
        "(SELECT 1)",
        RUNAWAY,
        "SELECT * FROM pragma_table_info('city')",
    ],
)
def test_allowed_queries(sql):
    assert check_sql(sql) is None


@pytest.mark.parametrize(
    ("sql", "status", "reason"),
    [
        ("DELETE FROM city", "disallowed", "DELETE statement"),
        ("WITH x AS (SELECT 1) DELETE FROM city", "disallowed", "DELETE statement"),
        ("INSERT INTO city SELECT * FROM city", "disallowed", "INSERT statement"),
        ("UPDATE city SET population = 0", "disallowed", "UPDATE statement"),
        ("DROP TABLE city", "disallowed", "DROP statement"),
        ("CREATE TABLE x AS SELECT 1", "disallowed", "CREATE statement"),
        ("PRAGMA writable_schema = 1", "disallowed", "PRAGMA statement"),
        ("ATTACH DATABASE 'other.db' AS o", "disallowed", "ATTACH statement"),
        ("VACUUM", "disallowed", "VACUUM statement"),
        ("SELECT * INTO copy FROM city", "disallowed", "SELECT INTO inside the query"),
        ("SELECT 1; DELETE FROM city", "disallowed", "2 statements"),
        ("SELECT 1; SELECT 2", "disallowed", "2 statements"),
        ("SELEC name FROM city", "parse_error", "Invalid expression"),
        ("SELECT name FROM city WHERE", "parse_error", "Required keyword"),
        ("", "parse_error", "no SQL found"),
        (";", "parse_error", "no SQL statement"),
    ],
)
def test_refused_queries(sql, status, reason):
    got = check_sql(sql)
    assert got is not None and got[0] == status and got[1].startswith(reason), got


def test_vote_on_result_sets(db, scorer_factory):
    scorer = scorer_factory({"database": db})
    texts = [
        "SELECT name FROM city WHERE country = 'FR'",  # {Paris, Lyon}
        "```sql\nSELECT name FROM city WHERE country = 'FR' ORDER BY name DESC\n```",  # same set, other order
        "SELECT name FROM city WHERE country = 'FR' UNION ALL SELECT 'Paris'",  # a duplicate: same set
        "SELECT name FROM city WHERE population > 2000",  # another result
        "SELECT name FROM city WHERE country = 'XX'",  # empty result: never the majority
        "SELECT name FROM town",  # runtime error
        "DELETE FROM city",  # refused
    ]
    results = scorer.score_group(P, texts)
    assert [s for s, _ in results] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    first = results[0][1]
    assert first["status"] == "ok" and first["rows"] == 2 and first["distinct"] == 2
    assert first["preview"] == [["Paris"], ["Lyon"]]
    assert first["majority"] == first["result"] and first["votes"] == 3 and first["voters"] == 4
    assert results[2][1] | {"preview": None} == first | {"rows": 3, "preview": None}
    assert results[3][1]["result"] != first["result"]
    assert results[4][1]["status"] == "ok" and results[4][1]["rows"] == 0
    assert results[5][1]["status"] == "error" and "no such table: town" in results[5][1]["error"]
    assert results[6][1]["status"] == "disallowed"
    stats = scorer.stats()
    assert stats["ok"] == 5 and stats["error"] == 1 and stats["disallowed"] == 1 and stats["executed"] == 6


def test_ties_go_to_the_earliest_result_and_integral_floats_equal_integers(db, scorer_factory):
    scorer = scorer_factory({"database": db})
    texts = ["SELECT 2", "SELECT 1", "SELECT 1.0", "SELECT 2.0"]  # {2} and {1} two votes each
    assert [s for s, _ in scorer.score_group(P, texts)] == [1.0, 0.0, 0.0, 1.0]


def test_no_non_empty_result_means_no_winner(db, scorer_factory):
    scorer = scorer_factory({"database": db})
    results = scorer.score_group(P, ["SELECT name FROM city WHERE 0", "nonsense"])
    assert [s for s, _ in results] == [0.0, 0.0]
    assert results[0][1]["majority"] is None and results[1][1]["status"] == "parse_error"


def test_without_vote_any_successful_execution_scores_one(db, scorer_factory):
    scorer = scorer_factory({"database": db, "vote": False})
    results = scorer.score_group(P, ["SELECT 1", "SELECT name FROM city WHERE 0", "SELECT * FROM nope"])
    assert [s for s, _ in results] == [1.0, 1.0, 0.0]
    assert "majority" not in results[0][1]


def test_delete_is_rejected_and_the_database_is_unchanged(tmp_path, db, scorer_factory):
    path = tmp_path / "cities.sqlite"
    before = digest(path)
    scorer = scorer_factory({"database": db})
    texts = [
        "DELETE FROM city",
        "```sql\nSELECT 1; DELETE FROM city\n```",
        "WITH gone AS (SELECT 1) DELETE FROM city",
        "ATTACH DATABASE 'file:evil.db?mode=rwc' AS evil",
    ]
    results = scorer.score_group(P, texts)
    assert [d["status"] for _, d in results] == ["disallowed"] * 4
    assert scorer.stats()["executed"] == 0  # refused before execution
    # Defence in depth: the worker itself refuses writes and ATTACH even if a statement got past sqlglot.
    copy = next(iter(scorer._copies.values()))
    for sql in ("DELETE FROM city", "UPDATE city SET population = 0", "ATTACH 'file:evil.db?mode=rwc' AS e"):
        reply = scorer._worker.run(copy, sql, 5, 100)
        assert reply["ok"] is False and "not authorized" in reply["error"], reply
    assert scorer._worker.run(copy, "SELECT count(*) FROM city", 5, 100)["preview"] == [[4]]
    assert not list(tmp_path.rglob("evil.db")) and not Path("evil.db").exists()
    assert oct(os.stat(copy).st_mode & 0o777) == "0o444"
    assert digest(path) == before
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM city").fetchone() == (4,)
    con.close()


def test_a_runaway_recursive_cte_is_killed_by_the_timeout(db, scorer_factory):
    scorer = scorer_factory({"database": db, "timeoutS": 0.5})
    scorer.score_group(P, ["SELECT 1"])  # the worker is up
    pid = scorer._worker.proc.pid
    started = time.monotonic()
    results = scorer.score_group(P, [RUNAWAY, "SELECT name FROM city WHERE country = 'IT'"])
    elapsed = time.monotonic() - started
    # killed, not run to the end (it never ends): a generous bound, so a loaded machine's slow worker restart
    # does not fail it
    assert 0.5 <= elapsed < 30
    assert results[0] == (0.0, results[0][1]) and results[0][1]["status"] == "timeout"
    assert results[0][1]["error"] == "query ran past the 0.5 s timeout (killed)"
    # The killed worker is gone (reaped), and a fresh one ran the next query.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert results[1][0] == 1.0 and results[1][1]["preview"] == [["Rome"]]
    assert scorer.stats()["timeout"] == 1 and scorer.stats()["workerStarts"] == 2


def test_too_many_rows_is_an_error(db, scorer_factory):
    scorer = scorer_factory({"database": db, "maxRows": 3})
    (score, details) = scorer.score_group(P, ["SELECT name FROM city"])[0]
    assert score == 0.0 and details["status"] == "error" and details["error"] == "more than 3 result rows"


def test_database_per_prompt_from_meta(tmp_path, scorer_factory):
    a = make_db(tmp_path / "a.sqlite", [("Oslo", "NO", 700)])
    b = make_db(tmp_path / "b.sqlite", [("Bern", "CH", 140)])
    scorer = scorer_factory({"databaseField": "db"})
    pa = P | {"prompt_id": "a", "meta": {"db": a}}
    pb = P | {"prompt_id": "b", "meta": {"db": b}}
    assert scorer.score_group(pa, ["SELECT name FROM city"])[0][1]["preview"] == [["Oslo"]]
    assert scorer.score_group(pb, ["SELECT name FROM city"])[0][1]["preview"] == [["Bern"]]
    with pytest.raises(BadInput, match=r"prompt 'c': meta.db must be the file:// or s3:// URI"):
        scorer.score_group(P | {"prompt_id": "c"}, ["SELECT 1"])
    missing = (tmp_path / "missing.sqlite").as_uri()
    with pytest.raises(BadInput, match="database file does not exist"):
        scorer.score_group(P | {"meta": {"db": missing}}, ["SELECT 1"])
    (tmp_path / "junk.sqlite").write_text("not a database, just text " * 100)
    with pytest.raises(BadInput, match="cannot read it as a SQLite database"):
        scorer.score_group(P | {"meta": {"db": (tmp_path / "junk.sqlite").as_uri()}}, ["SELECT 1"])


def test_close_stops_the_worker_and_removes_the_copy(db):
    scorer = SqlScorer({"database": db})
    scorer.score_group(P, ["SELECT 1"])
    proc, copy = scorer._worker.proc, Path(next(iter(scorer._copies.values())))
    assert proc.poll() is None and copy.exists()
    scorer.close()
    assert proc.poll() is not None and not copy.parent.exists()
    scorer.close()  # idempotent


def test_bad_params():
    with pytest.raises(ScorerParamsError) as e:
        SqlScorer({"timeoutS": 0, "dialect": "postgres", "vote": "yes", "extra": 1})
    assert e.value.problems == [
        "extra: unknown parameter (allowed: database, databaseField, dialect, maxRows, timeoutS, vote)",
        "database: set exactly one of database and databaseField",
        "timeoutS: must be a number > 0, got 0",
        "dialect: only 'sqlite' is supported (SQLite executes the queries), got 'postgres'",
        "vote: must be true or false, got 'yes'",
    ]
    with pytest.raises(ScorerParamsError, match=r"database: must be a file:// \(or file:relative\) or s3:// URI"):
        SqlScorer({"database": "/tmp/db.sqlite"})


def test_in_a_plan_with_a_length_rule(db):
    with pytest.raises(InvalidSpec, match=r"params.scorers.0.params.database: set exactly one"):
        ScoringPlan.from_params({"scorers": [{"name": "exec", "type": "sql", "params": {}}]})
    plan = ScoringPlan.from_params(
        {
            "scorers": [
                {"name": "exec", "type": "sql", "weight": 3, "params": {"database": db}},
                {"name": "short", "type": "length", "params": {"max": 40}},
            ]
        }
    )
    with plan:
        rows = plan.score_group(P, ["SELECT count(*) FROM city", "SELECT COUNT(*) FROM city", "SELECT 0"])
        assert [r["scores"]["exec"] for r in rows] == [1.0, 1.0, 0.0]
        assert [r["combined"] for r in rows] == pytest.approx([1.0, 1.0, 0.25])
        assert plan.stats()["exec"]["ok"] == 3


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_the_worker_dies_with_the_scoring_process(db):
    script = textwrap.dedent(
        f"""
        import sys
        from tao_jobs.scorers.sql import SqlScorer
        s = SqlScorer({{"database": {db!r}, "timeoutS": 60}})
        s.score_group({{"prompt_id": "p"}}, ["SELECT 1"])
        print(s._worker.proc.pid, flush=True)
        s.score_group({{"prompt_id": "p"}}, [{RUNAWAY!r}])
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=stage_env())
    worker = int(proc.stdout.readline())
    time.sleep(0.2)  # the runaway query is running
    assert _alive(worker)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)
