"""Rewards for bench/results.py's controls (``python`` scorer functions; bench/ is on the path there)."""

from __future__ import annotations

import hashlib


def random_reward(prompt: dict, text: str) -> float:
    """The random-reward control: a score in [0, 1) drawn from a hash of (prompt, sample text), so it is
    reproducible yet carries no information about the answer (spurious rewards "improve" some models)."""
    h = hashlib.sha256(f"{prompt['prompt_id']}\0{text}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64
