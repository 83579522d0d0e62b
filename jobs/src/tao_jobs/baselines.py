"""The baseline arms a round can run beside TAO (run spec ``baselines``; docs/evaluation.md#baselines).

- *labelled fine-tuning*: SFT on the training prompts with their references as targets (the labels TAO never
  sees). ``labelled_rows`` builds that dataset; the prepare stage writes it, only when the arm is asked for,
  as ``baseline-labelled-sft.jsonl``: the one artifact outside the evaluation side that holds references.
- *best-of-N*: N samples per held-out prompt from the base model, scored by the training scorers (a score
  stage); ``pick_best`` takes each prompt's best sample, which the evaluate stage scores like a model's answer.
- *random reward*: the round's own generations rescored by ``random_reward`` (a ``python`` scorer), then the
  same dataset and training: the control for "any reward improves this model".
"""

from __future__ import annotations

import hashlib

from .contract import BadInput

LABELLED_FILE = "baseline-labelled-sft.jsonl"
REFERENCE_SLOT = "{reference}"  # where a target template puts the reference


def random_reward(prompt: dict, text: str, seed: int = 0) -> float:
    """A score in [0, 1) drawn from a hash of (seed, prompt, sample text): reproducible, and carrying no
    information about the answer."""
    h = hashlib.sha256(f"{seed}\0{prompt['prompt_id']}\0{text}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def sft_target(templates: dict[str, str], task: str | None, reference: object) -> str:
    """The SFT target of one training prompt: its task's template (``"*"``: any other task; none: the bare
    reference) with ``{reference}`` replaced by the reference (a list: its first element)."""
    ref = reference[0] if isinstance(reference, list) else reference
    fallback = templates.get("*", REFERENCE_SLOT)
    template = templates.get(task, fallback) if task else fallback
    return template.replace(REFERENCE_SLOT, str(ref))


def labelled_rows(train: list[dict], params: dict) -> tuple[list[dict], list[dict]]:
    """(SFT rows in TRL's prompt-completion format, prompts left out for lack of a reference).

    ``params``: ``{targetTemplate: {task | "*": template}, missingReferences: "fail" | "skip", field}``.
    BadInput naming ``field`` when no training prompt has a reference, or, under ``fail``, when any lacks one.
    """
    field = params["field"]
    missing = [p for p in train if "reference" not in p]
    if train and len(missing) == len(train):
        raise BadInput(
            f"{field}: none of the {len(train)} training prompt(s) carries a 'reference': the labelled baseline "
            "trains on them; add references or remove the arm"
        )
    if missing and params["missingReferences"] == "fail":
        first = missing[0].get("source") or {}
        where = f", first at {first['uri']}:{first['line']}" if "uri" in first else ""
        raise BadInput(
            f"{field}: {len(missing)} of {len(train)} training prompt(s) without a 'reference'{where} (set "
            f"{field}.missingReferences to 'skip' to leave them out of the arm)"
        )
    rows = [
        {
            "prompt_id": p["prompt_id"],
            "prompt": p["messages"],
            "completion": [
                {"role": "assistant", "content": sft_target(params["targetTemplate"], p.get("task"), p["reference"])}
            ],
        }
        for p in train
        if "reference" in p
    ]
    return rows, missing


def pick_best(generations: list[dict], combined: dict[tuple[str, object], float | None]) -> dict[str, dict]:
    """prompt_id -> the generation row with the highest combined training score (ties: the lowest sample id;
    samples without a score count as lowest). Every prompt with generations gets a pick."""
    from .stages.dataset import sample_order  # the dataset stage's tie-break order

    by_prompt: dict[str, list[dict]] = {}
    for g in generations:
        by_prompt.setdefault(g["prompt_id"], []).append(g)
    picks = {}
    for pid, rows in by_prompt.items():
        ordered = sorted(rows, key=lambda g: sample_order(g["sample_id"]))

        def score(g: dict, pid: str = pid) -> float:
            s = combined.get((pid, g["sample_id"]))
            return float("-inf") if s is None else s

        picks[pid] = max(ordered, key=score)  # max returns the first of equal elements
    return picks
