"""A scoring plan: the configured scorers, their weights, and which ones apply to which task.

Shared by the score stage (scores every generation) and the evaluate stage (scores base and tuned outputs
with the same rules), so both read one definition of "combined score".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..contract import InvalidSpec
from ..store import Store
from .base import Scorer, ScorerParamsError
from .registry import SCORER_TYPES

COMBINED = "combined"
"""The scorer name of the weighted combination in ``scores.jsonl``; no configured scorer may use it."""


@dataclass(frozen=True)
class ConfiguredScorer:
    name: str
    type: str
    weight: float
    scorer: Scorer


class ScoringPlan:
    def __init__(self, scorers: list[ConfiguredScorer], tasks: dict[str, list[str]]):
        self.scorers = scorers
        self.tasks = tasks
        self._by_name = {s.name: s for s in scorers}

    @classmethod
    def from_params(cls, params: dict, path: str = "params", store: Store | None = None) -> ScoringPlan:
        """Builds the plan from ``{"scorers": [{name, type, weight, params}], "tasks": {task: [names]}}``.

        Raises InvalidSpec with every problem as ``<path>.scorers.<i>.<field>: reason`` (unknown type, bad
        scorer params, duplicate names, non-positive weights, unknown scorer names in ``tasks``). ``path``
        is where the scoring params sit in the stage spec (``params`` for score, ``params.scoring`` for
        evaluate). ``store`` is the stage's artifact store, used by scorers that read models or databases
        by URI (``reward-model``, ``sql``); without it they use a ``Store()`` configured from the environment.
        """
        problems: list[str] = []
        raw = params.get("scorers") if isinstance(params, dict) else None
        if not isinstance(raw, list) or not raw:
            raise InvalidSpec([f"{path}.scorers: at least one scorer is required"])
        scorers: list[ConfiguredScorer] = []
        seen: set[str] = set()
        for i, s in enumerate(raw):
            at = f"{path}.scorers.{i}"
            if not isinstance(s, dict):
                problems.append(f"{at}: must be an object")
                continue
            name, type_, weight = s.get("name"), s.get("type"), s.get("weight", 1.0)
            if not isinstance(name, str) or not name:
                problems.append(f"{at}.name: required, a non-empty string")
            elif name == COMBINED:
                problems.append(f"{at}.name: {COMBINED!r} is reserved for the weighted combination")
            elif name in seen:
                problems.append(f"{at}.name: duplicate scorer name {name!r}")
            else:
                seen.add(name)
            if (
                isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not math.isfinite(weight)
                or weight <= 0
            ):
                problems.append(f"{at}.weight: must be a positive number, got {weight!r}")
            sparams = s.get("params", {})
            if not isinstance(sparams, dict):
                problems.append(f"{at}.params: must be an object")
                continue
            factory = SCORER_TYPES.get(type_) if isinstance(type_, str) else None
            if factory is None:
                problems.append(f"{at}.type: unknown scorer type {type_!r} (known: {', '.join(sorted(SCORER_TYPES))})")
                continue
            try:
                scorer = factory(sparams, store=store) if getattr(factory, "uses_store", False) else factory(sparams)
            except ScorerParamsError as e:
                problems += [f"{at}.params.{p}" for p in e.problems]
                continue
            if isinstance(name, str) and isinstance(weight, int | float):
                scorers.append(ConfiguredScorer(name, type_, float(weight), scorer))
        tasks = params.get("tasks", {}) or {}
        if not isinstance(tasks, dict):
            problems.append(f"{path}.tasks: must be an object mapping task names to scorer names")
            tasks = {}
        for task, names in tasks.items():
            if not isinstance(names, list) or not names:
                problems.append(f"{path}.tasks.{task}: must be a non-empty list of scorer names")
                continue
            for j, n in enumerate(names):
                if n not in seen:
                    problems.append(f"{path}.tasks.{task}.{j}: unknown scorer name {n!r}")
        if problems:
            raise InvalidSpec(problems)
        return cls(scorers, {t: list(dict.fromkeys(n)) for t, n in tasks.items()})

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scorers]

    def scorers_for(self, task: str | None) -> list[ConfiguredScorer]:
        """The scorers that apply to a task: those listed for it, or every scorer for an unlisted task."""
        if task is not None and task in self.tasks:
            return [self._by_name[n] for n in self.tasks[task]]
        return list(self.scorers)

    def score_group(self, prompt: dict, texts: list[str]) -> list[dict]:
        """Scores one prompt's samples.

        Returns, per text: ``{"combined": float | None, "scores": {name: float}, "details": {name: object}}``,
        plus ``"abstained": [name]`` when some scorer abstained on that text.

        ``combined`` is the weighted mean of the applicable scorers' scores (``sum(w*s) / sum(w)``) over the
        scorers that scored this text. A scorer that abstains on a text (score ``None``, e.g. a judge verdict
        that could not be parsed) is left out of ``scores`` and of both sums for that text, so the
        remaining scorers keep their relative weights; it is listed in ``abstained`` and its details (the
        reason) stay in ``details``. When every applicable scorer abstains, ``combined`` is ``None``: the
        text has no score at all and must not be used as if it had one. Scores are floats in [0, 1] (except
        a ``reward-model`` with ``normalize: "none"``: raw logits); a non-finite score is a bug and raises
        ``ValueError``.
        """
        return self.score_groups([(prompt, texts)])[0]

    def score_groups(self, groups: list[tuple[dict, list[str]]], on_progress=None) -> list[list[dict]]:
        """``score_group`` for many prompt groups: each scorer scores all the groups it applies to in one call
        (``Scorer.score_groups``), so a judge keeps its requests in flight across the groups. The results are
        the same as ``score_group`` group by group. ``on_progress(done, total)`` counts (scorer, group) pairs
        scored."""
        outs: list[list[dict]] = [[{"combined": None, "scores": {}, "details": {}} for _ in t] for _, t in groups]
        applicable = [{s.name for s in self.scorers_for(p.get("task"))} for p, _ in groups]
        todo = [(s, [i for i, (_, t) in enumerate(groups) if t and s.name in applicable[i]]) for s in self.scorers]
        total, done = sum(len(idx) for _, idx in todo), 0

        def tick(_: int) -> None:
            nonlocal done
            done += 1
            if on_progress is not None:
                on_progress(done, total)

        for s, idx in todo:
            if not idx:
                continue
            results = s.scorer.score_groups([groups[i] for i in idx], on_done=tick)
            for i, group_results in zip(idx, results, strict=True):
                for row, (score, details) in zip(outs[i], group_results, strict=True):
                    row["details"][s.name] = details
                    if score is None:
                        row.setdefault("abstained", []).append(s.name)
                        continue
                    score = float(score)
                    if not math.isfinite(score):
                        raise ValueError(f"scorer {s.name!r} ({s.type}) returned a non-finite score ({score!r})")
                    row["scores"][s.name] = score
        for (prompt, _), out in zip(groups, outs, strict=True):
            mine = self.scorers_for(prompt.get("task"))
            for row in out:
                scored = [s for s in mine if s.name in row["scores"]]
                if scored:
                    total_w = sum(s.weight for s in scored)
                    row["combined"] = sum(s.weight * row["scores"][s.name] for s in scored) / total_w
        return outs

    def stats(self) -> dict[str, dict]:
        """Per scorer name, the scorer's counters (``Scorer.stats``), for scorers that count something."""
        return {s.name: st for s in self.scorers if (st := s.scorer.stats())}

    def close(self) -> None:
        """Releases every scorer's resources (worker processes, models)."""
        for s in self.scorers:
            s.scorer.close()

    def __enter__(self) -> ScoringPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
