"""dpo: TRL ``DPOTrainer`` on the preference pairs of the dataset stage (best vs worst sample per prompt).

The loss is DPO's sigmoid loss plus ``sftWeight`` (default ``SFT_WEIGHT``) times the negative log-likelihood of
the chosen response (TRL ``loss_type=["sigmoid", "sft"]``; RPO, Pang et al. 2024). Pure DPO on off-policy
best-vs-worst pairs mostly learns to push the (already unlikely) rejected samples down, and can lower the
chosen ones too ("likelihood displacement"): on the demo it barely moved greedy outputs at safe learning rates
and collapsed into gibberish at higher ones, while the NLL term anchors it on the chosen answers. 0 gives
pure DPO.

With LoRA the reference model is the base with the adapter disabled (TRL's default for a fresh PEFT
adapter), so no second copy of the model is loaded; with ``fullFineTune`` TRL loads a frozen copy.

Metrics: ``loss``/``firstLoss``, ``rewardMargin`` and ``rewardAccuracy`` (averaged over the last epoch's
steps), ``droppedLowMargin`` (pairs of the file below ``minMargin``).
"""

from __future__ import annotations

from ..contract import BadInput
from ..prompts import read_artifact
from ..store import Store
from .common import MAX_LENGTH, Context, Loaded, loss_metrics, trl_trainer

NAME = "dpo"
SFT_WEIGHT = 1.0
FIELDS: dict = {"prompt": list, "chosen": list, "rejected": list}
PROGRESS_KEYS = ("loss", "rewards/margins", "rewards/accuracies", "learning_rate")


def load_pairs(store: Store, uri: str, min_margin: float) -> tuple[list[dict], int]:
    """The pairs to train on and how many were dropped for a margin below ``minMargin``."""
    rows = read_artifact(store, uri, FIELDS)
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


def load(store: Store, uri: str, params: dict) -> Loaded:
    pairs, dropped = load_pairs(store, uri, params["minMargin"])
    return Loaded(rows=pairs, kl_rows=pairs, records_in=len(pairs) + dropped, metrics={"droppedLowMargin": dropped})


def loss_settings(params: dict) -> dict:
    """DPOConfig loss settings: sigmoid DPO plus the chosen-NLL term (see the module docstring)."""
    weight = float(params.get("sftWeight", SFT_WEIGHT))
    if weight <= 0:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, weight]}


def build(ctx: Context):
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**ctx.args, beta=ctx.params["beta"], max_length=MAX_LENGTH, **loss_settings(ctx.params))
    return trl_trainer(DPOTrainer, ctx, args)


def metrics(history: list[dict], steps_per_epoch: int) -> dict:
    """``loss`` (last step) and ``firstLoss``; ``rewardMargin`` and ``rewardAccuracy`` averaged over the last
    epoch's steps (single steps are noisy: small batches)."""
    return loss_metrics(
        history, steps_per_epoch, {"rewardMargin": "rewards/margins", "rewardAccuracy": "rewards/accuracies"}
    )
