"""Scorer types by name (the ``type`` field of a scorer in the run spec). Add new types here."""

from __future__ import annotations

from collections.abc import Callable

from .base import Scorer
from .json_valid import JsonScorer
from .length import LengthScorer
from .regex import RegexScorer

SCORER_TYPES: dict[str, Callable[[dict], Scorer]] = {
    "regex": RegexScorer,
    "length": LengthScorer,
    "json": JsonScorer,
}
