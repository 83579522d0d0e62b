"""``tiny://<name>[?seed=N&hidden=64&layers=2&steps=400]``: a tiny chat model built on the spot, no download.

Used by the tests and the embedded demo. ``build(uri, out_dir)`` writes a Hugging Face model directory
(``LlamaForCausalLM`` in safetensors, a byte-level BPE tokenizer with a chat template, generation config)
that every stage loads like any other model. The same URI always gives the same files on the same
platform (seeded corpus, seeded init, single-threaded pre-training).

The model is pre-trained for a few seconds on an in-code corpus of number trivia ("How many legs does a
spider have?") answered in a *mix of styles*: the number as a word or as digits, capitalised or all
lowercase, with or without a chatty extra sentence. Each style choice is made independently with
``STYLE_P`` (0.3) for the digits / lowercase / short variant (0.7 for short under the ``concise``
strategy's system prompt), so greedy decoding gives the majority style and sampling gives all of them:
a house-style rule can then be learnt from the model's own samples, which is what the demo round shows.
``steps=0`` skips pre-training (random weights: fastest, for schema tests).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)
DEFAULTS = {"seed": 0, "hidden": 64, "layers": 2, "steps": 400, "vocab": 640}
STYLE_P = 0.3

# (question, answer with {n}, n): the demo prompts (examples/demo/prompts.jsonl) ask these.
FACTS: list[tuple[str, str, int]] = [
    ("how many legs does a spider have?", "a spider has {n} legs.", 8),
    ("how many legs does a cat have?", "a cat has {n} legs.", 4),
    ("how many legs does a bird have?", "a bird has {n} legs.", 2),
    ("how many legs does an ant have?", "an ant has {n} legs.", 6),
    ("how many legs does a crab have?", "a crab has {n} legs.", 10),
    ("how many legs does a horse have?", "a horse has {n} legs.", 4),
    ("how many arms does an octopus have?", "an octopus has {n} arms.", 8),
    ("how many arms does a starfish have?", "a starfish has {n} arms.", 5),
    ("how many hearts does an octopus have?", "an octopus has {n} hearts.", 3),
    ("how many days are in a week?", "there are {n} days in a week.", 7),
    ("how many months are in a year?", "there are {n} months in a year.", 12),
    ("how many hours are in a day?", "there are {n} hours in a day.", 24),
    ("how many minutes are in an hour?", "there are {n} minutes in an hour.", 60),
    ("how many seconds are in a minute?", "there are {n} seconds in a minute.", 60),
    ("how many days are in a year?", "there are {n} days in a year.", 365),
    ("how many weeks are in a year?", "there are {n} weeks in a year.", 52),
    ("how many years are in a century?", "there are {n} years in a century.", 100),
    ("how many years are in a decade?", "there are {n} years in a decade.", 10),
    ("how many sides does a triangle have?", "a triangle has {n} sides.", 3),
    ("how many sides does a square have?", "a square has {n} sides.", 4),
    ("how many sides does a pentagon have?", "a pentagon has {n} sides.", 5),
    ("how many sides does a hexagon have?", "a hexagon has {n} sides.", 6),
    ("how many sides does an octagon have?", "an octagon has {n} sides.", 8),
    ("how many faces does a cube have?", "a cube has {n} faces.", 6),
    ("how many wheels does a bicycle have?", "a bicycle has {n} wheels.", 2),
    ("how many wheels does a tricycle have?", "a tricycle has {n} wheels.", 3),
    ("how many wheels does a car have?", "a car has {n} wheels.", 4),
    ("how many players are on a soccer team?", "a soccer team has {n} players.", 11),
    ("how many players are on a basketball team?", "a basketball team has {n} players.", 5),
    ("how many strings does a guitar have?", "a guitar has {n} strings.", 6),
    ("how many strings does a violin have?", "a violin has {n} strings.", 4),
    ("how many keys does a piano have?", "a piano has {n} keys.", 88),
    ("how many planets are in the solar system?", "there are {n} planets in the solar system.", 8),
    ("how many continents are there?", "there are {n} continents.", 7),
    ("how many oceans are there?", "there are {n} oceans.", 5),
    ("how many colors are in a rainbow?", "there are {n} colors in a rainbow.", 7),
    ("how many letters are in the alphabet?", "there are {n} letters in the alphabet.", 26),
    ("how many eggs are in a dozen?", "there are {n} eggs in a dozen.", 12),
    ("how many fingers are on one hand?", "there are {n} fingers on one hand.", 5),
    ("how many toes are on two feet?", "there are {n} toes on two feet.", 10),
    ("how many teeth does an adult have?", "an adult has {n} teeth.", 32),
    ("how many bones are in the human body?", "there are {n} bones in the human body.", 206),
    ("how many cents are in a dollar?", "there are {n} cents in a dollar.", 100),
    ("how many cards are in a deck?", "there are {n} cards in a deck.", 52),
    ("how many squares are on a chess board?", "there are {n} squares on a chess board.", 64),
    ("how many degrees are in a right angle?", "there are {n} degrees in a right angle.", 90),
    ("how many players are on a baseball team?", "a baseball team has {n} players.", 9),
    ("how many legs does a dog have?", "a dog has {n} legs.", 4),
]
QUESTION_PREFIXES = ["", "quick question: ", "please tell me, ", "i wonder, ", "do you know: "]
FILLERS = [
    "that is a fun fact to share with friends.",
    "i hope this helps you learn something new today.",
    "many people are surprised when they hear this.",
    "you can find this in most books about the topic.",
]

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()  # noqa: E501
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0 <= n < 1000 in English words ("two hundred six", "eighty eight")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


def _capitalise(text: str) -> str:
    return ". ".join(s[:1].upper() + s[1:] for s in text.split(". "))


def answer(rng: random.Random, fact: tuple[str, str, int], strategy: str) -> str:
    """One answer in a randomly drawn style (see the module docstring)."""
    _, template, n = fact
    digits = rng.random() < STYLE_P
    short = rng.random() < (1 - STYLE_P if strategy == "concise" else STYLE_P)
    lower = rng.random() < STYLE_P
    core = template.format(n=n if digits else number_words(n))
    if strategy == "cot":
        core = "let me think step by step. " + core
    text = core if short else core + " " + rng.choice(FILLERS)
    if not lower:
        text = _capitalise(text)
    if strategy == "json":
        text = json.dumps({"answer": text})
    return text


def question(rng: random.Random, fact: tuple[str, str, int]) -> str:
    q = rng.choice(QUESTION_PREFIXES) + fact[0]
    return q[:1].upper() + q[1:]


def corpus(rng: random.Random, size: int) -> list[tuple[list[dict], str]]:
    """``size`` (prompt messages, answer) pairs; a third carry a strategy's system prompt."""
    from ..strategies import STRATEGIES, build_messages

    out = []
    for _ in range(size):
        fact = rng.choice(FACTS)
        strategy = rng.choice(STRATEGIES) if rng.random() < 0.34 else "plain"
        msgs = build_messages(strategy, [{"role": "user", "content": question(rng, fact)}])
        out.append((msgs, answer(rng, fact, strategy)))
    return out


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
    pairs = corpus(rng, 3000)
    from ..strategies import SYSTEM_PROMPTS

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
