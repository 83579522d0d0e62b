"""Scorer types by name (the ``type`` field of a scorer in the run spec). Add new types here.

Rules: ``regex``, ``length``, ``json``. Verifiers: ``python`` (a user function), ``sql`` (execute and vote).
Self-consistency: ``vote``. Models: ``judge`` (an OpenAI-compatible endpoint), ``reward-model``. Each module
documents its params and exact values. Heavy dependencies (sqlglot, torch, transformers, vLLM) are imported
when a scorer first needs them, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Scorer
from .json_valid import JsonScorer
from .judge import JudgeScorer
from .length import LengthScorer
from .python import PythonScorer
from .regex import RegexScorer
from .reward_model import RewardModelScorer
from .sql import SqlScorer
from .vote import VoteScorer

SCORER_TYPES: dict[str, Callable[..., Scorer]] = {
    "regex": RegexScorer,
    "length": LengthScorer,
    "json": JsonScorer,
    "python": PythonScorer,
    "sql": SqlScorer,
    "vote": VoteScorer,
    "judge": JudgeScorer,
    "reward-model": RewardModelScorer,
}
