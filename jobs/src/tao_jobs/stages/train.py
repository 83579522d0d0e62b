"""train: DPO with a LoRA adapter (TRL ``DPOTrainer`` + PEFT) on the preference pairs of the dataset stage.

The loss is DPO's sigmoid loss plus ``SFT_WEIGHT`` times the negative log-likelihood of the chosen response
(TRL ``loss_type=["sigmoid", "sft"]``; RPO, Pang et al. 2024). Pure DPO on off-policy best-vs-worst pairs
mostly learns to push the (already unlikely) rejected samples down, and can lower the chosen ones too
("likelihood displacement"): on the demo it barely moved greedy outputs at safe learning rates and collapsed
into gibberish at higher ones, while the NLL term anchors it on the chosen answers. A ``sftWeight`` param,
when the spec carries one, overrides the constant; 0 gives pure DPO.

The reference model is the base with the adapter disabled (TRL's default for a fresh PEFT adapter), so no
second copy of the model is loaded. Outputs both ``adapter/`` (PEFT, safetensors) and ``merged/``
(``merge_and_unload``, safetensors, with the tokenizer): the next stages load ``merged/`` like any model,
and forgetting the merge is the classic "the model did not change" bug.

After training, ``klToBase`` measures the drift: the mean per-token KL(tuned || base) over the chosen
responses (teacher-forced), tracked per round because proxy rewards can keep rising while quality falls.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

from ..contract import BadInput, progress
from ..manifest import publish
from ..models.drift import kl_to_base
from ..models.local import local_model_dir
from ..prompts import read_artifact
from ..store import Store

STAGE = "train"
SFT_WEIGHT = 1.0
DPO_FIELDS: dict = {"prompt": list, "chosen": list, "rejected": list}


def _load_pairs(store: Store, uri: str, min_margin: float) -> tuple[list[dict], int]:
    """The pairs to train on and how many were dropped for a margin below ``minMargin``."""
    rows = read_artifact(store, uri, DPO_FIELDS)
    if not rows:
        raise BadInput(f"{uri}: the preference dataset is empty")
    pairs, dropped = [], 0
    for _, r in rows:
        margin = r.get("margin")
        if isinstance(margin, int | float) and margin < min_margin:
            dropped += 1
            continue
        pairs.append({"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]})
    if not pairs:
        raise BadInput(f"{uri}: all {len(rows)} pairs have a margin below minMargin {min_margin}")
    return pairs, dropped


def _callback():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """One progress line per logging step (the executor turns them into heartbeats)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            keep = ("loss", "rewards/margins", "rewards/accuracies", "learning_rate")
            fields = {k.replace("/", "_"): round(float(v), 5) for k, v in logs.items() if k in keep}
            progress(STAGE, state.global_step, state.max_steps, **fields)

    return ProgressCallback()


def _device_and_dtype():
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return "cuda", (torch.bfloat16 if bf16 else torch.float32), bf16
    return "cpu", torch.float32, False


def _loss(params: dict) -> dict:
    """DPOConfig loss settings: sigmoid DPO plus the chosen-NLL term (see the module docstring)."""
    weight = float(params.get("sftWeight", SFT_WEIGHT))
    if weight <= 0:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, weight]}


def _mean(logs: list[dict], key: str) -> float:
    vals = [float(h[key]) for h in logs if key in h]
    return sum(vals) / len(vals) if vals else math.nan


def log_metrics(history: list[dict], steps_per_epoch: int) -> dict:
    """From the trainer's per-step logs: ``loss`` (last step) and ``firstLoss``; ``rewardMargin`` and
    ``rewardAccuracy`` averaged over the last epoch's steps (single steps are noisy: small batches)."""
    logs = [h for h in history if "loss" in h]
    if not logs:
        return {}
    tail = logs[-max(1, min(steps_per_epoch, len(logs))) :]
    return {
        "loss": float(logs[-1]["loss"]),
        "firstLoss": float(logs[0]["loss"]),
        "rewardMargin": _mean(tail, "rewards/margins"),
        "rewardAccuracy": _mean(tail, "rewards/accuracies"),
    }


def run(spec: dict, store: Store) -> dict:
    started = time.time()
    params = spec["params"]
    pairs, dropped = _load_pairs(store, spec["inputs"]["dataset"], params["minMargin"])
    model_dir = local_model_dir(store, spec["inputs"]["model"])
    progress(STAGE, 0, 1, pairs=len(pairs))

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import DPOConfig, DPOTrainer

    hf_logging.disable_progress_bar()

    device, dtype, bf16 = _device_and_dtype()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    lora = params["lora"]
    peft_config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["targetModules"],
        task_type="CAUSAL_LM",
    )
    workdir = Path(tempfile.mkdtemp(prefix="tao-train-"))
    try:
        args = DPOConfig(
            output_dir=str(workdir / "trainer"),
            per_device_train_batch_size=params["batchSize"],
            learning_rate=params["learningRate"],
            num_train_epochs=params["epochs"],
            max_steps=params["maxSteps"],
            beta=params["beta"],
            seed=params["seed"],
            data_seed=params["seed"],
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=device == "cpu",
            bf16=bf16,
            activation_checkpointing=False,
            disable_tqdm=True,
            dataloader_num_workers=0,
            max_length=1024,
            **_loss(params),
        )
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(pairs),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[_callback()],
        )
        trainer.remove_callback(PrinterCallback)  # stdout carries JSON lines only
        result = trainer.train()
        steps_per_epoch = math.ceil(len(pairs) / params["batchSize"])
        metrics = log_metrics(trainer.state.log_history, steps_per_epoch)
        if not all(math.isfinite(metrics.get(k, 0.0)) for k in ("loss", "firstLoss")):
            raise RuntimeError(f"training diverged: non-finite loss ({metrics})")

        out = workdir / "out"
        peft_model = trainer.model
        peft_model.save_pretrained(out / "adapter", safe_serialization=True)
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(out / "merged", safe_serialization=True)
        tokenizer.save_pretrained(out / "merged")

        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(merged.device).eval()
        merged.eval()
        metrics["klToBase"] = kl_to_base(merged, base, tokenizer, pairs, str(merged.device))
        metrics |= {
            "steps": int(trainer.state.global_step),
            "trainSamples": len(pairs),
            "droppedLowMargin": dropped,
            "trainSeconds": round(float(result.metrics.get("train_runtime", 0.0)), 2),
            "device": device,
        }
        del trainer, model, base, merged
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return publish(
            store,
            spec,
            out,
            outputs={"adapter": "adapter/", "merged": "merged/"},
            records_in=len(pairs) + dropped,
            records_out=len(pairs),
            metrics=metrics,
            started_at=started,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
