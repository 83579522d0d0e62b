"""Generation engines: the transformers engine's output schema and per-sample seeding; vLLM on a GPU."""

from __future__ import annotations

import pytest

from tao_jobs.engines import Completion, Request, open_engine
from tao_jobs.models.local import tiny_cached

TRAINED = "tiny://engine?steps=100"  # trained enough to answer and stop


@pytest.fixture(scope="module")
def engine():
    e = open_engine("transformers", tiny_cached(TRAINED), batch_size=8)
    yield e
    e.close()


def _req(q: str, temperature: float = 1.0, seed: int = 0, max_tokens: int = 24, top_p: float = 1.0) -> Request:
    return Request([{"role": "user", "content": q}], temperature, top_p, max_tokens, seed)


QUESTIONS = ["How many legs does a spider have?", "How many days are in a week?", "How many sides does a square have?"]


def test_completions_follow_the_schema(engine):
    out = engine.generate([_req(q, t) for q in QUESTIONS for t in (0.0, 1.0)])
    assert len(out) == 6
    for c in out:
        assert isinstance(c, Completion) and isinstance(c.text, str)
        assert c.finish_reason in ("stop", "length") and 0 < c.tokens <= 24
    assert any(c.finish_reason == "stop" for c in out)
    assert "<|end|>" not in "".join(c.text for c in out)  # special tokens are not part of the text


def test_max_tokens_cuts_with_finish_reason_length(engine):
    short, long_ = engine.generate([_req(QUESTIONS[0], 0.0, max_tokens=2), _req(QUESTIONS[0], 0.0, max_tokens=24)])
    assert (short.finish_reason, short.tokens) == ("length", 2)
    assert long_.finish_reason == "stop" and long_.text.startswith(short.text)


def test_a_recorded_seed_reproduces_the_sample_alone_or_in_any_batch(engine):
    requests = [_req(q, t, seed=100 + i) for i, (q, t) in enumerate((q, t) for q in QUESTIONS for t in (0.7, 1.0, 1.3))]
    batched = engine.generate(requests)
    alone = [engine.generate([r])[0] for r in requests]
    reversed_ = engine.generate(requests[::-1])[::-1]
    assert [c.text for c in alone] == [c.text for c in batched] == [c.text for c in reversed_]


def test_different_seeds_give_different_samples_and_greedy_ignores_the_seed(engine):
    sampled = engine.generate([_req(QUESTIONS[0], 1.3, seed=s, max_tokens=12) for s in range(8)])
    assert len({c.text for c in sampled}) > 1
    greedy = engine.generate([_req(QUESTIONS[0], 0.0, seed=s) for s in range(3)])
    assert len({c.text for c in greedy}) == 1


def test_unknown_engine():
    with pytest.raises(ValueError, match="unknown engine"):
        open_engine("nope", tiny_cached(TRAINED))


@pytest.mark.gpu
def test_vllm_engine_follows_the_same_schema_and_seeds(tmp_path):
    """Real vLLM (GPU image): chat template, one SamplingParams per request, seeds reproduce samples."""
    from tao_jobs.models import tiny

    tiny.build("tiny://gpu?hidden=256&steps=100", tmp_path)  # head_dim 64: supported by every attention backend
    engine = open_engine("vllm", tmp_path, gpu_memory_utilization=0.3, enforce_eager=True)
    requests = [_req(q, 1.0, seed=7 + i) for i, q in enumerate(QUESTIONS * 2)]
    first = engine.generate(requests)
    again = engine.generate(requests)
    assert [c.text for c in first] == [c.text for c in again]
    assert all(c.finish_reason in ("stop", "length") and c.tokens > 0 for c in first)
    assert len({c.text for c in first[:3]}) > 1 or len({c.text for c in first}) > 1
    greedy = engine.generate([_req(QUESTIONS[0], 0.0, seed=s) for s in range(3)])
    assert len({c.text for c in greedy}) == 1
