"""Scorers (rules, verifiers, votes, judges, reward models) combinable by weights and selectable per task.

``ScoringPlan.from_params(params)`` builds the plan from the stage spec's scoring params;
``plan.score_group(prompt, texts)`` scores one prompt's samples. The scorer types are in ``registry.py``;
each type's module documents its exact values.
"""

from .base import RuleScorer, Scorer, ScorerParamsError
from .plan import COMBINED, ConfiguredScorer, ScoringPlan
from .registry import SCORER_TYPES

__all__ = [
    "COMBINED",
    "SCORER_TYPES",
    "ConfiguredScorer",
    "RuleScorer",
    "Scorer",
    "ScorerParamsError",
    "ScoringPlan",
]
