"""Does a label-free signal carry information on a task? Greedy accuracy vs majority-vote accuracy.

For each prompt (with its ``reference``): the model's greedy answer, and N sampled answers spread over
strategies x temperatures exactly as the generate stage spreads them (``strategies.assign``, per-sample
seeds). The samples are voted on with the project's own label-free scorers, as a round's score stage does:
``vote`` (``last-number``) for trivia, ``sql`` (execute and vote on the result set) for SQL. Then, against
the reference: is the greedy answer right, and is the majority answer right? TAO's mechanism needs the
second to beat the first: the vote (test-time compute at tuning time) finds better answers than the plain
greedy answer, and the update distils them into it.

Used by the tiny-model signal test (``jobs/tests/test_tiny_signal.py``) and the results bench
(``bench/results.py``). Correctness for SQL is execution accuracy: the answer's result set equals the gold
query's (the ``sql`` scorer's own result hash, so both sides are reduced the same way).
"""

from __future__ import annotations

from pathlib import Path

from ..engines.base import Request, open_engine
from ..scorers.sql import SqlScorer
from ..scorers.vote import VoteScorer
from ..strategies import assign, build_messages, sample_seed


def _messages(row: dict) -> list[dict]:
    return [{"role": "user", "content": row["prompt"]}]


def measure(
    model_dir: Path,
    rows: list[dict],
    *,
    database: str | None = None,
    samples: int = 8,
    strategies: tuple[str, ...] = ("plain", "cot"),
    temperatures: tuple[float, ...] = (1.0,),
    max_tokens: int = 64,
    seed: int = 0,
    vote_at: tuple[int, ...] = (),
) -> dict:
    """Per task: ``{"prompts", "greedy", "vote", "greedyRight", "voteRight"}`` (accuracies in [0, 1] and
    counts), plus per-prompt details under ``"rows"``. ``vote_at``: also the vote accuracy over the first k
    samples of each prompt for each k (``"voteAt": {k: accuracy}``; the plan spreads strategies round-robin, so
    a prefix is a smaller balanced sample), at no extra generation cost. ``rows`` are example prompt rows
    (``prompt``, ``task``: ``trivia`` or ``sql``, ``reference``); ``database``: the SQLite URI the SQL rows are
    about."""
    engine = open_engine("transformers", Path(model_dir))
    try:
        greedy_req = [Request(_messages(r), 0.0, 1.0, max_tokens, 0) for r in rows]
        plan = assign(samples, list(strategies), list(temperatures))
        sample_req = [
            Request(
                build_messages(p.strategy, _messages(r)),
                p.temperature,
                1.0,
                max_tokens,
                sample_seed(seed, 1, r["id"], p.strategy, p.index),
            )
            for r in rows
            for p in plan
        ]
        outs = engine.generate(greedy_req + sample_req)
    finally:
        engine.close()
    greedy = [c.text for c in outs[: len(rows)]]
    sampled = [c.text for c in outs[len(rows) :]]
    vote = VoteScorer({"extract": "last-number"})
    sql_vote = sql_exec = None
    if any(r["task"] == "sql" for r in rows):
        if database is None:
            raise ValueError("database: required for sql rows")
        sql_vote, sql_exec = SqlScorer({"database": database}), SqlScorer({"database": database, "vote": False})
    per_row = []
    ks = sorted({samples, *(k for k in vote_at if 0 < k <= samples)})
    try:
        for i, r in enumerate(rows):
            texts = sampled[i * samples : (i + 1) * samples]
            if r["task"] == "sql":
                # the greedy answer and the gold query, executed and reduced like the samples
                (_, g), (_, gold) = sql_exec.score_group(r, [greedy[i], r["reference"]])
                if gold.get("status") != "ok" or not gold.get("rows"):
                    raise ValueError(f"{r['id']}: the gold SQL does not return rows ({gold})")
                right = gold["result"]
                greedy_right = g.get("status") == "ok" and g.get("result") == right
                scorer = sql_vote
            else:
                right = r["reference"]
                greedy_right = vote.answer(greedy[i]) == right
                scorer = vote
            at = {}
            for k in ks:
                voted = scorer.score_group(r, texts[:k])
                at[k] = (voted[0][1].get("majority") if voted else None) == right
            per_row.append(
                {
                    "id": r["id"],
                    "task": r["task"],
                    "greedy": greedy[i],
                    "greedyRight": greedy_right,
                    "voteRight": at[samples],
                    "voteAt": at,
                }
            )
    finally:
        for s in (sql_vote, sql_exec):
            if s is not None:
                s.close()
    out: dict = {"rows": per_row}
    for task in sorted({r["task"] for r in rows}):
        mine = [p for p in per_row if p["task"] == task]
        g, v = sum(p["greedyRight"] for p in mine), sum(p["voteRight"] for p in mine)
        out[task] = {
            "voteAt": {k: sum(p["voteAt"][k] for p in mine) / len(mine) for k in ks},
            "prompts": len(mine),
            "greedyRight": g,
            "voteRight": v,
            "greedy": g / len(mine),
            "vote": v / len(mine),
        }
    return out
