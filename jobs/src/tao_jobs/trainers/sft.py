"""sft: best-of-N supervised fine-tuning (RAFT / ReST) with TRL ``SFTTrainer`` on each prompt's best sample.

Rows are TRL's conversational prompt-completion format; the loss is on the completion tokens only
(``completion_only_loss``): the model learns its own best answers, not the prompts. Rows of the file whose
``score`` is below ``minScore`` are dropped (``droppedLowScore``), as the dataset stage does.

Metrics: ``loss``/``firstLoss`` and ``meanTokenAccuracy`` (TRL's, over the completion tokens, averaged over the
last epoch's steps).
"""

from __future__ import annotations

from ..contract import BadInput
from ..prompts import read_artifact
from ..store import Store
from .common import MAX_LENGTH, Context, Loaded, loss_metrics, trl_trainer

NAME = "sft"
FIELDS: dict = {"prompt": list, "completion": list}
PROGRESS_KEYS = ("loss", "mean_token_accuracy", "learning_rate")


def load(store: Store, uri: str, params: dict) -> Loaded:
    rows = read_artifact(store, uri, FIELDS)
    if not rows:
        raise BadInput(f"{uri}: the SFT dataset is empty")
    min_score = params.get("minScore", 0.0)
    kept, dropped = [], 0
    for _, r in rows:
        score = r.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool) and score < min_score:
            dropped += 1
            continue
        kept.append({"prompt": r["prompt"], "completion": r["completion"]})
    if not kept:
        raise BadInput(f"{uri}: all {len(rows)} rows score below minScore {min_score}")
    kl_rows = [{"prompt": r["prompt"], "chosen": r["completion"]} for r in kept]
    return Loaded(rows=kept, kl_rows=kl_rows, records_in=len(rows), metrics={"droppedLowScore": dropped})


def build(ctx: Context):
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**ctx.args, completion_only_loss=True, max_length=MAX_LENGTH, packing=False)
    return trl_trainer(SFTTrainer, ctx, args)


def metrics(history: list[dict], steps_per_epoch: int) -> dict:
    return loss_metrics(history, steps_per_epoch, {"meanTokenAccuracy": "mean_token_accuracy"})
