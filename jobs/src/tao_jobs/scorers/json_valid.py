"""``json``: is the text (or the JSON object inside it) valid JSON, optionally matching a JSON Schema?

Params: ``schema`` (optional JSON Schema, draft 2020-12).

The value is found by first parsing the whole text (stripped of surrounding whitespace) as JSON; if that
fails, the first ``{...}`` block that parses as JSON (scanning each ``{`` from the left, so prose or a
Markdown code fence around the object is fine).

Values: 1.0 if a value was found and (when a schema is given) it validates; 0.0 otherwise.
Details: ``{"valid": true}``, or ``{"valid": false, "error": "no JSON value found"}``, or
``{"valid": false, "error": "schema: <path>: <message>"}`` (first error in path order).
"""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .base import RuleScorer, ScorerParamsError, check_keys

_NOT_FOUND = object()


def extract_json(text: str) -> object:
    """The parsed value as described above, or ``_NOT_FOUND``."""
    try:
        return json.loads(text.strip())
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except ValueError:
            start = text.find("{", start + 1)
    return _NOT_FOUND


class JsonScorer(RuleScorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"schema"})
        self.validator = None
        schema = params.get("schema")
        if schema is not None:
            if not isinstance(schema, dict | bool):
                problems.append("schema: must be a JSON Schema object")
            else:
                try:
                    Draft202012Validator.check_schema(schema)
                    self.validator = Draft202012Validator(schema)
                except SchemaError as e:
                    where = "/".join(str(p) for p in e.path)
                    problems.append(f"schema: not a valid JSON Schema ({where + ': ' if where else ''}{e.message})")
        if problems:
            raise ScorerParamsError(problems)

    def score_text(self, text: str) -> tuple[float, object]:
        value = extract_json(text)
        if value is _NOT_FOUND:
            return 0.0, {"valid": False, "error": "no JSON value found"}
        if self.validator is not None:
            errors = sorted(self.validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
            if errors:
                e = errors[0]
                where = "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in e.absolute_path)
                return 0.0, {"valid": False, "error": f"schema: {where}: {e.message}"}
        return 1.0, {"valid": True}
