"""``tiny://<name>[?seed=N&hidden=64&layers=2&steps=800]``: a tiny chat model built on the spot, no download.

Used by the tests and the embedded demo. ``build(uri, out_dir)`` writes a Hugging Face model directory
(``LlamaForCausalLM`` in safetensors, a byte-level BPE tokenizer with a chat template, generation config)
that every stage loads like any other model. The same URI always gives the same files on the same
platform (seeded corpus, seeded init, single-threaded pre-training).

The model is pre-trained for about a minute on one core (answer tokens only) on an in-code corpus
(``tiny_corpus.py``) of the two demo tasks, counting trivia and text-to-SQL over ``examples/sql/shop.sqlite``,
built so that the greedy answer is often wrong while a vote over sampled answers is mostly right (the
mechanism TAO exploits; ``tiny_signal.py`` measures it). The name ``judge`` builds the tiny *judge* instead:
pre-trained on the ``judge`` scorer's own request formats about trivia answers (the judge tests' server
model). ``steps=0`` skips pre-training (random weights: fastest, for schema tests). Options: ``seed``,
``hidden`` (width; 4 attention heads), ``layers``, ``steps``, ``vocab`` (BPE vocabulary size).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

from ..strategies import SYSTEM_PROMPTS
from .tiny_corpus import corpus, judge_corpus

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)
DEFAULTS = {"seed": 0, "hidden": 64, "layers": 2, "steps": 800, "vocab": 640}


def parse(uri: str) -> tuple[str, dict[str, int]]:
    """``tiny://name?k=v`` -> (name, options with defaults); ValueError on an unknown or non-integer option."""
    u = urlparse(uri)
    if u.scheme != "tiny" or not u.netloc:
        raise ValueError(f"{uri}: not a tiny://<name> URI")
    opts = dict(DEFAULTS)
    for k, v in parse_qsl(u.query, keep_blank_values=True):
        if k not in DEFAULTS:
            raise ValueError(f"{uri}: unknown option {k!r} (known: {', '.join(DEFAULTS)})")
        try:
            opts[k] = int(v)
        except ValueError as e:
            raise ValueError(f"{uri}: option {k} must be an integer, got {v!r}") from e
    return u.netloc, opts


def _tokenizer(texts: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL_TOKENS[2:],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=512,
    )


def _pretrain(model, tokenizer, pairs: list[tuple[list[dict], str]], steps: int, seed: int) -> None:
    """Next-token loss on the answers only (prompt tokens masked), AdamW with a linear decay."""
    import torch

    rows = []
    for msgs, ans in pairs:
        p = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(ans + "<|end|>", add_special_tokens=False)["input_ids"]
        rows.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(1, steps))
    pad = tokenizer.pad_token_id
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(rows), (32,), generator=g).tolist()
        width = max(len(rows[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad)
        labels = torch.full((len(idx), width), -100)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for j, i in enumerate(idx):
            x, y = rows[i]
            ids[j, : len(x)], labels[j, : len(y)], mask[j, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    model.eval()


def build(uri: str, out_dir: Path) -> None:
    """Builds the model of ``uri`` into ``out_dir`` (created if needed). Deterministic for a given URI."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    name, o = parse(uri)
    seed = o["seed"]
    rng = random.Random(f"tiny:{name}:{seed}")
    pairs = judge_corpus(rng, 4000) if name == "judge" else corpus(rng, 6000)
    texts = [m["content"] for msgs, _ in pairs for m in msgs] + [a for _, a in pairs]
    texts += [p for p in SYSTEM_PROMPTS.values() if p]
    tokenizer = _tokenizer(texts, o["vocab"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reductions do not depend on the machine's core count
    try:
        torch.manual_seed(seed)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=o["hidden"],
            intermediate_size=o["hidden"] * 3,
            num_hidden_layers=o["layers"],
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            dtype="float32",
        )
        model = LlamaForCausalLM(config)
        if o["steps"] > 0:
            _pretrain(model, tokenizer, pairs, o["steps"], seed)
    finally:
        torch.set_num_threads(threads)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "tiny.json").write_text(json.dumps({"uri": uri, "name": name, **o}, indent=2) + "\n")
