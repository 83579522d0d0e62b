"""kto: TRL ``KTOTrainer`` on unpaired samples labelled desirable (top of their prompt's group) or undesirable
(bottom), as the dataset stage writes them.

KTO estimates its KL reference point from mismatched (prompt, completion) pairs inside each batch, so it needs
batches of at least 2 and trains in file order (TRL's sequential sampler): the rows are ordered here once
(``interleave``, seeded) so that the two labels are spread evenly and a batch mixes prompts and labels.
When the two labels are unbalanced, the undesirable loss is weighted by
``desirable / undesirable`` (TRL's recommended range). With LoRA the reference is the base with the adapter
disabled.

Metrics: ``loss``/``firstLoss``, ``rewardMargin`` (desirable minus undesirable implicit reward) and ``kl``
(KTO's batch KL estimate), both averaged over the last epoch's steps; ``desirable`` / ``undesirable`` counts.
"""

from __future__ import annotations

import random

from ..contract import BadInput, InvalidSpec
from ..prompts import read_artifact
from ..store import Store
from .common import MAX_LENGTH, Context, Loaded, loss_metrics, trl_trainer

NAME = "kto"
FIELDS: dict = {"prompt": list, "completion": list, "label": bool}
PROGRESS_KEYS = ("loss", "rewards/margins", "kl", "learning_rate")


def load(store: Store, uri: str, params: dict) -> Loaded:
    if params["batchSize"] < 2:
        raise InvalidSpec(["params.batchSize: kto needs batches of at least 2 (its KL estimate pairs rows in a batch)"])
    rows = read_artifact(store, uri, FIELDS)
    if not rows:
        raise BadInput(f"{uri}: the KTO dataset is empty")
    kept = interleave(
        [{"prompt": r["prompt"], "completion": r["completion"], "label": r["label"]} for _, r in rows], params["seed"]
    )
    desirable = sum(r["label"] for r in kept)
    kl_rows = [{"prompt": r["prompt"], "chosen": r["completion"]} for r in kept if r["label"]]
    return Loaded(
        rows=kept,
        kl_rows=kl_rows,
        records_in=len(rows),
        metrics={"desirable": desirable, "undesirable": len(kept) - desirable},
    )


def interleave(rows: list[dict], seed: int) -> list[dict]:
    """Each label's rows shuffled (seeded), then merged so both labels are spread evenly over the order."""
    rng = random.Random(seed)
    keyed = []
    for label in (True, False):
        mine = [r for r in rows if r["label"] is label]
        rng.shuffle(mine)
        keyed += [((i + 0.5) / len(mine), not label, r) for i, r in enumerate(mine)]
    return [r for *_, r in sorted(keyed, key=lambda k: k[:2])]


def build(ctx: Context):
    from trl import KTOConfig, KTOTrainer

    desirable = sum(r["label"] for r in ctx.loaded.rows)
    undesirable = len(ctx.loaded.rows) - desirable
    weight = desirable / undesirable if desirable and undesirable else 1.0
    args = KTOConfig(
        **ctx.args,
        beta=ctx.params["beta"],
        max_length=MAX_LENGTH,
        desirable_weight=1.0,
        undesirable_weight=weight,
    )
    return trl_trainer(KTOTrainer, ctx, args)


def metrics(history: list[dict], steps_per_epoch: int) -> dict:
    return loss_metrics(history, steps_per_epoch, {"rewardMargin": "rewards/margins", "kl": "kl"})
