"""grpo: offline group-relative policy optimisation on the pre-scored samples (a small ``Trainer`` subclass).

The dataset stage gives every sample of a prompt its group-relative advantage ``A = (s - mean) / (std + eps)``.
The samples were drawn from the round's base model, which is also the reference, so this is one GRPO update
with the behaviour policy = the reference = the base. Per completion token ``t`` with
``r_t = pi(y_t | x, y_<t) / pi_base(y_t | x, y_<t)``:

    loss_t = -min(r_t * A, clip(r_t, 1 - CLIP_EPS, 1 + CLIP_EPS) * A) + klCoef * (r_t - 1 - log r_t)

averaged over a sequence's completion tokens, then over the batch (GRPO's normalisation). The clip stops the
policy from moving far on one sample (a negative advantage would otherwise push a sample's likelihood towards
zero without bound). The KL term is the k3 estimator on tokens sampled from the base: an unbiased estimate of
KL(base || pi), which grows as pi drops probability the base gave, the failure mode of negative advantages.

The base log-probabilities are computed once before training (the model is still the base then, with or without
LoRA), so no second copy of the model is held during training, under FSDP / ZeRO-3 too. Rows whose completion
is cut off entirely by ``MAX_LENGTH`` are dropped (``droppedTruncated``).

Metrics: ``loss``/``firstLoss``; ``policyLoss`` (the clipped surrogate), ``kl`` (the k3 estimate, before
``klCoef``) and ``clipFraction`` (share of completion tokens whose ratio was clipped), averaged over the last
epoch's steps; ``groups`` (prompts) and ``meanAbsAdvantage``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

from ..contract import BadInput
from ..prompts import read_artifact
from ..store import Store
from .common import MAX_LENGTH, Context, Loaded, loss_metrics

NAME = "grpo"
FIELDS: dict = {"prompt": list, "completion": list, "advantage": (int, float)}
PROGRESS_KEYS = ("loss", "kl", "clip_fraction", "learning_rate")
CLIP_EPS = 0.2
REF_BATCH = 16


def load(store: Store, uri: str, params: dict) -> Loaded:
    rows = read_artifact(store, uri, FIELDS)
    if not rows:
        raise BadInput(f"{uri}: the GRPO dataset is empty")
    kept = []
    for n, r in rows:
        if not math.isfinite(r["advantage"]):
            raise BadInput(f"{uri}:{n}: advantage {r['advantage']!r} is not a finite number")
        kept.append({"prompt": r["prompt"], "completion": r["completion"], "advantage": float(r["advantage"])})
    kl_rows = [{"prompt": r["prompt"], "chosen": r["completion"]} for r in kept if r["advantage"] > 0]
    groups = len({(r.get("prompt_id") or repr(r["prompt"])) for _, r in rows})
    return Loaded(
        rows=kept,
        kl_rows=kl_rows,
        records_in=len(rows),
        metrics={"groups": groups, "meanAbsAdvantage": sum(abs(r["advantage"]) for r in kept) / len(kept)},
    )


def encode(tokenizer, prompt: list[dict], completion: list[dict]) -> tuple[list[int], int]:
    """(token ids of prompt + completion, number of prompt tokens), through the chat template. The completion
    starts where the prompt's and the full text's tokens diverge (as TRL does)."""
    p_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    f_text = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    p_ids = tokenizer(p_text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(f_text, add_special_tokens=False)["input_ids"]
    n = 0
    while n < min(len(p_ids), len(ids)) and p_ids[n] == ids[n]:
        n += 1
    return ids[:MAX_LENGTH], n


def _pad(rows: list[list], value) -> list[list]:
    width = max(len(r) for r in rows)
    return [r + [value] * (width - len(r)) for r in rows]


def collate(pad_id: int):
    """Right-padded batch: input_ids, attention_mask, completion_mask, ref_logps (per predicted token), advantage."""
    import torch

    def fn(features: list[dict]) -> dict:
        ids = _pad([f["input_ids"] for f in features], pad_id)
        attn = _pad([[1] * len(f["input_ids"]) for f in features], 0)
        comp = _pad([[0] * f["prompt_len"] + [1] * (len(f["input_ids"]) - f["prompt_len"]) for f in features], 0)
        ref = _pad([f["ref_logps"] for f in features], 0.0)
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": torch.tensor(attn, dtype=torch.long),
            "completion_mask": torch.tensor(comp, dtype=torch.long),
            "ref_logps": torch.tensor(ref, dtype=torch.float32),
            "advantage": torch.tensor([f["advantage"] for f in features], dtype=torch.float32),
        }

    return fn


def token_logps(model, batch: dict):
    """log pi(token_t | tokens_<t) for t >= 1, float32, shape [batch, length - 1]."""
    import torch

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1].float()
    targets = batch["input_ids"][:, 1:]
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def features(ctx: Context) -> tuple[list[dict], int]:
    """The training features with the base model's log-probabilities, and how many rows were dropped."""
    import torch

    tok, model = ctx.tokenizer, ctx.model
    feats, dropped = [], 0
    for r in ctx.loaded.rows:
        ids, n_prompt = encode(tok, r["prompt"], r["completion"])
        if len(ids) <= n_prompt or n_prompt == 0:
            dropped += 1
            continue
        feats.append({"input_ids": ids, "prompt_len": n_prompt, "advantage": r["advantage"]})
    if not feats:
        raise BadInput(f"every GRPO row's completion is cut off by the maximum length {MAX_LENGTH}")
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if ctx.device == "cuda" else "cpu"  # this rank's GPU
    model.to(device)
    was_training = model.training
    model.eval()
    fn = collate(pad)
    with torch.inference_mode():
        for start in range(0, len(feats), REF_BATCH):
            chunk = feats[start : start + REF_BATCH]
            batch = fn([f | {"ref_logps": [0.0]} for f in chunk])
            logps = token_logps(model, {k: v.to(device) for k, v in batch.items()}).cpu()
            for f, row in zip(chunk, logps, strict=True):
                f["ref_logps"] = row[: len(f["input_ids"]) - 1].tolist()
    model.train(was_training)
    return feats, dropped


def _trainer_class():
    import torch
    from transformers import Trainer

    class OfflineGRPOTrainer(Trainer):
        """``Trainer`` with the offline GRPO loss (module docstring); logs policy_loss, kl, clip_fraction."""

        def __init__(self, *args, kl_coef: float, clip_eps: float = CLIP_EPS, **kwargs):
            super().__init__(*args, **kwargs)
            self.kl_coef, self.clip_eps = kl_coef, clip_eps
            self._metrics: dict[str, list[float]] = defaultdict(list)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            logps = token_logps(model, inputs)
            mask = inputs["completion_mask"][:, 1:].to(logps.dtype)
            delta = logps - inputs["ref_logps"]
            ratio = torch.exp(delta)
            adv = inputs["advantage"].unsqueeze(-1)
            clipped = torch.clamp(ratio, 1 - self.clip_eps, 1 + self.clip_eps)
            policy = -torch.min(ratio * adv, clipped * adv)
            kl = ratio - 1 - delta
            tokens = mask.sum(-1).clamp(min=1)

            def seq_mean(x):
                return ((x * mask).sum(-1) / tokens).mean()

            loss = seq_mean(policy + self.kl_coef * kl)
            with torch.no_grad():
                was_clipped = ((ratio - clipped).abs() > 0).to(logps.dtype)
                for key, value in (("policy_loss", policy), ("kl", kl), ("clip_fraction", was_clipped)):
                    self._metrics[key].append(float(self.accelerator.gather_for_metrics(seq_mean(value)).mean()))
            return (loss, None) if return_outputs else loss

        def log(self, logs: dict, start_time: float | None = None) -> None:
            if "loss" in logs and self._metrics:
                logs = logs | {k: sum(v) / len(v) for k, v in self._metrics.items()}
                self._metrics.clear()
            super().log(logs, start_time)

    return OfflineGRPOTrainer


def build(ctx: Context):
    from transformers import TrainingArguments

    feats, dropped = features(ctx)
    ctx.loaded.metrics["droppedTruncated"] = dropped
    model = ctx.model
    if ctx.peft_config is not None:
        from peft import get_peft_model

        model = get_peft_model(model, ctx.peft_config)
    args = TrainingArguments(**ctx.args, remove_unused_columns=False)
    pad = ctx.tokenizer.pad_token_id if ctx.tokenizer.pad_token_id is not None else 0
    return _trainer_class()(
        model=model,
        args=args,
        train_dataset=feats,
        data_collator=collate(pad),
        processing_class=ctx.tokenizer,
        callbacks=ctx.callbacks,
        kl_coef=float(ctx.params["klCoef"]),
    )


def metrics(history: list[dict], steps_per_epoch: int) -> dict:
    return loss_metrics(
        history, steps_per_epoch, {"policyLoss": "policy_loss", "kl": "kl", "clipFraction": "clip_fraction"}
    )
