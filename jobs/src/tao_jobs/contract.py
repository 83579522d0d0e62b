"""The container contract shared by every stage (docs/design.md#rule-13).

Exit codes: 0 success (outputs and manifest written), 64 invalid stage spec, 65 missing or corrupt input,
anything else a crash the orchestrator may retry. Progress goes to stdout as JSON lines; a one-line reason
for a failure goes to the termination-message file (``/dev/termination-log`` on Kubernetes, or the file
named by ``TAO_TERMINATION_LOG`` when run locally).
"""

from __future__ import annotations

import json
import os
import sys
import time

EXIT_OK = 0
EXIT_INVALID_SPEC = 64
EXIT_BAD_INPUT = 65


class InvalidSpec(Exception):
    """The stage spec is wrong. Carries every problem as ``path: reason``. Exit 64, never retried."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stage spec: " + "; ".join(problems))


class BadInput(Exception):
    """An input artifact is missing or corrupt. The message names the file (and line). Exit 65."""


def emit(event: str, **fields: object) -> None:
    """Writes one JSON line to stdout; the executor parses these for heartbeats."""
    line = json.dumps({"event": event, "ts": round(time.time(), 3), **fields}, default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def progress(stage: str, done: int, total: int, **extra: object) -> None:
    emit("progress", stage=stage, done=done, total=total, **extra)


def write_reason(reason: str) -> None:
    """Writes the one-line failure reason where the executor (or kubelet) picks it up."""
    path = os.environ.get("TAO_TERMINATION_LOG", "/dev/termination-log")
    one_line = " ".join(reason.split())[:4000]
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(one_line)
    except OSError:
        pass  # no termination-log file outside a pod: stderr still has the reason
