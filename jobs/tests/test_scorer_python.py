"""``python``: user verifiers imported by ``module:function``; import problems are params errors, call
failures are counted zeros."""

from __future__ import annotations

import itertools
import textwrap

import pytest

from tao_jobs.contract import InvalidSpec
from tao_jobs.scorers import ScoringPlan
from tao_jobs.scorers.base import ScorerParamsError
from tao_jobs.scorers.python import PythonScorer

P = {"prompt_id": "p1", "messages": [{"role": "user", "content": "say hi"}], "task": "greet", "meta": {"n": 3}}

VERIFIERS = """
import math

def exact(prompt, text, target="hi"):
    return 1.0 if text.strip() == target else 0.0

def with_details(prompt, text):
    return len(text) / 10, {"len": len(text), "prompt": prompt["prompt_id"], "n": prompt["meta"]["n"]}

def as_bool(prompt, text):
    return "hi" in text

def broken(prompt, text):
    if text == "boom":
        raise ValueError("cannot verify " + text)
    return 0.5

def bad_values(prompt, text):
    return {"none": None, "nan": math.nan, "big": 1.5, "str": "1", "triple": (1, 2, 3), "obj": (1, object())}[text]

class Checks:
    @staticmethod
    def upper(prompt, text):
        return float(text.isupper())

NOT_CALLABLE = 3

def two_args_only(prompt, text):
    return 1.0
"""

_counter = itertools.count()


@pytest.fixture
def module(tmp_path, monkeypatch) -> str:
    """A fresh importable module with the verifiers above; returns its name."""
    name = f"tao_test_verifiers_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(VERIFIERS))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def run(params: dict, texts: list[str]) -> list[tuple[float, object]]:
    return PythonScorer(params).score_group(P, texts)


def test_float_and_args(module):
    assert run({"module": f"{module}:exact"}, ["hi", " hi\n", "hello"]) == [(1.0, None), (1.0, None), (0.0, None)]
    assert [s for s, _ in run({"module": f"{module}:exact", "args": {"target": "yo"}}, ["hi", "yo"])] == [0.0, 1.0]


def test_tuple_with_details_sees_the_prompt(module):
    assert run({"module": f"{module}:with_details"}, ["abcd"]) == [(0.4, {"len": 4, "prompt": "p1", "n": 3})]


def test_bools_and_dotted_attributes(module):
    assert [s for s, _ in run({"module": f"{module}:as_bool"}, ["hi there", "bye"])] == [1.0, 0.0]
    assert [s for s, _ in run({"module": f"{module}:Checks.upper"}, ["OK", "ok"])] == [1.0, 0.0]


def test_exceptions_score_zero_with_the_error_and_are_counted(module):
    scorer = PythonScorer({"module": f"{module}:broken"})
    results = scorer.score_group(P, ["fine", "boom", "boom"])
    assert results == [
        (0.5, None),
        (0.0, {"error": "ValueError: cannot verify boom"}),
        (0.0, {"error": "ValueError: cannot verify boom"}),
    ]
    assert scorer.stats() == {"calls": 3, "errors": 2}


def test_values_that_are_not_scores_are_errors(module):
    scorer = PythonScorer({"module": f"{module}:bad_values"})
    results = scorer.score_group(P, ["none", "nan", "big", "str", "triple"])
    assert all(s == 0.0 for s, _ in results)
    assert [d["error"] for _, d in results] == [
        "returned None, expected a number in [0, 1]",
        "returned nan, expected a number in [0, 1]",
        "returned 1.5, expected a number in [0, 1]",
        "returned '1', expected a number in [0, 1]",
        "returned a tuple of 3 items, expected (score, details)",
    ]
    assert scorer.stats()["errors"] == 5
    # Details that are not JSON-serialisable are kept as their repr.
    (score, details) = scorer.score_group(P, ["obj"])[0]
    assert score == 1.0 and isinstance(details, str) and details.startswith("<object object at")


def test_import_problems_are_params_errors(module):
    cases = {
        "nocolon": "module: must be 'package.module:function', got 'nocolon'",
        "tao_no_such_module_xyz:f": "module: cannot import 'tao_no_such_module_xyz' (ModuleNotFoundError: No module "
        "named 'tao_no_such_module_xyz')",
        f"{module}:missing": f"module: module {module!r} has no attribute 'missing'",
        f"{module}:NOT_CALLABLE": f"module: {module}:NOT_CALLABLE is not callable (int)",
    }
    for spec, problem in cases.items():
        with pytest.raises(ScorerParamsError) as e:
            PythonScorer({"module": spec})
        assert e.value.problems == [problem]


def test_a_module_failing_at_import_is_a_params_error(tmp_path, monkeypatch):
    (tmp_path / "tao_test_raises_on_import.py").write_text("raise RuntimeError('needs a GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ScorerParamsError, match=r"cannot import .* \(RuntimeError: needs a GPU\)"):
        PythonScorer({"module": "tao_test_raises_on_import:f"})


def test_args_the_function_does_not_take_are_params_errors(module):
    with pytest.raises(ScorerParamsError, match=r"args: .*two_args_only does not accept \(prompt, text, \*\*args\)"):
        PythonScorer({"module": f"{module}:two_args_only", "args": {"strict": True}})
    with pytest.raises(ScorerParamsError, match="args: must be an object"):
        PythonScorer({"module": f"{module}:exact", "args": [1]})


def test_plan_fails_before_any_work_with_the_spec_path(module):
    with pytest.raises(InvalidSpec) as e:
        ScoringPlan.from_params(
            {
                "scorers": [
                    {"name": "ok", "type": "python", "params": {"module": f"{module}:exact"}},
                    {"name": "bad", "type": "python", "params": {"module": f"{module}:nope"}},
                ]
            }
        )
    assert e.value.problems == [f"params.scorers.1.params.module: module {module!r} has no attribute 'nope'"]


def test_plan_stats_report_verifier_errors(module):
    plan = ScoringPlan.from_params(
        {
            "scorers": [
                {"name": "v", "type": "python", "weight": 2, "params": {"module": f"{module}:broken"}},
                {"name": "len", "type": "length", "params": {"max": 100}},
            ]
        }
    )
    rows = plan.score_group(P, ["boom", "ok"])
    assert [r["combined"] for r in rows] == pytest.approx([1 / 3, (2 * 0.5 + 1) / 3])
    assert plan.stats() == {"v": {"calls": 2, "errors": 1}}
