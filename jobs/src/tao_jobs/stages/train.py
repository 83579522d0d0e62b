"""train: fine-tune the base model on the dataset stage's rows with ``params.algorithm`` (dpo, sft, kto, grpo).

The algorithms live in ``tao_jobs.trainers`` (one module each; ``trainers/common.py`` has the shared part):

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
"""

from __future__ import annotations

from ..contract import InvalidSpec
from ..store import Store
from ..trainers import ALGORITHMS, common, get
from ..trainers.dpo import FIELDS as DPO_FIELDS  # noqa: F401 - the names this module had before the split
from ..trainers.dpo import SFT_WEIGHT  # noqa: F401
from ..trainers.dpo import load_pairs as _load_pairs  # noqa: F401
from ..trainers.dpo import loss_settings as _loss  # noqa: F401
from ..trainers.dpo import metrics as log_metrics  # noqa: F401

STAGE = common.STAGE


def run(spec: dict, store: Store) -> dict:
    algorithm = spec["params"].get("algorithm", "dpo")
    if algorithm not in ALGORITHMS:
        raise InvalidSpec([f"params.algorithm: must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"])
    return common.train(spec, store, get(algorithm))
