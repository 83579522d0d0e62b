"""Error messages reach Temporal's history (the job's reason and log tail become the failure message): they name
the file, line and field of bad data, never its text (issue 11, item 8)."""

from __future__ import annotations

import json

import pytest

from tao_jobs.contract import BadInput
from tao_jobs.prompts import read_prompts
from tao_jobs.scorers.reference import NumericMatchScorer
from tao_jobs.store import Store

SECRET = "SECRET-4412"


def test_invalid_prompt_lines_are_named_by_line_and_field_without_their_text(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "prompt": "fine"}),
                json.dumps({"id": "b", "prompt": f"ask {SECRET}", "reference": {"gold": SECRET}}),
                json.dumps({"id": "c", "messages": [{"role": f"{SECRET}-role", "content": SECRET}]}),
                json.dumps({"id": "d", "prompt": f"{SECRET}", "reference": True}),
                f'{{"id": "e", "prompt": "{SECRET} unterminated',
            ]
        )
        + "\n"
    )
    with pytest.raises(BadInput) as e:
        read_prompts(Store(), path.as_uri(), "fail")
    message = str(e.value)
    assert "line 2: reference: must be a non-empty string, a finite number or a list of them, got dict" in message
    assert "line 3: messages.0.role: must be one of system, user, assistant" in message
    assert "line 4: reference:" in message and "got bool" in message
    assert "line 5: not valid JSON" in message
    assert SECRET not in message
    # skip mode: the same problems, counted and listed, still without the text
    src = read_prompts(Store(), path.as_uri(), "skip")
    assert src.invalid == 4 and not any(SECRET in p for p in src.problems)


def test_a_reference_that_is_not_a_number_is_named_by_prompt_not_by_value():
    scorer = NumericMatchScorer({})
    with pytest.raises(BadInput) as e:
        scorer.score_against({"prompt_id": "p7"}, "42", [f"{SECRET} forty-two"])
    assert "prompt 'p7': its reference is not a number" in str(e.value)
    assert SECRET not in str(e.value)
