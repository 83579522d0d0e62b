"""The train stage's sft, kto and grpo trainers (and every algorithm with fullFineTune) on CPU with a tiny model:
finite losses, adapter and merged model written, the merged model reloads and differs from the base."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import make_spec, write_jsonl
from tao_jobs.contract import InvalidSpec
from tao_jobs.models.local import model_rev, tiny_cached
from tao_jobs.spec import validate
from tao_jobs.stages import train
from tao_jobs.store import Store
from tao_jobs.trainers import common, grpo, kto

MODEL = "tiny://engine?steps=100"
FACTS = [
    ("How many legs does a spider have?", "a spider has 8 legs.", "A spider has eight legs. That is a fun fact."),
    ("How many days are in a week?", "there are 7 days in a week.", "There are seven days in a week."),
    ("How many sides does a square have?", "a square has 4 sides.", "A square has four sides. I hope this helps."),
    ("How many wheels does a car have?", "a car has 4 wheels.", "A car has four wheels."),
]
EXTRA = {  # algorithm-specific metrics that must be finite
    "dpo": ("rewardMargin", "rewardAccuracy"),
    "sft": ("meanTokenAccuracy",),
    "kto": ("rewardMargin", "kl"),
    "grpo": ("policyLoss", "kl", "clipFraction"),
}


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def rows_for(algorithm: str) -> list[dict]:
    """The dataset stage's rows for ``algorithm`` on FACTS (good = the short digit answer)."""
    out = []
    for i, (q, good, bad) in enumerate(FACTS):
        base = {"prompt_id": f"p{i}", "prompt": [{"role": "user", "content": q}]}
        if algorithm == "dpo":
            out.append(base | {"chosen": _assistant(good), "rejected": _assistant(bad), "margin": 0.6})
        elif algorithm == "sft":
            out.append(base | {"completion": _assistant(good), "score": 0.9})
        elif algorithm == "kto":
            out += [base | {"completion": _assistant(good), "label": True}]
            out += [base | {"completion": _assistant(bad), "label": False}]
        else:
            out += [base | {"completion": _assistant(good), "advantage": 0.7, "score": 1.0}]
            out += [base | {"completion": _assistant(bad), "advantage": -0.7, "score": 0.0}]
    return out


def train_spec(tmp_path: Path, algorithm: str, rows: list[dict] | None = None, **params) -> dict:
    write_jsonl(tmp_path / "in" / f"{algorithm}.jsonl", rows_for(algorithm) if rows is None else rows)
    uri = make_spec(
        "train",
        tmp_path,
        inputs={"model": tiny_cached(MODEL).as_uri() + "/", "dataset": f"in/{algorithm}.jsonl"},
        params={"algorithm": algorithm, "maxSteps": 3, "learningRate": 5e-3} | params,
    )
    spec = json.loads(Path(uri.removeprefix("file://")).read_text())
    assert validate(spec) == []
    return spec


def _changed_weights(merged_dir: Path) -> list[str]:
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(merged_dir)  # a plain model: no PEFT needed to load it
    base = AutoModelForCausalLM.from_pretrained(tiny_cached(MODEL))
    assert set(merged.state_dict()) == set(base.state_dict())
    assert model_rev(merged_dir) != model_rev(tiny_cached(MODEL))
    return [k for k, v in merged.state_dict().items() if not v.equal(base.state_dict()[k])]


def _check_metrics(m: dict, algorithm: str, full: bool) -> None:
    assert m["algorithm"] == algorithm and m["fullFineTune"] is full and m["resumedFromStep"] == 0
    assert m["steps"] == 3
    for k in ("loss", "firstLoss", "klToBase", *EXTRA[algorithm]):
        assert isinstance(m[k], float) and math.isfinite(m[k]), (k, m)
    assert m["klToBase"] > 0


@pytest.mark.parametrize("algorithm", ["sft", "kto", "grpo"])
def test_lora_training_writes_adapter_and_a_merged_model_that_differs(tmp_path, capsys, algorithm):
    from safetensors.torch import load_file

    spec = train_spec(tmp_path, algorithm)
    manifest = train.run(spec, Store())
    _check_metrics(manifest["metrics"], algorithm, full=False)
    assert manifest["outputs"] == {"adapter": "adapter/", "merged": "merged/"}
    out = Path(spec["output"].removeprefix("file://"))
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert (out / "merged" / "model.safetensors").is_file() and (out / "merged" / "tokenizer.json").is_file()
    assert any("proj" in k for k in _changed_weights(out / "merged"))
    assert not (out / "checkpoints").exists()  # deleted once the outputs are published
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # stdout: JSON lines only
    steps = [e for e in events if e["event"] == "progress" and "loss" in e]
    assert [e["done"] for e in steps] == [1, 2, 3] and all(math.isfinite(e["loss"]) for e in steps)
    assert [e["checkpoint"] for e in events if "checkpoint" in e] == [1, 2, 3]


@pytest.mark.parametrize("algorithm", ["dpo", "sft", "kto", "grpo"])
def test_full_fine_tune_trains_every_weight_and_says_there_is_no_adapter(tmp_path, algorithm):
    spec = train_spec(tmp_path, algorithm, fullFineTune=True, learningRate=1e-3)
    manifest = train.run(spec, Store())
    _check_metrics(manifest["metrics"], algorithm, full=True)
    assert manifest["outputs"] == {"adapter": "adapter/", "merged": "merged/"}
    out = Path(spec["output"].removeprefix("file://"))
    assert [p.name for p in (out / "adapter").iterdir()] == ["README.md"]
    assert "fullFineTune" in (out / "adapter" / "README.md").read_text()
    assert not (out / "merged" / "training_args.bin").exists()
    changed = _changed_weights(out / "merged")
    assert any("embed" in k for k in changed) and any("layers.1.mlp" in k for k in changed)


def test_kto_needs_batches_of_two_and_interleaves_labels(tmp_path):
    with pytest.raises(InvalidSpec, match="params.batchSize: kto needs batches of at least 2"):
        train.run(train_spec(tmp_path, "kto", batchSize=1), Store())
    rows = [{"label": i < 6, "i": i} for i in range(9)]  # 6 desirable, 3 undesirable
    order = kto.interleave(rows, seed=0)
    assert sorted(r["i"] for r in order) == list(range(9))
    assert [r["label"] for r in order] == [True, False, True, True, False, True, True, False, True]


def test_grpo_loss_at_the_base_is_minus_the_mean_advantage(tmp_path):
    """At step 0 the policy is the base: ratio 1, KL 0, so the loss is -mean(A) and the gradient is the
    advantage-weighted log-likelihood gradient."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    model_dir = tiny_cached(MODEL)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"], "advantage": r["advantage"]}
        for r in rows_for("grpo")[:4]
    ]
    loaded = common.Loaded(rows=rows, kl_rows=[], records_in=4)
    ctx = common.Context({"klCoef": 0.5}, model, tok, loaded, None, {}, [], model_dir, "cpu")
    feats, dropped = grpo.features(ctx)
    assert dropped == 0 and all(len(f["ref_logps"]) == len(f["input_ids"]) - 1 for f in feats)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", remove_unused_columns=False)
    trainer = grpo._trainer_class()(model=model, args=args, train_dataset=feats, kl_coef=0.5)
    batch = grpo.collate(tok.pad_token_id)(feats)
    loss = trainer.compute_loss(model, batch)
    assert float(loss) == pytest.approx(-sum(r["advantage"] for r in rows) / 4, abs=1e-5)
    assert trainer._metrics["kl"][0] == pytest.approx(0, abs=1e-6) and trainer._metrics["clip_fraction"][0] == 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert torch.isfinite(loss)
