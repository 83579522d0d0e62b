"""The ``judge`` and ``judge-with-reference`` scorers against a real OpenAI-compatible server:
``transformers serve`` running the tiny judge model (``tiny://judge``, built in code, no download), which
was pre-trained on the judge scorer's own request formats to rate trivia answers (9 when the number is
right, 2 when wrong) and, on its first reply to a group of 5 or more, to leave the last score out. At its
size it learnt the formats and the count behaviour, not the facts (its verdicts agree with the truth about
half of the time, measured by bench/judge_throughput.py), so these tests assert the protocol, not the
verdicts' quality.

No stand-in: every request goes through HTTP to the server's real chat completions handler, chat template
and generation. The server does not support ``response_format``, so the scorer runs with
``responseFormat: "none"`` (the instructions still ask for JSON), as it would with llama.cpp or TGI.
"""

from __future__ import annotations

import random

import pytest

from openai_server import transformers_serve
from tao_jobs.models import tiny_corpus
from tao_jobs.models.local import tiny_cached
from tao_jobs.scorers import ScoringPlan
from tao_jobs.scorers.judge import JudgeScorer

JUDGE_MODEL = "tiny://judge?steps=1200"


@pytest.fixture(scope="module")
def server():
    with transformers_serve(tiny_cached(JUDGE_MODEL)) as (endpoint, model):
        yield endpoint, model


def trivia_groups(n_prompts: int, n_samples: int, seed: int = 0) -> list[tuple[dict, list[str], list[bool]]]:
    """(prompt, answers, which answers are right): half right, half wrong, shuffled."""
    rng = random.Random(seed)
    out = []
    for i in range(n_prompts):
        q, template, n = tiny_corpus.FACTS[(i * 7) % len(tiny_corpus.FACTS)]
        wrong = tiny_corpus.misconception_number(n)
        rights = [k % 2 == 0 for k in range(n_samples)]
        rng.shuffle(rights)
        texts = [template.format(n=n if r else wrong).capitalize() for r in rights]
        prompt = {"prompt_id": f"p{i}", "messages": [{"role": "user", "content": q.capitalize()}], "reference": str(n)}
        out.append((prompt, texts, rights))
    return out


def scorer(endpoint: str, model: str, **params) -> JudgeScorer:
    return JudgeScorer({"endpoint": endpoint, "model": model, "responseFormat": "none", "maxTokens": 48} | params)


def test_pointwise_verdicts_from_a_real_server_rank_right_answers_first(server):
    endpoint, model = server
    groups = trivia_groups(6, 4)
    judge = scorer(endpoint, model, concurrency=8)
    results = judge.score_groups([(p, t) for p, t, _ in groups])
    stats = judge.stats()
    assert stats["requests"] == 24 and stats["verdicts"] + stats["unparseable"] == 24
    assert stats["verdicts"] >= 20, stats  # the tiny judge answers in the verdict format
    # Every verdict is one the tiny judge was trained to give (9 or 2 on its 1-10 scale): real model output,
    # parsed. (Whether it is *right* is not asserted: at this size the tiny judge learnt the format, not the
    # facts; docs/judges.md gives its measured agreement.)
    scores = {s for res in results for s, _ in res if s is not None}
    assert scores <= {(9 - 1) / 9, (2 - 1) / 9}, scores
    # up to `concurrency` requests were in flight across the 6 prompts, not 4 (one prompt's samples)
    assert stats["peakInFlight"] > 4, stats


def test_judge_with_reference_through_the_plan(server):
    endpoint, model = server
    groups = trivia_groups(4, 2, seed=1)
    params = {"endpoint": endpoint, "model": model, "responseFormat": "none", "maxTokens": 48}
    plan = ScoringPlan.from_params({"scorers": [{"name": "ref", "type": "judge-with-reference", "params": params}]})
    with plan:
        rows = plan.score_groups([(p, t) for p, t, _ in groups])
        scores = [row["scores"].get("ref") for g in rows for row in g]
        assert all(s is not None for s in scores), rows  # 8 requests, 8 parsed verdicts
        assert plan.stats()["ref"]["requests"] == 8
        # no reference: abstained on, nothing sent
        before = plan.stats()["ref"]["requests"]
        assert plan.score_group(groups[0][0] | {"reference": None}, ["x"])[0]["combined"] is None
        assert plan.stats()["ref"]["requests"] == before


def test_group_mode_retries_a_reply_with_the_wrong_count(server):
    endpoint, model = server
    judge = scorer(endpoint, model, mode="group", maxTokens=64, concurrency=4)
    small = trivia_groups(2, 3, seed=2)  # 3 samples: the tiny judge counts right on its first reply
    big = trivia_groups(2, 6, seed=3)  # 6 samples: its first reply leaves one score out
    results = judge.score_groups([(p, t) for p, t, _ in small + big])
    stats = judge.stats()
    assert stats["wrongCount"] >= 2 and stats["countRetries"] >= 2, stats
    for (_, texts, _), res in zip(small + big, results, strict=True):
        assert len(res) == len(texts) and all(s is not None for s, _ in res), res  # a full verdict in the end
        # 3 samples: right the first time; 6 samples: the first reply had 5 scores, the correction 6
        assert {d["attempts"] for _, d in res} == ({1} if len(texts) < 5 else {2}), res


def test_the_whole_shard_keeps_concurrency_requests_in_flight(server):
    """8 prompts of 4 samples with ``concurrency: 8``: the real server gets 8 requests at once, across prompts,
    and exactly one request per sample (no hidden retries). Throughput against the server's own (a timing, so
    not asserted in a test) is measured by bench/judge_throughput.py and reported in docs/judges.md."""
    endpoint, model = server
    groups = trivia_groups(8, 4, seed=4)
    judge = scorer(endpoint, model, concurrency=8)
    results = judge.score_groups([(p, t) for p, t, _ in groups])
    stats = judge.stats()
    assert [len(r) for r in results] == [4] * 8
    assert stats["requests"] == 32, stats
    assert stats["peakInFlight"] == 8, stats
