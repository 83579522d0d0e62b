"""Loading and validating a stage spec against the JSON Schema generated from the TypeScript contract."""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources

from jsonschema import Draft202012Validator

from .contract import BadInput, InvalidSpec
from .store import S3Options, Store


@cache
def _validator(name: str) -> Draft202012Validator:
    text = resources.files("tao_jobs").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    return Draft202012Validator(json.loads(text))


def _path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(root)"


def validate(doc: object, schema: str = "stage-spec") -> list[str]:
    """Every problem of ``doc`` as ``path: reason`` (empty when valid)."""
    v = _validator(schema)
    problems: list[str] = []
    for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        # A oneOf over stages reports one branch per stage; pick the branch of the stage actually named.
        if e.validator == "oneOf" and isinstance(doc, dict) and "stage" in doc:
            branch = [c for c in (e.context or []) if _branch_stage(c) == doc.get("stage")]
            if branch:
                problems += [f"{_path(c)}: {c.message}" for c in branch]
                continue
        problems.append(f"{_path(e)}: {e.message}")
    return problems


def _branch_stage(error) -> str | None:
    schema = error.schema_path
    try:
        idx = schema[0]
        stage = _validator("stage-spec").schema["oneOf"][idx]["properties"]["stage"]["const"]
        return stage
    except (IndexError, KeyError, TypeError):
        return None


def bootstrap_options(env) -> S3Options | None:
    """The store settings the executor passes for reading the stage spec itself (``TAO_STORE_S3_*``, from the
    run spec's ``artifacts.s3``); None: the SDK's defaults (``AWS_ENDPOINT_URL``, ``AWS_REGION``)."""
    if not any(k.startswith("TAO_STORE_S3_") for k in env):
        return None
    return S3Options(
        endpoint=env.get("TAO_STORE_S3_ENDPOINT") or None,
        region=env.get("TAO_STORE_S3_REGION") or "us-east-1",
        force_path_style=env.get("TAO_STORE_S3_PATH_STYLE", "true") != "false",
    )


def load(uri: str, expected_stage: str) -> tuple[dict, Store]:
    """Reads, parses and validates the stage spec; returns it with a store configured from it."""
    bootstrap = Store(bootstrap_options(os.environ))
    try:
        text = bootstrap.read_text(uri)
    except BadInput as e:
        raise InvalidSpec([f"--spec: {e}"]) from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidSpec([f"{uri}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"]) from e
    problems = validate(doc)
    if isinstance(doc, dict) and doc.get("stage") != expected_stage:
        problems.insert(
            0, f"stage: spec is for stage {doc.get('stage')!r} but the job was started as {expected_stage!r}"
        )
    if problems:
        raise InvalidSpec(problems)
    s3 = (doc.get("store") or {}).get("s3")
    store = Store(
        S3Options(endpoint=s3.get("endpoint"), region=s3["region"], force_path_style=s3["forcePathStyle"])
        if s3
        else None
    )
    return doc, store
