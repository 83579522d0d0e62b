"""The shared scorer-params cases (tests/fixtures/scorer-params/cases.json, also run by the TypeScript
validation tests): every case makes the Python scorer report exactly the expected parameter keys, so
`tao validate` refuses what the score stage would refuse, no more and no less."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tao_jobs.scorers import SCORER_TYPES, ScorerParamsError

CASES = json.loads((Path(__file__).resolve().parents[2] / "tests/fixtures/scorer-params/cases.json").read_text())


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: f"{c['type']}:{json.dumps(c['params'])}")
def test_python_scorer_reports_the_expected_keys(case):
    factory = SCORER_TYPES[case["type"]]
    try:
        scorer = (
            factory(case["params"], store=None) if getattr(factory, "uses_store", False) else factory(case["params"])
        )
        problems: list[str] = []
        scorer.close()
    except ScorerParamsError as e:
        problems = e.problems
    assert sorted({p.split(":")[0].split(".")[0] for p in problems}) == sorted(set(case["expect"])), problems
