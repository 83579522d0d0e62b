"""The train stage: DPO + LoRA on CPU writes an adapter and a merged model that differs from the base."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import make_spec, write_jsonl
from tao_jobs.contract import BadInput
from tao_jobs.models.local import model_rev, tiny_cached
from tao_jobs.stages import train
from tao_jobs.store import Store
from tao_jobs.trainers import dpo

MODEL = "tiny://engine?steps=100"
FACTS = [
    ("How many legs does a spider have?", "a spider has 8 legs.", "A spider has eight legs. That is a fun fact."),
    ("How many days are in a week?", "there are 7 days in a week.", "There are seven days in a week."),
    ("How many sides does a square have?", "a square has 4 sides.", "A square has four sides. I hope this helps."),
    ("How many wheels does a car have?", "a car has 4 wheels.", "A car has four wheels."),
]


def _pairs() -> list[dict]:
    return [
        {
            "prompt_id": f"p{i}",
            "prompt": [{"role": "user", "content": q}],
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": bad}],
            "margin": 0.6,
        }
        for i, (q, good, bad) in enumerate(FACTS)
    ]


def _spec(tmp_path: Path, rows: list[dict], **params) -> dict:
    write_jsonl(tmp_path / "in" / "dpo.jsonl", rows)
    model = tiny_cached(MODEL).as_uri() + "/"
    uri = make_spec("train", tmp_path, inputs={"model": model}, params={"maxSteps": 3, "learningRate": 5e-3} | params)
    return json.loads(Path(uri.removeprefix("file://")).read_text())


def test_train_writes_adapter_and_a_merged_model_that_differs_from_the_base(tmp_path, capsys):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    spec = _spec(tmp_path, _pairs())
    manifest = train.run(spec, Store())
    m = manifest["metrics"]
    assert m["steps"] == 3 and m["trainSamples"] == 4
    for k in ("loss", "firstLoss", "rewardMargin", "rewardAccuracy", "klToBase"):
        assert math.isfinite(m[k]), (k, m)
    assert m["klToBase"] > 0
    assert manifest["outputs"] == {"adapter": "adapter/", "merged": "merged/"}

    out = Path(spec["output"].removeprefix("file://"))
    assert (out / "adapter" / "adapter_config.json").is_file()
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    merged_dir, base_dir = out / "merged", tiny_cached(MODEL)
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)  # a plain model: no PEFT needed to load it
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    assert set(merged.state_dict()) == set(base.state_dict())
    changed = [k for k, v in merged.state_dict().items() if not v.equal(base.state_dict()[k])]
    assert any("proj" in k for k in changed)
    assert model_rev(merged_dir) != model_rev(base_dir)

    progress = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    steps = [e for e in progress if e["event"] == "progress" and "loss" in e]
    assert [e["done"] for e in steps] == [1, 2, 3] and all(math.isfinite(e["loss"]) for e in steps)


def test_pairs_below_min_margin_are_dropped_and_an_empty_dataset_is_bad_input(tmp_path):
    rows = _pairs()
    rows[0]["margin"] = 0.05
    pairs, dropped = dpo.load_pairs(Store(), _write(tmp_path / "a.jsonl", rows), 0.1)
    assert (len(pairs), dropped) == (3, 1)
    with pytest.raises(BadInput, match="empty"):
        train.run(_spec(tmp_path, []), Store())
    with pytest.raises(BadInput, match="below minMargin"):
        dpo.load_pairs(Store(), _write(tmp_path / "b.jsonl", rows[:1]), 0.1)


def _write(path: Path, rows: list[dict]) -> str:
    return write_jsonl(path, rows)


def test_log_metrics_average_the_last_epoch():
    history = [
        {"loss": 0.7, "rewards/margins": 0.0, "rewards/accuracies": 0.0},
        {"loss": 0.6, "rewards/margins": 0.2, "rewards/accuracies": 0.5},
        {"loss": 0.5, "rewards/margins": 0.4, "rewards/accuracies": 1.0},
        {"train_runtime": 1.0},
    ]
    m = dpo.metrics(history, steps_per_epoch=2)
    assert m == {"loss": 0.5, "firstLoss": 0.7, "rewardMargin": pytest.approx(0.3), "rewardAccuracy": 0.75}
    assert dpo.loss_settings({}) == {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]}
    assert dpo.loss_settings({"sftWeight": 0}) == {"loss_type": ["sigmoid"]}
