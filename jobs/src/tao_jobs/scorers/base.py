"""What every scorer looks like, and how a scorer type reports bad params.

A scorer scores one prompt's samples at once (``score_group``) so that group scorers (majority vote,
execution votes) fit the same interface as per-text rule scorers. Scores are floats in [0, 1]; details are
small JSON-serialisable objects explaining the score (written next to it in ``scores.jsonl``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class ScorerParamsError(Exception):
    """A scorer's ``params`` are wrong. Each problem is ``key: reason`` relative to the params object;
    ``ScoringPlan.from_params`` prefixes the spec path (``params.scorers.0.params.``), raises InvalidSpec."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class Scorer(ABC):
    """One configured scorer."""

    @abstractmethod
    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float, object]]:
        """(score, details) for each text of one prompt, in order."""


class RuleScorer(Scorer):
    """A scorer that looks at each text on its own."""

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float, object]]:
        return [self.score_text(t) for t in texts]

    @abstractmethod
    def score_text(self, text: str) -> tuple[float, object]:
        """(score, details) for one text."""


def check_keys(params: dict, allowed: set[str]) -> list[str]:
    return [
        f"{k}: unknown parameter (allowed: {', '.join(sorted(allowed))})" for k in params if k not in allowed
    ]
