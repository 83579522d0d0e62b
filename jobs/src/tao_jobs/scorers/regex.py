"""``regex``: does the text match a pattern?

Params: ``pattern`` (Python ``re`` syntax, required), ``mode`` (default ``"search"``), ``flags`` (optional,
any of ``"i"`` ignore case, ``"m"`` multiline, ``"s"`` dot matches newline, ``"x"`` verbose).

Values:
- ``search``: 1.0 if the pattern matches anywhere in the text, else 0.0.
- ``fullmatch``: 1.0 if the pattern matches the whole text, else 0.0 (surrounding whitespace is *not*
  stripped).
- ``fraction``: total length of the non-overlapping matches (``re.finditer``) divided by ``len(text)``; 0.0
  for an empty text. Empty matches count 0 characters.

Details: ``{"matched": bool}`` for search/fullmatch, ``{"matchedChars": int, "length": int}`` for fraction.
"""

from __future__ import annotations

import re

from .base import RuleScorer, ScorerParamsError, check_keys

MODES = ("search", "fullmatch", "fraction")
FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


class RegexScorer(RuleScorer):
    def __init__(self, params: dict):
        problems = check_keys(params, {"pattern", "mode", "flags"})
        flags = 0
        raw_flags = params.get("flags", "")
        if not isinstance(raw_flags, str):
            problems.append("flags: must be a string of flag letters (i, m, s, x)")
        else:
            for c in raw_flags:
                if c not in FLAGS:
                    problems.append(f"flags: unknown flag {c!r} (allowed: i, m, s, x)")
                else:
                    flags |= FLAGS[c]
        self.mode = params.get("mode", "search")
        if self.mode not in MODES:
            problems.append(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        pattern = params.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            problems.append("pattern: required, a non-empty regular expression string")
        else:
            try:
                self.regex = re.compile(pattern, flags)
            except re.error as e:
                problems.append(f"pattern: not a valid regular expression ({e})")
        if problems:
            raise ScorerParamsError(problems)

    def score_text(self, text: str) -> tuple[float, object]:
        if self.mode == "search":
            ok = self.regex.search(text) is not None
            return (1.0 if ok else 0.0), {"matched": ok}
        if self.mode == "fullmatch":
            ok = self.regex.fullmatch(text) is not None
            return (1.0 if ok else 0.0), {"matched": ok}
        matched = sum(m.end() - m.start() for m in self.regex.finditer(text))
        score = matched / len(text) if text else 0.0
        return score, {"matchedChars": matched, "length": len(text)}
