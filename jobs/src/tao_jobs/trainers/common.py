"""What every trainer shares: the model and LoRA set-up, the TRL/Trainer arguments, progress lines, checkpoints in
the store (and resuming from them), the outputs (adapter + merged model), ``klToBase`` and the manifest.

The stage's driver (``tao_jobs.stages.train``) uses these pieces in order: load the algorithm's rows, load the
base model, find the last complete checkpoint, build the algorithm's trainer, train, save, measure, publish.

Checkpoints: the Trainer saves one every ``checkpoint_every`` steps (about 10% of the run; the environment
variable ``TAO_CHECKPOINT_STEPS`` overrides it) into its local output directory; a callback uploads it to
``<output>checkpoints/checkpoint-<step>/`` and writes ``tao-complete.json`` there last, then deletes the
older checkpoint. A retry of the stage (same memo key, same output prefix) resumes from the newest checkpoint
that has the marker: weights (or adapter), optimizer, scheduler, RNG states and the log history. The
``resumedFromStep`` metric says where it resumed (0: from scratch).

Distributed (``torchrun`` / ``accelerate launch``): every rank trains; only rank 0 (``RANK`` unset or 0)
prints progress, uploads checkpoints, writes the outputs and the manifest. Other ranks return an empty dict.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..contract import progress
from ..store import Store, join

STAGE = "train"
MAX_LENGTH = 1024
CHECKPOINT_MARKER = "tao-complete.json"
CHECKPOINT_FRACTION = 0.1
NO_ADAPTER_README = """# No adapter

This model was trained with `fullFineTune: true`: every weight was updated, so there is no LoRA adapter.
The trained model is the `merged/` output beside this directory (a plain Hugging Face model directory).
"""


def rank() -> int:
    return int(os.environ.get("RANK", 0))


def is_main() -> bool:
    """Only rank 0 writes outputs, checkpoints and the manifest (and prints progress)."""
    return rank() == 0


def world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", 1)))


@dataclass
class Loaded:
    """An algorithm's training rows, as read from the dataset stage's file."""

    rows: list[dict]  # what the trainer gets (TRL format, or the algorithm's own)
    kl_rows: list[dict]  # {prompt, chosen} rows on which klToBase is measured (empty: every row's completion)
    records_in: int  # rows in the file
    metrics: dict = field(default_factory=dict)  # e.g. droppedLowMargin


def device_and_dtype():
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return "cuda", (torch.bfloat16 if bf16 else torch.float32), bf16
    return "cpu", torch.float32, False


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def progress_callback(keep: tuple[str, ...]):
    """One progress line per logging step with the ``keep`` log keys (the executor turns them into heartbeats)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero:
                return
            logs = logs or {}
            fields = {k.replace("/", "_"): round(float(v), 5) for k, v in logs.items() if k in keep}
            progress(STAGE, state.global_step, state.max_steps, **fields)

    return ProgressCallback()


def lora_config(params: dict):
    """The PEFT LoRA config of ``params.lora``; None with ``fullFineTune`` (all weights are trained)."""
    if params.get("fullFineTune"):
        return None
    from peft import LoraConfig

    lora = params["lora"]
    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["targetModules"],
        task_type="CAUSAL_LM",
    )


def steps_per_epoch(rows: int, params: dict) -> int:
    return max(1, math.ceil(rows / (params["batchSize"] * world_size())))


def total_steps(rows: int, params: dict) -> int:
    if params["maxSteps"] > 0:
        return params["maxSteps"]
    return max(1, math.ceil(steps_per_epoch(rows, params) * params["epochs"]))


def checkpoint_every(total: int) -> int:
    env = os.environ.get("TAO_CHECKPOINT_STEPS")
    if env:
        return max(1, int(env))
    return max(1, math.ceil(total * CHECKPOINT_FRACTION))


def trainer_args(params: dict, output_dir: Path, device: str, bf16: bool, save_steps: int) -> dict:
    """Keyword arguments every trainer's config shares (TRL configs and plain ``TrainingArguments``)."""
    return {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": params["batchSize"],
        "learning_rate": params["learningRate"],
        "num_train_epochs": params["epochs"],
        "max_steps": params["maxSteps"],
        "seed": params["seed"],
        "data_seed": params["seed"],
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 1,
        "report_to": "none",
        "use_cpu": device == "cpu",
        "bf16": bf16,
        "activation_checkpointing": False,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def trl_trainer(trainer_cls, ctx, args):
    """A TRL trainer (DPO, KTO, SFT) on the loaded rows, with the model, tokenizer, LoRA config and callbacks
    every algorithm shares; only the algorithm's config object differs."""
    from datasets import Dataset

    return trainer_cls(
        model=ctx.model,
        args=args,
        train_dataset=Dataset.from_list(ctx.loaded.rows),
        processing_class=ctx.tokenizer,
        peft_config=ctx.peft_config,
        callbacks=ctx.callbacks,
    )


def mean_of(logs: list[dict], key: str) -> float | None:
    """Mean of a log key over the steps that logged it (finite values only); None when none did (JSON has no
    NaN: a NaN would make the manifest unreadable)."""
    vals = [float(h[key]) for h in logs if key in h and math.isfinite(float(h[key]))]
    return sum(vals) / len(vals) if vals else None


def loss_metrics(history: list[dict], steps_per_epoch: int, averaged: dict[str, str]) -> dict:
    """``loss`` (last step) and ``firstLoss`` from the trainer's per-step logs, plus each ``averaged`` log key
    (metric name -> log key) averaged over the last epoch's steps (single steps are noisy: small batches); None
    when no step of the last epoch logged it (e.g. KTO's margin needs both labels in a batch)."""
    logs = [h for h in history if "loss" in h]
    if not logs:
        return {}
    tail = logs[-max(1, min(steps_per_epoch, len(logs))) :]
    return {
        "loss": float(logs[-1]["loss"]),
        "firstLoss": float(logs[0]["loss"]),
        **{name: mean_of(tail, key) for name, key in averaged.items()},
    }


class Checkpoints:
    """Training checkpoints under ``<output>checkpoints/`` in the store (see the module docstring)."""

    def __init__(self, store: Store, output: str):
        self.store = store
        self.prefix = join(output, "checkpoints") + "/"

    def _objects(self) -> list[str]:
        return self.store.list(self.prefix)

    def complete_steps(self) -> list[int]:
        pattern = re.compile(r"/checkpoint-(\d+)/" + re.escape(CHECKPOINT_MARKER) + "$")
        return sorted(int(m.group(1)) for uri in self._objects() if (m := pattern.search(uri)))

    def latest(self) -> tuple[int, Path] | None:
        """(step, local directory) of the newest complete checkpoint, or None."""
        steps = self.complete_steps()
        if not steps:
            return None
        step = steps[-1]
        return step, self.store.local_dir(f"{self.prefix}checkpoint-{step}/")

    def upload(self, step: int, local: Path) -> None:
        """Uploads a Trainer checkpoint directory, the marker last, then deletes every older checkpoint."""
        dest = f"{self.prefix}checkpoint-{step}/"
        files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
        for rel in files:
            self.store.upload_file(local / rel, dest + rel)
        self.store.write_text(dest + CHECKPOINT_MARKER, json.dumps({"step": step, "files": files}))
        self._delete(lambda uri: not uri.startswith(dest))

    def clear(self) -> None:
        self._delete(lambda uri: True)
        if self.prefix.startswith("file://"):  # a local store keeps the emptied directories: remove them
            root = Path(unquote(urlparse(self.prefix).path))
            for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(d.iterdir()):
                    d.rmdir()
            if root.is_dir() and not any(root.iterdir()):
                root.rmdir()

    def _delete(self, which) -> None:
        objects = [u for u in self._objects() if which(u)]
        # Markers first: a checkpoint half deleted is never taken for a complete one.
        for uri in sorted(objects, key=lambda u: not u.endswith(CHECKPOINT_MARKER)):
            self.store.delete(uri)

    def callback(self):
        from transformers import TrainerCallback

        ckpt = self

        class CheckpointCallback(TrainerCallback):
            def on_save(self, args, state, control, **kwargs):
                barrier()  # every rank has written its part of the checkpoint
                if state.is_world_process_zero:
                    local = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                    if local.is_dir():
                        ckpt.upload(state.global_step, local)
                        progress(STAGE, state.global_step, state.max_steps, checkpoint=state.global_step)

        return CheckpointCallback()


@dataclass
class Context:
    """What an algorithm's ``build`` gets."""

    params: dict
    model: object  # the base model (transformers), on the CPU, in ``dtype``
    tokenizer: object
    loaded: Loaded
    peft_config: object  # LoraConfig, or None for full fine-tuning
    args: dict  # trainer_args(...)
    callbacks: list
    model_dir: Path
    device: str
