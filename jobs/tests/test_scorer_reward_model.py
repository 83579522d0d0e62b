"""``reward-model``: a tiny ``LlamaForSequenceClassification`` with a tiny tokenizer, built here (no download)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest

from tao_jobs.contract import BadInput, InvalidSpec
from tao_jobs.scorers import ScoringPlan
from tao_jobs.scorers.base import ScorerParamsError
from tao_jobs.scorers.reward_model import RewardModelScorer, conversation_ids, sigmoid

CORPUS = [
    "hello there, how are you today?",
    "the capital of france is paris.",
    "a spider has eight legs and spins webs.",
    "please answer briefly and politely.",
    "1 2 3 4 5 6 7 8 9 10 numbers and words",
] * 4
P = {"prompt_id": "p", "messages": [{"role": "user", "content": "How many legs does a spider have?"}], "task": None}
TEXTS = [
    "Eight.",
    "A spider has eight legs.",
    "hello",
    "A spider has 8 legs, and it spins webs with them; please ask me more!",
    "",
    "ten",
]


def build_reward_model(out: Path, *, hidden: int = 32, heads: int = 4, pad_is_eos: bool = False) -> str:
    """A random tiny reward model (one label) with the tiny chat tokenizer; returns its file:// URI."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from tao_jobs.models.tiny import _tokenizer

    tokenizer = _tokenizer(CORPUS, 300)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=256,
        num_labels=1,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id if pad_is_eos else tokenizer.pad_token_id,
        dtype="float32",
    )
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.normal_(0, 1.0)  # logits of order 1, so scores spread over (0, 1)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out.as_uri() + "/"


@pytest.fixture(scope="module")
def rm_uri(tmp_path_factory) -> str:
    return build_reward_model(tmp_path_factory.mktemp("rm"))


def reference_logit(uri: str, messages: list[dict], text: str, max_length: int = 4096) -> float:
    """One conversation, no padding: the score head on the last token's final hidden state."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = uri.removeprefix("file://")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    ids, _ = conversation_ids(tok, messages, text, max_length)
    with torch.no_grad():
        hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state
        return float(model.score(hidden[0, -1]))


def score(uri: str, texts: list[str], **params) -> list[tuple[float, dict]]:
    scorer = RewardModelScorer({"model": uri} | params)
    try:
        return scorer.score_group(P, texts)
    finally:
        scorer.close()


def test_scores_are_finite_deterministic_and_independent_of_batch_size(rm_uri):
    one = score(rm_uri, TEXTS, batchSize=1)
    three = score(rm_uri, TEXTS, batchSize=3)
    eight = score(rm_uri, TEXTS, batchSize=8)
    again = score(rm_uri, TEXTS, batchSize=8)
    assert all(math.isfinite(s) and 0 < s < 1 for s, _ in one)
    assert eight == again  # same inputs, same batches: identical
    for a, b, c in zip(one, three, eight, strict=True):
        assert b[0] == pytest.approx(a[0], abs=1e-5) and c[0] == pytest.approx(a[0], abs=1e-5)
        assert b[1]["tokens"] == a[1]["tokens"]
    assert len({round(s, 4) for s, _ in one}) == len(TEXTS)  # the texts get different scores


def test_value_is_the_sigmoid_of_the_last_token_logit(rm_uri):
    results = score(rm_uri, TEXTS[:3], batchSize=2)
    for text, (s, details) in zip(TEXTS[:3], results, strict=True):
        expected = reference_logit(rm_uri, P["messages"], text)
        assert details["logit"] == pytest.approx(expected, abs=1e-5)
        assert s == pytest.approx(sigmoid(expected), abs=1e-6)
        assert details["truncated"] is False
    raw = score(rm_uri, TEXTS[:3], normalize="none")
    assert [s for s, _ in raw] == [d["logit"] for _, d in raw]
    assert [s for s, _ in raw] == pytest.approx([d["logit"] for _, d in results], abs=1e-5)


def test_input_is_the_chat_template_without_extra_special_tokens(rm_uri):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(rm_uri.removeprefix("file://"))
    ids, truncated = conversation_ids(tok, P["messages"], "Eight.", 4096)
    assert (
        tok.decode(ids) == ("<|user|>How many legs does a spider have?<|end|><|assistant|>Eight.<|end|>")
        and not truncated
    )


def test_long_conversations_keep_their_last_tokens(rm_uri):
    full = score(rm_uri, [TEXTS[3]])[0][1]["tokens"]
    (s, details) = score(rm_uri, [TEXTS[3]], maxLength=12)[0]
    assert full > 12 and details["tokens"] == 12 and details["truncated"] is True
    assert details["logit"] == pytest.approx(reference_logit(rm_uri, P["messages"], TEXTS[3], 12), abs=1e-5)
    scorer = RewardModelScorer({"model": rm_uri, "maxLength": 12})
    scorer.score_group(P, TEXTS[:2])
    assert scorer.stats() == {"samples": 2, "truncated": 2}
    scorer.close()


def test_padding_is_right_even_when_the_pad_token_ends_every_sequence(tmp_path):
    # pad_token_id == eos: every conversation ends with <|end|>, so pooling at "the last non-pad token"
    # would read the wrong position; the scorer pads with another id, so batches match one-by-one calls.
    uri = build_reward_model(tmp_path / "rm-pad-eos", pad_is_eos=True)
    batched = score(uri, TEXTS, batchSize=6)
    single = score(uri, TEXTS, batchSize=1)
    assert [s for s, _ in batched] == pytest.approx([s for s, _ in single], abs=1e-5)
    assert batched[1][1]["logit"] == pytest.approx(reference_logit(uri, P["messages"], TEXTS[1]), abs=1e-5)


def test_models_that_are_not_reward_models_are_bad_input(tmp_path, rm_uri):
    src = Path(rm_uri.removeprefix("file://"))
    for name, change in {
        "causal": {"architectures": ["LlamaForCausalLM"]},
        "two-labels": {"id2label": {"0": "bad", "1": "good"}, "label2id": {"bad": 0, "good": 1}},
    }.items():
        dst = tmp_path / name
        shutil.copytree(src, dst)
        config = json.loads((dst / "config.json").read_text()) | change
        (dst / "config.json").write_text(json.dumps(config))
        with pytest.raises(BadInput, match="not a sequence-classification reward model|has 2"):
            score(dst.as_uri() + "/", ["x"])
    with pytest.raises(BadInput, match="input directory does not exist"):
        score((tmp_path / "causal").as_uri() + "-missing/", ["x"])


def test_bad_params():
    with pytest.raises(ScorerParamsError) as e:
        RewardModelScorer({"model": "/abs/path", "engine": "onnx", "batchSize": 0, "normalize": "tanh"})
    assert e.value.problems == [
        "model: required, a file:// or s3:// model directory, got '/abs/path'",
        "engine: must be one of 'transformers', 'vllm', got 'onnx'",
        "batchSize: must be an integer >= 1, got 0",
        "normalize: must be one of 'sigmoid', 'none', got 'tanh'",
    ]
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(InvalidSpec, match=r"params.scorers.0.params.engine: 'vllm' is not installed"):
            rm = {"name": "rm", "type": "reward-model", "params": {"model": "file:///m/", "engine": "vllm"}}
            ScoringPlan.from_params({"scorers": [rm]})


@pytest.mark.gpu
def test_vllm_matches_transformers(tmp_path):
    """The fast path (vLLM pooling runner) gives the reference path's scores on the same token ids."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    uri = build_reward_model(tmp_path / "rm-gpu", hidden=128, heads=2)  # head dim 64: every attention backend
    reference = score(uri, TEXTS, engine="transformers", dtype="float32", batchSize=4)
    fast = score(uri, TEXTS, engine="vllm", batchSize=4)  # vLLM's own dtype choice: half precision allowed
    for (s_ref, d_ref), (s_fast, d_fast) in zip(reference, fast, strict=True):
        assert d_fast["tokens"] == d_ref["tokens"]
        assert d_fast["logit"] == pytest.approx(d_ref["logit"], abs=2e-2, rel=2e-2)
        assert s_fast == pytest.approx(s_ref, abs=1e-2)
