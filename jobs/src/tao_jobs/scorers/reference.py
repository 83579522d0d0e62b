"""Reference scorers: compare each answer with the prompt's ``reference`` (the gold answer). Evaluation only:
training prompts never carry references (the prepare stage drops them), and the run-spec validation refuses
these types in ``scoring``.

A prompt's reference is a string, a number, or a list of them (several right answers: a sample matching any
one scores 1.0). A prompt without a reference is abstained on (score ``None``, details
``{"error": "no reference"}``): never scored as wrong, never as right.

``exact-match``
  Params: ``extract`` (default ``"full"``: the whole text), or one of ``vote``'s extractors ``"last-number"``,
  ``"boxed"``, ``"regex"`` (with ``pattern`` and ``flags``, as in ``vote``); ``normalize`` (default
  ``"lower-strip"``; ``"none"``), as in ``vote``. The answer is extracted and normalised exactly as ``vote``
  does; the reference is normalised the same way (with ``last-number``, a numeric reference is compared by
  value: ``"1,000"`` equals ``1000.0``). 1.0 when equal, else 0.0.
  Details: ``{"answer": str | None, "reference": str}`` (the reference matched, or the first one).
``numeric-match``
  Params: ``tolerance`` (absolute, default 1e-6), ``relativeTolerance`` (default 0). The answer is the last
  number in the text (``vote``'s ``last-number``); 1.0 when ``|answer - reference| <= max(tolerance,
  relativeTolerance * |reference|)`` for some reference, else 0.0 (also when the text has no number). A
  reference that is not a number is BadInput naming the prompt (the data is wrong).
  Details: ``{"answer": float | None, "reference": float, "error": float | None}``.
``contains``
  Params: ``normalize`` (default ``"lower-strip"``), ``wholeWord`` (default true: the reference must not be
  glued to letters or digits on either side, so ``"8"`` is not found in ``"18"``). 1.0 when the normalised
  reference occurs in the normalised text, else 0.0. Details: ``{"found": bool, "reference": str}``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ..contract import BadInput
from .base import Scorer, ScorerParamsError, check_keys, choice_param, number_param
from .vote import EXTRACTORS, NORMALIZERS, VoteScorer, canonical_number, last_number, normalize

NO_REFERENCE = {"error": "no reference"}


def references_of(prompt: dict) -> list[str | int | float] | None:
    """The prompt's references as a list, or None when it has none."""
    if "reference" not in prompt or prompt["reference"] is None:
        return None
    ref = prompt["reference"]
    return list(ref) if isinstance(ref, list) else [ref]


class ReferenceScorer(Scorer):
    """A scorer comparing each text with the prompt's references on its own (no group effects)."""

    needs_reference = True

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float | None, object]]:
        refs = references_of(prompt)
        if refs is None:
            return [(None, dict(NO_REFERENCE)) for _ in texts]
        return [self.score_against(prompt, t, refs) for t in texts]

    def score_against(self, prompt: dict, text: str, refs: list) -> tuple[float, object]:
        raise NotImplementedError


class ExactMatchScorer(ReferenceScorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"extract", "pattern", "flags", "normalize"})
        self.extract = choice_param(params, "extract", ("full", *EXTRACTORS), "full", problems)
        self.normalize = choice_param(params, "normalize", NORMALIZERS, "lower-strip", problems)
        self.extractor: VoteScorer | None = None
        if self.extract != "full":
            try:
                self.extractor = VoteScorer(params | {"extract": self.extract, "normalize": self.normalize})
            except ScorerParamsError as e:
                problems += [p for p in e.problems if p not in problems]
        elif "pattern" in params or "flags" in params:
            problems.append("pattern: only allowed with extract 'regex'")
        if problems:
            raise ScorerParamsError(problems)

    def answer(self, text: str) -> str | None:
        if self.extractor is None:
            return normalize(text.strip(), self.normalize)
        return self.extractor.answer(text)

    def canonical_reference(self, ref: str | int | float) -> str:
        text = str(ref)
        if self.extract == "last-number":
            number = canonical_number(text.strip())
            if number is not None:
                return number
        return normalize(text.strip(), self.normalize)

    def score_against(self, prompt: dict, text: str, refs: list) -> tuple[float, object]:
        answer = self.answer(text)
        canon = [self.canonical_reference(r) for r in refs]
        hit = answer is not None and answer in canon
        return (1.0 if hit else 0.0), {"answer": answer, "reference": answer if hit else canon[0]}


def _as_number(prompt: dict, ref: object) -> float:
    if isinstance(ref, int | float) and not isinstance(ref, bool):
        return float(ref)
    try:
        return float(Decimal(str(ref).strip().replace(",", "")))
    except (InvalidOperation, ValueError):
        raise BadInput(
            f"prompt {prompt.get('prompt_id')!r}: its reference is not a number (numeric-match needs numbers)"
        ) from None


class NumericMatchScorer(ReferenceScorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"tolerance", "relativeTolerance"})
        self.tolerance = number_param(params, "tolerance", 1e-6, problems, minimum=0)
        self.relative = number_param(params, "relativeTolerance", 0.0, problems, minimum=0)
        if problems:
            raise ScorerParamsError(problems)

    def score_against(self, prompt: dict, text: str, refs: list) -> tuple[float, object]:
        numbers = [_as_number(prompt, r) for r in refs]
        raw = last_number(text)
        answer = float(raw) if raw is not None else None
        if answer is None or not math.isfinite(answer):
            return 0.0, {"answer": None, "reference": numbers[0], "error": None}
        best = min(numbers, key=lambda r: abs(answer - r))
        err = abs(answer - best)
        ok = err <= max(self.tolerance, self.relative * abs(best))
        return (1.0 if ok else 0.0), {"answer": answer, "reference": best, "error": err}


class ContainsScorer(ReferenceScorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"normalize", "wholeWord"})
        self.normalize = choice_param(params, "normalize", NORMALIZERS, "lower-strip", problems)
        self.whole_word = params.get("wholeWord", True)
        if not isinstance(self.whole_word, bool):
            problems.append(f"wholeWord: must be true or false, got {self.whole_word!r}")
        if problems:
            raise ScorerParamsError(problems)

    def score_against(self, prompt: dict, text: str, refs: list) -> tuple[float, object]:
        hay = normalize(text, self.normalize)
        for ref in refs:
            needle = normalize(str(ref).strip(), self.normalize)
            if not needle:
                continue
            pattern = re.escape(needle)
            if self.whole_word:
                pattern = rf"(?<![^\W_]){pattern}(?![^\W_])"
            if re.search(pattern, hay):
                return 1.0, {"found": True, "reference": needle}
        return 0.0, {"found": False, "reference": normalize(str(refs[0]).strip(), self.normalize)}
