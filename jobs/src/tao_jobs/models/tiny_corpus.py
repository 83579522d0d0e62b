"""The in-code pre-training corpus of the tiny models: number trivia answered in a mix of styles.

Each answer draws three style choices independently: the number as digits (else a word), all lowercase
(else capitalised sentences), short (else one chatty extra sentence), each with probability ``STYLE_P``
(short: ``1 - STYLE_P`` under the ``concise`` strategy's system prompt, so strategies change the samples like
they would with a real model). Greedy decoding therefore answers in the majority style, and sampling gives
every style: a house-style rule can be learnt from the model's own samples (the demo round).
The demo prompts (examples/demo/prompts.jsonl) ask the questions of ``FACTS`` with ``QUESTION_PREFIXES``.
"""

from __future__ import annotations

import json
import random

from ..strategies import STRATEGIES, build_messages

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
    out = []
    for _ in range(size):
        fact = rng.choice(FACTS)
        strategy = rng.choice(STRATEGIES) if rng.random() < 0.34 else "plain"
        msgs = build_messages(strategy, [{"role": "user", "content": question(rng, fact)}])
        out.append((msgs, answer(rng, fact, strategy)))
    return out
