"""``length``: is the text within a length range?

Params: ``min`` and/or ``max`` (non-negative numbers, at least one, ``min <= max``), ``unit`` ``"chars"``
(default, ``len(text)``) or ``"words"`` (``len(text.split())``).

Values, with ``n`` the length in the unit:
- ``min <= n <= max``: 1.0.
- ``n < min``: ``n / min``, linear from 1.0 at ``min`` down to 0.0 at an empty text (``n = 0``).
- ``n > max``: ``max(0, 1 - (n - max) / max)``, linear from 1.0 at ``max`` down to 0.0 at ``n = 2 * max``
  (twice the maximum) and 0.0 beyond; with ``max = 0`` any ``n > 0`` scores 0.0.

Example ``{min: 10, max: 20}``: n=5 -> 0.5, n=15 -> 1.0, n=30 -> 0.5, n=40 -> 0.0.
Details: ``{"length": n, "unit": unit}``.
"""

from __future__ import annotations

import math

from .base import RuleScorer, ScorerParamsError, check_keys


def _bound(params: dict, key: str, problems: list[str]) -> float | None:
    v = params.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        problems.append(f"{key}: must be a non-negative number, got {v!r}")
        return None
    return float(v)


class LengthScorer(RuleScorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"min", "max", "unit"})
        self.min = _bound(params, "min", problems)
        self.max = _bound(params, "max", problems)
        self.unit = params.get("unit", "chars")
        if self.unit not in ("chars", "words"):
            problems.append(f"unit: must be 'chars' or 'words', got {self.unit!r}")
        if "min" not in params and "max" not in params:
            problems.append("min: set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(f"min: must be <= max ({self.min:g} > {self.max:g})")
        if problems:
            raise ScorerParamsError(problems)

    def length(self, text: str) -> int:
        return len(text.split()) if self.unit == "words" else len(text)

    def score_text(self, text: str) -> tuple[float, object]:
        n = self.length(text)
        details = {"length": n, "unit": self.unit}
        if self.min is not None and n < self.min:
            return n / self.min, details
        if self.max is not None and n > self.max:
            if self.max == 0:
                return 0.0, details
            return max(0.0, 1.0 - (n - self.max) / self.max), details
        return 1.0, details
