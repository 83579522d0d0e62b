"""The shared run-spec fixtures (tests/fixtures/specs/, also used by the TypeScript tests) against the
generated JSON Schema, so the zod contract and the Python side cannot drift apart.

Top-level keys starting with ``$`` are test metadata and removed before validating. ``$expectError`` is a
path prefix (or a list of them), dot-separated like ``scoring.scorers.0.weight``; each must match at least
one reported problem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tao_jobs.spec import validate

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "specs"


def fixtures(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.json"))


def problem_paths(problems: list[str]) -> list[str]:
    """Dot paths of the problems; a missing property is reported at its own path, not its parent's."""
    out = []
    for p in problems:
        path, _, message = p.partition(": ")
        path = "" if path == "(root)" else path
        if m := re.match(r"'([^']+)' is a required property", message):
            path = f"{path}.{m.group(1)}" if path else m.group(1)
        out.append(path)
    return out


def normalise(path: str) -> str:
    return re.sub(r"\[(\d+)\]", r".\1", path).replace("/", ".").strip(".")


def test_fixture_directories_are_not_empty():
    assert fixtures("valid") and fixtures("invalid"), f"no fixtures under {FIXTURES}"


@pytest.mark.parametrize("path", fixtures("valid"), ids=lambda p: p.name)
def test_valid_fixture(path: Path):
    doc = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("$")}
    assert validate(doc, "run-spec") == []


@pytest.mark.parametrize("path", fixtures("invalid"), ids=lambda p: p.name)
def test_invalid_fixture(path: Path):
    raw = json.loads(path.read_text())
    expected = raw.get("$expectError", [])
    expected = [expected] if isinstance(expected, str) else expected
    problems = validate({k: v for k, v in raw.items() if not k.startswith("$")}, "run-spec")
    assert problems, f"{path.name} should be invalid"
    paths = problem_paths(problems)
    for prefix in map(normalise, expected):
        assert any(p == prefix or p.startswith(prefix + ".") for p in paths), (prefix, problems)
