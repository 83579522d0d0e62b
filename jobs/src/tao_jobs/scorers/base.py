"""What every scorer looks like, and how a scorer type reports bad params.

A scorer scores one prompt's samples at once (``score_group``) so that group scorers (majority vote,
execution votes, pairwise judges) fit the same interface as per-text rule scorers. Scores are floats in
[0, 1]; details are small JSON-serialisable objects explaining the score (written next to it in
``scores.jsonl``).

A scorer may *abstain* on a sample by returning ``None`` as its score (the judge does when it could not get a
parseable verdict): the sample then has no score from that scorer, and ``ScoringPlan`` combines the
remaining scorers' scores with their weights (see ``ScoringPlan.score_group``). Abstentions are never
turned into a number silently.

Scorers that hold resources (a worker process, a model) release them in ``close()``; ``stats()`` returns
counters worth reporting in the stage metrics (errors, retries, unparseable verdicts...).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar


class ScorerParamsError(Exception):
    """A scorer's ``params`` are wrong. Each problem is ``key: reason`` relative to the params object;
    ``ScoringPlan.from_params`` prefixes the spec path (``params.scorers.0.params.``), raises InvalidSpec."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class Scorer(ABC):
    """One configured scorer."""

    uses_store: ClassVar[bool] = False
    """True for scorer types whose constructor takes ``store=`` (to read models or databases by URI)."""

    @abstractmethod
    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float | None, object]]:
        """(score, details) for each text of one prompt, in order; a ``None`` score is an abstention."""

    def score_groups(self, groups: list[tuple[dict, list[str]]], on_done=None) -> list[list]:
        """``score_group`` for many prompt groups at once (the score stage passes a whole shard). The default
        scores them one after the other; scorers that wait on a remote server (``judge``) override it to keep
        requests of many groups in flight. ``on_done(i)`` is called once group ``i`` is scored."""
        out = []
        for i, (prompt, texts) in enumerate(groups):
            out.append(self.score_group(prompt, texts))
            if on_done is not None:
                on_done(i)
        return out

    def stats(self) -> dict:
        """Counters for the stage metrics (JSON-serialisable); empty for scorers with nothing to count."""
        return {}

    def close(self) -> None:
        """Releases resources (worker processes, models). Idempotent; the scorer is unusable afterwards."""
        return None


class RuleScorer(Scorer):
    """A scorer that looks at each text on its own."""

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float, object]]:
        return [self.score_text(t) for t in texts]

    @abstractmethod
    def score_text(self, text: str) -> tuple[float, object]:
        """(score, details) for one text."""


def check_keys(params: dict, allowed: set[str]) -> list[str]:
    return [f"{k}: unknown parameter (allowed: {', '.join(sorted(allowed))})" for k in params if k not in allowed]


def number_param(
    params: dict,
    key: str,
    default: float | None,
    problems: list[str],
    *,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    integer: bool = False,
) -> float | None:
    """``params[key]`` (or ``default`` when absent) checked to be a finite number (an integer with
    ``integer=True``) ``>= minimum`` / ``> exclusive_minimum``; appends a problem and returns the default
    otherwise."""
    v = params.get(key, default)
    if v is None:
        return None
    want = "an integer" if integer else "a number"
    if minimum is not None:
        want += f" >= {minimum:g}"
    if exclusive_minimum is not None:
        want += f" > {exclusive_minimum:g}"
    ok = (
        not isinstance(v, bool)
        and isinstance(v, int | float)
        and math.isfinite(v)
        and (not integer or float(v).is_integer())
        and (minimum is None or v >= minimum)
        and (exclusive_minimum is None or v > exclusive_minimum)
    )
    if not ok:
        problems.append(f"{key}: must be {want}, got {v!r}")
        return default
    return int(v) if integer else float(v)


def choice_param(params: dict, key: str, choices: tuple[str, ...], default: str, problems: list[str]) -> str:
    v = params.get(key, default)
    if v not in choices:
        problems.append(f"{key}: must be one of {', '.join(map(repr, choices))}, got {v!r}")
        return default
    return v
