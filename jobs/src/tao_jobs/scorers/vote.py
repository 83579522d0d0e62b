"""``vote``: majority vote on extracted answers across one prompt's samples (TTRL's label-free reward).

Params:
- ``extract`` (default ``"last-number"``): how an answer is taken from a text.
  - ``"last-number"``: the last number in the text (``-?`` digits with optional ``,`` thousands separators
    in groups of three and an optional decimal part, or ``.5``-style decimals; a leading ``+`` is allowed).
    Numbers are compared by value: ``"1,000"``, ``"1000"`` and ``"1000.0"`` are all the answer ``"1000"``;
    ``"-0"`` is ``"0"``; ``"3.50"`` is ``"3.5"``. Fractions are not parsed (``"1/2"`` gives ``"2"``).
  - ``"boxed"``: the content of the last ``\\boxed{...}`` (nested braces balanced), stripped of surrounding
    whitespace; an unbalanced ``\\boxed{`` is no answer.
  - ``"regex"``: the last match of ``pattern`` (required, Python ``re`` syntax); its first capturing group
    when the pattern has groups (a match where that group did not participate is skipped), else the whole
    match.
- ``pattern``: the regular expression for ``extract: "regex"`` (only allowed with it).
- ``flags``: ``re`` flags for ``pattern`` as letters (``i``, ``m``, ``s``, ``x``), as in the regex scorer.
- ``normalize`` (default ``"none"``): ``"lower-strip"`` lowercases the answer, strips surrounding whitespace
  and collapses inner whitespace runs to one space before comparing; ``"none"`` compares the extracted text
  as is (``last-number`` answers are canonical numbers either way).

Values, per prompt group:
- The *majority answer* is the answer extracted from the most samples. Ties are broken deterministically by
  sample order: among the answers with the highest count, the one whose first occurrence comes earliest in
  the group wins (``collections.Counter.most_common`` order, as in TTRL).
- 1.0 for a sample whose answer equals the majority answer; 0.0 for every other sample, including samples
  with no extractable answer (they do not vote). When no sample has an answer, every sample scores 0.0.
Details: ``{"answer": str | None, "majority": str | None, "votes": int, "voters": int, "tie": bool}`` with
``votes`` the majority answer's count, ``voters`` the number of samples with an answer, ``tie`` true when
another answer had as many votes.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation

from .base import Scorer, ScorerParamsError, check_keys, choice_param
from .regex import FLAGS

EXTRACTORS = ("last-number", "boxed", "regex")
NORMALIZERS = ("none", "lower-strip")
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])|(?<![\w.])[-+]?\.\d+")


def canonical_number(token: str) -> str | None:
    """``"1,000.50"`` -> ``"1000.5"``; ``"-0"`` -> ``"0"``; None if not a number."""
    try:
        d = Decimal(token.replace(",", ""))
    except InvalidOperation:
        return None
    if d == 0:
        return "0"
    d = d.normalize()
    return format(d, "f")


def last_number(text: str) -> str | None:
    found = None
    for m in NUMBER.finditer(text):
        found = m.group(0)
    return canonical_number(found) if found is not None else None


def last_boxed(text: str) -> str | None:
    """The content of the last balanced ``\\boxed{...}``, or None."""
    start = text.rfind("\\boxed{")
    while start != -1:
        depth, i = 0, start + len("\\boxed")
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip()
        start = text.rfind("\\boxed{", 0, start)  # unbalanced: try an earlier one
    return None


def normalize(answer: str, how: str) -> str:
    return " ".join(answer.lower().split()) if how == "lower-strip" else answer


def majority(answers: list[str | None]) -> tuple[str | None, int, bool]:
    """(majority answer, its count, tie) over the non-None answers, ties broken by first occurrence."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0, False
    ranked = counts.most_common()  # stable: equal counts stay in first-occurrence order
    top, n = ranked[0]
    return top, n, len(ranked) > 1 and ranked[1][1] == n


class VoteScorer(Scorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"extract", "pattern", "flags", "normalize"})
        self.extract = choice_param(params, "extract", EXTRACTORS, "last-number", problems)
        self.normalize = choice_param(params, "normalize", NORMALIZERS, "none", problems)
        self.regex = None
        pattern = params.get("pattern")
        if self.extract == "regex":
            flags = 0
            raw_flags = params.get("flags", "")
            if not isinstance(raw_flags, str) or any(c not in FLAGS for c in raw_flags):
                problems.append(f"flags: must be a string of flag letters (i, m, s, x), got {raw_flags!r}")
            else:
                for c in raw_flags:
                    flags |= FLAGS[c]
            if not isinstance(pattern, str) or not pattern:
                problems.append("pattern: required with extract 'regex', a non-empty regular expression")
            else:
                try:
                    self.regex = re.compile(pattern, flags)
                except re.error as e:
                    problems.append(f"pattern: not a valid regular expression ({e})")
        else:
            for key in ("pattern", "flags"):
                if key in params:
                    problems.append(f"{key}: only allowed with extract 'regex'")
        if problems:
            raise ScorerParamsError(problems)

    def answer(self, text: str) -> str | None:
        """The normalized answer of one text, or None."""
        if self.extract == "last-number":
            raw = last_number(text)
        elif self.extract == "boxed":
            raw = last_boxed(text)
        else:
            raw = None
            for m in self.regex.finditer(text):
                value = m.group(1) if self.regex.groups else m.group(0)
                if value is not None:
                    raw = value
        return None if raw is None else normalize(raw, self.normalize)

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float, object]]:
        answers = [self.answer(t) for t in texts]
        top, votes, tie = majority(answers)
        voters = sum(a is not None for a in answers)
        return [
            (
                1.0 if a is not None and a == top else 0.0,
                {"answer": a, "majority": top, "votes": votes, "voters": voters, "tie": tie},
            )
            for a in answers
        ]
