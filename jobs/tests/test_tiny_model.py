"""tiny:// models: deterministic builds, a usable tokenizer and chat template, URI options."""

from __future__ import annotations

import hashlib

import pytest

from tao_jobs.models import tiny
from tao_jobs.models.local import model_rev, tiny_cached


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_uri_gives_identical_files_and_another_seed_does_not(tmp_path):
    uri = "tiny://det?steps=5"
    tiny.build(uri, tmp_path / "a")
    tiny.build(uri, tmp_path / "b")
    tiny.build("tiny://det?steps=5&seed=1", tmp_path / "c")
    for name in ("model.safetensors", "tokenizer.json"):
        assert _sha(tmp_path / "a" / name) == _sha(tmp_path / "b" / name)
    assert _sha(tmp_path / "a" / "model.safetensors") != _sha(tmp_path / "c" / "model.safetensors")
    assert model_rev(tmp_path / "a") == model_rev(tmp_path / "b") != model_rev(tmp_path / "c")


def test_tokenizer_chat_template_and_special_tokens(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    tiny.build("tiny://tok?steps=0", tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How many legs?"}]
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text == "<|system|>Be brief.<|end|><|user|>How many legs?<|end|><|assistant|>"
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "8"}], tokenize=False)
    assert full == text + "8<|end|>"
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>" and tok.pad_token_id != tok.eos_token_id
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.convert_tokens_to_ids("<|assistant|>") == ids[-1]  # special tokens stay atomic
    assert tok.decode(tok("A spider has 8 legs.")["input_ids"]) == "A spider has 8 legs."
    config = AutoConfig.from_pretrained(tmp_path)
    assert (config.hidden_size, config.num_hidden_layers) == (64, 2)
    assert config.eos_token_id == tok.eos_token_id and config.pad_token_id == tok.pad_token_id


@pytest.mark.parametrize(
    ("uri", "error"),
    [
        ("tiny://", "not a tiny://<name> URI"),
        ("file:///x", "not a tiny://<name> URI"),
        ("tiny://m?layers=two", "must be an integer"),
        ("tiny://m?depth=3", "unknown option 'depth'"),
    ],
)
def test_bad_uris(uri, error):
    with pytest.raises(ValueError, match=error):
        tiny.parse(uri)


def test_uri_options_and_cache(tmp_path, monkeypatch):
    assert tiny.parse("tiny://demo?seed=3&hidden=32") == ("demo", tiny.DEFAULTS | {"seed": 3, "hidden": 32})
    monkeypatch.setenv("TAO_TINY_CACHE", str(tmp_path))
    first = tiny_cached("tiny://cache?steps=0&hidden=32&layers=1")
    assert (first / "config.json").is_file()
    assert tiny_cached("tiny://cache?steps=0&hidden=32&layers=1") == first  # built once
