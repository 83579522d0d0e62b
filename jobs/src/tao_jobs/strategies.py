"""Generation strategies (TAO's diverse candidates) and how samples are spread over strategies x temperatures.

A strategy only changes the messages sent to the model: it adds a system instruction. The training set is
built from the *original* prompt messages, so a tuned model learns to answer the plain prompt the way the
best strategy did (the strategy is distilled into the weights).

Assignment of the ``samplesPerPrompt`` samples of one prompt (round-robin, strategy varies fastest)::

    combos = [(s, t) for t in temperatures for s in strategies]
    sample i -> combos[i % len(combos)]

e.g. strategies ``[plain, concise]``, temperatures ``[0.7, 1.2]``, 6 samples:
``(plain, 0.7) (concise, 0.7) (plain, 1.2) (concise, 1.2) (plain, 0.7) (concise, 0.7)``. Every combination
gets ``samples // len(combos)`` or one more sample; choose ``samplesPerPrompt`` as a multiple of
``len(combos)`` for an even spread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SYSTEM_PROMPTS: dict[str, str | None] = {
    "plain": None,
    "cot": "Think step by step, then give the final answer.",
    "concise": "Answer as briefly as possible.",
    "json": 'Reply with a JSON object only, like {"answer": "..."}.',
}
STRATEGIES = tuple(SYSTEM_PROMPTS)


def build_messages(strategy: str, messages: list[dict]) -> list[dict]:
    """The messages sent to the model for a strategy.

    The strategy's instruction becomes the system message; an existing system message is kept after it
    (``instruction + "\\n\\n" + original``), so task instructions are never dropped.
    """
    if strategy not in SYSTEM_PROMPTS:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    instruction = SYSTEM_PROMPTS[strategy]
    msgs = [dict(m) for m in messages]
    if instruction is None:
        return msgs
    if msgs and msgs[0].get("role") == "system":
        msgs[0]["content"] = instruction + "\n\n" + str(msgs[0].get("content", ""))
        return msgs
    return [{"role": "system", "content": instruction}, *msgs]


@dataclass(frozen=True)
class SamplePlan:
    index: int
    strategy: str
    temperature: float


def assign(samples: int, strategies: list[str], temperatures: list[float]) -> list[SamplePlan]:
    """The (strategy, temperature) of each sample index of one prompt (see the module docstring)."""
    combos = [(s, t) for t in temperatures for s in strategies]
    return [SamplePlan(i, *combos[i % len(combos)]) for i in range(samples)]


def sample_seed(base_seed: int, round_: int, prompt_id: str, strategy: str, index: int) -> int:
    """A stable per-sample seed in [0, 2**31): sha256 of (seed, round, prompt id, strategy, sample index).

    Stable across processes and machines (unlike Python's ``hash``); one seed per request avoids the
    correlated samples a single seed broadcast over a batch gives.
    """
    key = f"{base_seed}\x1f{round_}\x1f{prompt_id}\x1f{strategy}\x1f{index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % (2**31)
