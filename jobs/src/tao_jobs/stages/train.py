"""train: fine-tune the base model on the dataset stage's rows with ``params.algorithm`` (dpo, sft, kto, grpo).

This module is the stage's driver; the algorithms live in ``tao_jobs.trainers`` (one module each;
``trainers/common.py`` has the pieces they share):

- ``dpo``: TRL ``DPOTrainer``, sigmoid loss plus ``sftWeight`` times the chosen answer's NLL (RPO).
- ``sft``: TRL ``SFTTrainer`` on each prompt's best sample, loss on the completion tokens only.
- ``kto``: TRL ``KTOTrainer`` on unpaired desirable / undesirable samples.
- ``grpo``: offline group-relative policy optimisation: a clipped advantage-weighted policy-gradient loss on
  the pre-scored samples with a KL penalty (``klCoef``) to the base model.

All train a LoRA adapter (``params.lora``) by default, or every weight with ``fullFineTune: true``. Outputs
``adapter/`` (PEFT, safetensors; with full fine-tuning only a README saying there is none) and ``merged/``
(safetensors, with the tokenizer): the next stages load ``merged/`` like any model, and forgetting the merge is
the classic "the model did not change" bug. Checkpoints go to ``<output>checkpoints/`` during training and a
retry resumes from the last one (``resumedFromStep``). ``klToBase`` measures the drift: the mean per-token
KL(tuned || base) over the good responses (teacher-forced), tracked per round because proxy rewards can keep
rising while quality falls. Under ``torchrun`` only rank 0 writes outputs and the manifest.

The flow (``train``): load the algorithm's rows, load the base model, find the last complete checkpoint under
``<output>checkpoints/``, build the algorithm's trainer, train (resuming when a checkpoint exists), save the
adapter and the merged model, measure the drift from the base, publish, delete the checkpoints.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from pathlib import Path

from ..contract import InvalidSpec, progress
from ..manifest import publish
from ..models.drift import kl_to_base
from ..models.local import local_model_dir
from ..store import Store
from ..trainers import ALGORITHMS, get
from ..trainers.common import (
    NO_ADAPTER_README,
    STAGE,
    Checkpoints,
    Context,
    barrier,
    checkpoint_every,
    device_and_dtype,
    is_main,
    lora_config,
    progress_callback,
    steps_per_epoch,
    total_steps,
    trainer_args,
)


def run(spec: dict, store: Store) -> dict:
    algorithm = spec["params"].get("algorithm", "dpo")
    if algorithm not in ALGORITHMS:
        raise InvalidSpec([f"params.algorithm: must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"])
    return train(spec, store, get(algorithm))


def _save_outputs(trainer, tokenizer, out: Path, full: bool) -> None:
    """``adapter/`` and ``merged/`` (safetensors). Called on every rank: saving a sharded (FSDP / ZeRO-3) full
    fine-tune gathers the weights collectively; only rank 0 writes."""
    if full:
        trainer.save_model(str(out / "merged"))  # consolidates sharded weights; rank 0 writes
        if is_main():
            (out / "merged" / "training_args.bin").unlink(missing_ok=True)  # a pickle nobody needs
            tokenizer.save_pretrained(out / "merged")
            (out / "adapter").mkdir(parents=True, exist_ok=True)
            (out / "adapter" / "README.md").write_text(NO_ADAPTER_README, encoding="utf-8")
        return
    if is_main():
        peft_model = trainer.accelerator.unwrap_model(trainer.model)
        peft_model.save_pretrained(out / "adapter", safe_serialization=True)
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(out / "merged", safe_serialization=True)
        tokenizer.save_pretrained(out / "merged")


def train(spec: dict, store: Store, algorithm) -> dict:
    """Runs ``algorithm`` (a module of this package: ``NAME``, ``PROGRESS_KEYS``, ``load``, ``build``,
    ``metrics``) on the spec's dataset and publishes ``adapter/`` + ``merged/``."""
    started = time.time()
    params = spec["params"]
    loaded = algorithm.load(store, spec["inputs"]["dataset"], params)
    model_dir = local_model_dir(store, spec["inputs"]["model"])
    main = is_main()
    if main:
        progress(STAGE, 0, 1, algorithm=algorithm.NAME, rows=len(loaded.rows))

    import torch
    from datasets.utils import logging as datasets_logging
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    datasets_logging.disable_progress_bar()

    device, dtype, bf16 = device_and_dtype()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    full = bool(params.get("fullFineTune"))
    checkpoints = Checkpoints(store, spec["output"])
    resume = checkpoints.latest()
    workdir = Path(tempfile.mkdtemp(prefix="tao-train-"))
    try:
        total = total_steps(len(loaded.rows), params)
        set_seed(params["seed"])  # before the adapter's random init, whoever creates it: the same seed, the same run
        ctx = Context(
            params=params,
            model=model,
            tokenizer=tokenizer,
            loaded=loaded,
            peft_config=lora_config(params),
            args=trainer_args(params, workdir / "trainer", device, bf16, checkpoint_every(total)),
            callbacks=[progress_callback(algorithm.PROGRESS_KEYS), checkpoints.callback()],
            model_dir=model_dir,
            device=device,
        )
        trainer = algorithm.build(ctx)
        trainer.remove_callback(PrinterCallback)  # stdout carries JSON lines only
        result = trainer.train(resume_from_checkpoint=str(resume[1]) if resume else None)
        metrics = algorithm.metrics(trainer.state.log_history, steps_per_epoch(len(loaded.rows), params))
        if not all(math.isfinite(metrics.get(k) or 0.0) for k in ("loss", "firstLoss")):
            raise RuntimeError(f"training diverged: non-finite loss ({metrics})")
        steps = int(trainer.state.global_step)

        out = workdir / "out"
        _save_outputs(trainer, tokenizer, out, full)
        barrier()
        del trainer, model, ctx
        if not main:
            return {}
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        on = "cuda" if device == "cuda" else "cpu"
        merged = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=dtype).to(on).eval()
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(on).eval()
        kl_rows = loaded.kl_rows or [{"prompt": r["prompt"], "chosen": r["completion"]} for r in loaded.rows]
        metrics["klToBase"] = kl_to_base(merged, base, tokenizer, kl_rows, on)
        del merged, base
        metrics |= {
            "steps": steps,
            "trainSamples": len(loaded.rows),
            **loaded.metrics,
            "trainSeconds": round(float(result.metrics.get("train_runtime", 0.0)), 2),
            "device": device,
            "algorithm": algorithm.NAME,
            "fullFineTune": full,
            "resumedFromStep": resume[0] if resume else 0,
        }
        manifest = publish(
            store,
            spec,
            out,
            outputs={"adapter": "adapter/", "merged": "merged/"},
            records_in=loaded.records_in,
            records_out=len(loaded.rows),
            metrics=metrics,
            started_at=started,
        )
        checkpoints.clear()  # the outputs are published: a retry reuses the manifest, never the checkpoints
        return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
