"""JSONL: reading user prompt sources (validated and normalised) and our own artifacts (line-checked).

A user prompt line is ``{"id": str, "prompt": str}`` or ``{"id": str, "messages": [{"role", "content"}]}``,
with optional ``"task"`` (string), ``"meta"`` (object) and ``"reference"`` (the gold answer: a non-empty string, a
number, or a non-empty list of them when several answers are right; gold SQL for SQL tasks). It is normalised
to the prepared-prompt row ``{"prompt_id", "messages", "task" (or null), "source": {"uri", "line"}}`` (plus
``"meta"`` and ``"reference"`` when given). References are for evaluation only: the prepare stage drops them
from every training-side row (``strip_reference``).
Invalid lines are a user problem: with ``onInvalid: fail`` they raise BadInput listing the first
``MAX_LISTED`` problems with their line numbers; with ``skip`` they are counted and dropped.

Our own artifacts (prepared prompts, generations, scores) are produced by earlier stages, so a bad line there
is corruption: BadInput naming the file and line, always.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .contract import BadInput
from .store import Store

MAX_LISTED = 20
ROLES = ("system", "user", "assistant")


def lines(text: str) -> list[str]:
    """Splits on ``\n`` only: ``str.splitlines`` also splits on U+2028, U+0085 and friends, which JSON
    writers (``ensure_ascii=False``) leave raw inside strings, so it would cut a valid row in two."""
    return text.split("\n")


def iter_jsonl(store: Store, uri: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; BadInput ``<uri>:<line>: ...`` for a line that is not
    a JSON object. A missing file or non-UTF-8 content is BadInput too (from the store)."""
    text = store.read_text(uri)
    for n, line in enumerate(lines(text), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(f"{uri}:{n}: not valid JSON ({e.msg} at column {e.colno})") from e
        if not isinstance(row, dict):
            raise BadInput(f"{uri}:{n}: expected a JSON object, got {type(row).__name__}")
        yield n, row


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Writes rows as JSON lines (UTF-8, one object per line); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def require(uri: str, line: int, row: dict, fields: dict[str, type | tuple[type, ...]]) -> None:
    """BadInput naming file and line when a field of an artifact row is missing or of the wrong type."""
    for name, types in fields.items():
        if name not in row:
            raise BadInput(f"{uri}:{line}: missing field {name!r}")
        v = row[name]
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            ok = False
        else:
            ok = isinstance(v, types)
        if not ok:
            raise BadInput(f"{uri}:{line}: field {name!r} has the wrong type ({type(v).__name__})")


def expand(store: Store, uri: str) -> list[str]:
    """The JSONL files an artifact input names: the file itself, or every ``*.jsonl`` under a prefix ending
    in ``/`` (sorted; a chunked output). An empty prefix is BadInput."""
    if not uri.endswith("/"):
        return [uri]
    files = [u for u in store.list(uri) if u.endswith(".jsonl")]
    if not files:
        raise BadInput(f"{uri}: no .jsonl files under this prefix")
    return files


def read_artifact(store: Store, uri: str, fields: dict[str, type | tuple[type, ...]]) -> list[tuple[int, dict]]:
    """All rows of one of our JSONL artifacts, each checked for ``fields``; (line number, row) pairs."""
    rows = []
    for n, row in iter_jsonl(store, uri):
        require(uri, n, row, fields)
        rows.append((n, row))
    return rows


def read_prepared(store: Store, uri: str) -> list[dict]:
    """Prepared prompts (the prepare stage's shards and held-out file)."""
    rows = read_artifact(store, uri, {"prompt_id": str, "messages": list})
    seen: dict[str, int] = {}
    for n, row in rows:
        pid = row["prompt_id"]
        if pid in seen:
            raise BadInput(f"{uri}:{n}: duplicate prompt_id {pid!r} (first on line {seen[pid]})")
        seen[pid] = n
    return [row for _, row in rows]


# --- user prompt sources ------------------------------------------------------------------------------


@dataclass
class PromptSource:
    """The valid prompts of a source file, in file order, and what was wrong with the rest."""

    uri: str
    prompts: list[dict] = field(default_factory=list)
    lines: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return len(self.problems)


def _messages(raw: object) -> tuple[list[dict] | None, str | None]:
    if not isinstance(raw, list) or not raw:
        return None, "messages: must be a non-empty list of {role, content} objects"
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            return None, f"messages.{i}: must be an object with role and content"
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            # the value is user data (could be prompt text): the line number locates it
            return None, f"messages.{i}.role: must be one of {', '.join(ROLES)}"
        if not isinstance(content, str) or not content.strip():
            return None, f"messages.{i}.content: must be a non-empty string"
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        return (
            None,
            f"messages.{len(out) - 1}.role: the last message must be the user's (the model answers it)",
        )
    return out, None


def normalise(row: object, uri: str, line: int) -> tuple[dict | None, str | None]:
    """The prepared-prompt row for one source line, or the reason it is invalid (``field: reason``)."""
    if not isinstance(row, dict):
        return None, f"expected a JSON object, got {type(row).__name__}"
    pid = row.get("id")
    if not isinstance(pid, str) or not pid.strip():
        return None, "id: required, a non-empty string"
    has_prompt, has_messages = "prompt" in row, "messages" in row
    if has_prompt == has_messages:
        return None, "set exactly one of prompt and messages"
    if has_prompt:
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            return None, "prompt: must be a non-empty string"
        messages: list[dict] | None = [{"role": "user", "content": row["prompt"]}]
    else:
        messages, why = _messages(row["messages"])
        if why:
            return None, why
    task = row.get("task")
    if task is not None and (not isinstance(task, str) or not task):
        return None, "task: must be a non-empty string when given"
    out = {"prompt_id": pid, "messages": messages, "task": task, "source": {"uri": uri, "line": line}}
    if "meta" in row:
        if not isinstance(row["meta"], dict):
            return None, "meta: must be an object when given"
        out["meta"] = row["meta"]
    if "reference" in row:
        why = _reference_problem(row["reference"])
        if why:
            return None, f"reference: {why}"
        out["reference"] = row["reference"]
    return out, None


def _reference_problem(ref: object) -> str | None:
    """Why a ``reference`` value is malformed, or None."""

    def one(v: object) -> bool:
        if isinstance(v, bool):
            return False
        if isinstance(v, str):
            return bool(v.strip())
        return isinstance(v, int | float) and math.isfinite(v)

    if isinstance(ref, list):
        if not ref or not all(one(v) for v in ref):
            return "must be a non-empty list of non-empty strings or finite numbers"
        return None
    if not one(ref):
        # the type, never the value: a reference is data and the message reaches Temporal's history
        return f"must be a non-empty string, a finite number or a list of them, got {type(ref).__name__}"
    return None


def strip_reference(row: dict) -> dict:
    """The row without its ``reference``: what a training-side artifact may contain."""
    return {k: v for k, v in row.items() if k != "reference"}


def read_prompts(store: Store, uri: str, on_invalid: str = "fail") -> PromptSource:
    """Reads and normalises a user prompt source. ``on_invalid`` is ``"fail"`` (BadInput listing up to
    ``MAX_LISTED`` problems as ``line N: reason``) or ``"skip"`` (drop and count them)."""
    src = PromptSource(uri)
    text = store.read_text(uri)
    for n, line in enumerate(lines(text), start=1):
        if not line.strip():
            continue
        src.lines += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            src.problems.append(f"line {n}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        prompt, why = normalise(row, uri, n)
        if why:
            src.problems.append(f"line {n}: {why}")
        else:
            src.prompts.append(prompt)
    if src.problems and on_invalid == "fail":
        listed = "; ".join(src.problems[:MAX_LISTED])
        more = len(src.problems) - MAX_LISTED
        tail = f"; and {more} more" if more > 0 else ""
        raise BadInput(
            f"{uri}: {src.invalid} invalid prompt line(s) (set prompts.onInvalid to 'skip' to drop them): "
            f"{listed}{tail}"
        )
    return src
