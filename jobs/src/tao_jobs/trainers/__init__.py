"""The train stage's algorithms, one module each, dispatched by ``params.algorithm``.

Each module has ``NAME``, ``PROGRESS_KEYS`` (log keys shown in progress lines), ``load(store, uri, params) ->
Loaded`` (the dataset stage's rows, checked), ``build(ctx) -> Trainer`` and ``metrics(log_history,
steps_per_epoch) -> dict``; ``tao_jobs.stages.train`` does the rest (model, LoRA, checkpoints, outputs, manifest).
"""

from __future__ import annotations

import importlib

ALGORITHMS = ("dpo", "sft", "kto", "grpo")


def get(name: str):
    """The module of algorithm ``name`` (one of ``ALGORITHMS``)."""
    if name not in ALGORITHMS:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")
