"""Scorer types by name (the ``type`` field of a scorer in the run spec). Add new types here.

Rules: ``regex``, ``length``, ``json``. Verifiers: ``python`` (a user function), ``sql`` (execute and vote).
Self-consistency: ``vote``. Models: ``judge`` (an OpenAI-compatible endpoint), ``reward-model``. Against the
prompt's ``reference`` (evaluation only): ``exact-match``, ``numeric-match``, ``contains``
(``reference.py``), ``sql-execution-match`` (``sql_match.py``), and ``python`` with ``reference: true``. Each module
documents its params and exact values. Heavy dependencies (sqlglot, torch, transformers, vLLM) are imported
when a scorer first needs them, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Scorer
from .json_valid import JsonScorer
from .judge import JudgeScorer, JudgeWithReferenceScorer
from .length import LengthScorer
from .python import PythonScorer
from .reference import ContainsScorer, ExactMatchScorer, NumericMatchScorer
from .regex import RegexScorer
from .reward_model import RewardModelScorer
from .sql import SqlScorer
from .sql_match import SqlExecutionMatchScorer
from .vote import VoteScorer

SCORER_TYPES: dict[str, Callable[..., Scorer]] = {
    "regex": RegexScorer,
    "length": LengthScorer,
    "json": JsonScorer,
    "python": PythonScorer,
    "sql": SqlScorer,
    "vote": VoteScorer,
    "judge": JudgeScorer,
    "judge-with-reference": JudgeWithReferenceScorer,
    "reward-model": RewardModelScorer,
    "exact-match": ExactMatchScorer,
    "numeric-match": NumericMatchScorer,
    "contains": ContainsScorer,
    "sql-execution-match": SqlExecutionMatchScorer,
}

REFERENCE_TYPES = frozenset({"exact-match", "numeric-match", "contains", "sql-execution-match", "judge-with-reference"})
"""Scorer types that compare with the prompt's reference: evaluation only (refused in ``scoring`` by the
run-spec validation and by the evaluate stage)."""


def needs_reference(type_: str, params: dict) -> bool:
    """True for a scorer that needs references: a reference type, or ``python`` with ``reference: true``."""
    return type_ in REFERENCE_TYPES or (type_ == "python" and params.get("reference") is True)
