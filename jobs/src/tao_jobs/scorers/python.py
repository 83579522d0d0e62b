"""``python``: a user-supplied verifier function, imported by module path.

Params:
- ``module`` (required): ``"package.module:function"``. The module must be importable in the job's Python
  (installed in the image, or on ``PYTHONPATH``); ``function`` may be a dotted attribute path
  (``"pkg.mod:Class.method"``).
- ``args`` (optional object): extra keyword arguments passed to every call.
- ``reference`` (default false): true makes it a reference verifier (evaluation only): it is called with the
  prompt's gold answer as ``reference=`` (the row's ``reference`` as given: a string, a number or a list), and
  abstains (score ``None``, ``{"error": "no reference"}``) on a prompt without one.

The function is called once per sample as ``function(prompt, text, **args)`` (``function(prompt, text,
reference=..., **args)`` with ``reference: true``) where ``prompt`` is the prepared prompt row
(``{"prompt_id", "messages", "task", "meta"?, ...}``) and ``text`` the sample's text. It returns a
score, or ``(score, details)`` with ``details`` JSON-serialisable (anything else is replaced by its
``repr``). A score is a real number in [0, 1] (``True``/``False`` count as 1.0/0.0).

Checked when the plan is built, before any work (``ScorerParamsError``, so the stage exits 64): the
``module:function`` form, the import itself (any exception while importing, with its message), the
attribute, that it is callable, and that its signature accepts ``(prompt, text, **args)``.

The function runs in the stage's own process, sequentially: it is trusted code from the image (untrusted
model output is only its argument). To execute generated code, run it in a subprocess or sandbox inside
the verifier, as the ``sql`` scorer does for queries.

Values: the function's score. A call that raises, or returns something that is not a score in [0, 1]
(``None``, NaN, 1.5, a string...), scores 0.0 with ``{"error": "<ExceptionType>: <message>"}`` (or
``{"error": "returned ..."}``) as details and is counted in ``stats()["errors"]``. Details otherwise: what the
function returned as details, or ``None``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import threading

from .base import Scorer, ScorerParamsError, check_keys

MAX_ERROR_CHARS = 500


def _load(spec: str):
    """The callable named by ``module:function``; ScorerParamsError-style problem strings on failure."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"must be 'package.module:function', got {spec!r}")
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import-time failure is a params problem
        raise ValueError(f"cannot import {module_name!r} ({type(e).__name__}: {e})") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from e
    if not callable(obj):
        raise ValueError(f"{spec} is not callable ({type(obj).__name__})")
    return obj


def _jsonable(details: object) -> object:
    try:
        json.dumps(details)
        return details
    except (TypeError, ValueError):
        return repr(details)


def _as_score(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0:
        return float(value)
    return None


class PythonScorer(Scorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"module", "args", "reference"})
        spec = params.get("module")
        self.needs_reference = params.get("reference", False)
        if not isinstance(self.needs_reference, bool):
            problems.append(f"reference: must be true or false, got {self.needs_reference!r}")
            self.needs_reference = False
        self.args = params.get("args", {})
        if not isinstance(self.args, dict):
            problems.append("args: must be an object of keyword arguments")
            self.args = {}
        if self.needs_reference and "reference" in self.args:
            problems.append("args.reference: reserved for the prompt's reference (set reference: true)")
        self.function = None
        if not isinstance(spec, str) or not spec:
            problems.append("module: required, 'package.module:function'")
        else:
            try:
                self.function = _load(spec)
            except ValueError as e:
                problems.append(f"module: {e}")
        if self.function is not None:
            try:
                extra = {"reference": None} if self.needs_reference else {}
                inspect.signature(self.function).bind({}, "", **extra, **self.args)
            except TypeError as e:
                shape = "(prompt, text, reference=..., **args)" if self.needs_reference else "(prompt, text, **args)"
                problems.append(f"args: {spec} does not accept {shape}: {e}")
            except ValueError:
                pass  # no introspectable signature (a builtin): found out at the first call
        if problems:
            raise ScorerParamsError(problems)
        self.spec = spec
        self._lock = threading.Lock()
        self._calls = 0
        self._errors = 0

    def _score_one(self, prompt: dict, text: str) -> tuple[float | None, object]:
        extra = {}
        if self.needs_reference:
            if prompt.get("reference") is None:
                return None, {"error": "no reference"}
            extra = {"reference": prompt["reference"]}
        try:
            out = self.function(prompt, text, **extra, **self.args)
        except Exception as e:  # noqa: BLE001 - a verifier's failure is that sample's score, counted
            return self._error(f"{type(e).__name__}: {e}")
        details = None
        if isinstance(out, tuple):
            if len(out) != 2:
                return self._error(f"returned a tuple of {len(out)} items, expected (score, details)")
            out, details = out
        score = _as_score(out)
        if score is None:
            return self._error(f"returned {out!r}, expected a number in [0, 1]")
        return score, _jsonable(details)

    def _error(self, message: str) -> tuple[float, object]:
        with self._lock:
            self._errors += 1
        return 0.0, {"error": message[:MAX_ERROR_CHARS]}

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float, object]]:
        with self._lock:
            self._calls += len(texts)
        return [self._score_one(prompt, t) for t in texts]

    def stats(self) -> dict:
        return {"calls": self._calls, "errors": self._errors}
