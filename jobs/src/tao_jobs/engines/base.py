"""The engine interface and the one place that picks an engine by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

ENGINES = ("transformers", "vllm")


@dataclass(frozen=True)
class Request:
    """One sample to generate. ``temperature == 0`` means greedy decoding (seed unused)."""

    messages: list[dict]
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (end of sequence) or "length" (max_tokens reached)
    tokens: int


class Engine(ABC):
    model_dir: Path

    @abstractmethod
    def generate(self, requests: list[Request]) -> list[Completion]:
        """One completion per request, in order. The chat template is applied with a generation prompt."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Frees the model (GPU memory) when an engine is done before the process ends."""


def open_engine(name: str, model_dir: Path, **options: object) -> Engine:
    """The engine named ``name`` loaded with the model in ``model_dir``. Heavy imports happen here."""
    if name == "transformers":
        from .transformers_engine import TransformersEngine

        return TransformersEngine(model_dir, **options)
    if name == "vllm":
        from .vllm_engine import VllmEngine

        return VllmEngine(model_dir, **options)
    raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
