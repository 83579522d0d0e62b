"""The seed's claims at toy scale, measured: writes docs/results.md, its plots and bench/results/*.json.

A benchmark, not a test: it runs complete TAO rounds (prepare, generate x shards, score, dataset, train,
evaluate: the real stage code in-process, as jobs/tests/test_demo_round.py does) on the example tasks with
the tiny model, and baselines beside them. Every experiment's result is cached in bench/results/<name>.json,
so an interrupted run resumes and ``--only`` re-runs a part. Run from the repository root:

    PYTHONPATH=jobs/src:jobs/tests HF_HUB_OFFLINE=1 ~/.cache/tao/venv/bin/python bench/results.py [--seeds 0,1,2]

Experiments (names in bench/results/):
- ``signal-<task>``: base greedy accuracy vs majority vote over N samples (plain + cot) on every example
  prompt, with the round's own label-free scorers (vote / sql execution vote) - is there a signal at all?
- ``tao-<task>-s<seed>``: one TAO round (examples/<demo|sql>/round.json, generation/training/split seed).
- ``ft-<task>-s<seed>``: labelled fine-tuning (the seed's "FT" column): SFT on the *same* training prompts
  with their references as targets (the labels TAO never sees), same LoRA and epochs, same evaluation.
- ``bon-<task>-s<seed>``: best-of-N at inference (the test-time-compute ceiling): the majority vote of N
  samples per held-out prompt, chosen with the round's scorers, scored against the references.
- ``random-<task>-s0``: the random-reward control: the same round with a reward drawn at random per sample.

  These three baselines are also a product feature now (run spec ``baselines``, docs/evaluation.md#baselines).
  This script keeps its own implementations (bare-number SFT targets, best-of-N by majority vote) so that
  the committed numbers stay reproducible from it; the product's labelled arm puts references into a
  ``targetTemplate`` sentence instead.
- ``scaling-n<N>``: trivia rounds with N = 2, 4, 8, 16, 32 samples per prompt (Figure 3): independent metric,
  tokens per answer and weights size of each tuned model.
- ``multitask``: one round over both tasks (Table 4), per-task metrics and the gate's per-task check.
- ``hack``: a hackable reward (length alone: answers of at most 5 words score highest, which on this task
  favours the misconception's phrasing); the gate's verdict.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "results.md"
TASKS = {"trivia": "demo", "sql": "sql"}
DB = "file:examples/sql/shop.sqlite"


def load_example(example: str, **overrides) -> dict:
    spec = json.loads((ROOT / "examples" / example / "round.json").read_text())
    for path, value in overrides.items():
        node = spec
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return spec


def seeded(spec: dict, seed: int) -> dict:
    """The spec with every seed set to ``seed``; a ``tiny://`` base model is replaced by its cached build (the
    same files: builds are deterministic) so each round does not pre-train it again."""
    from tao_jobs.models.local import tiny_cached

    spec = copy.deepcopy(spec)
    if spec["baseModel"].startswith("tiny://"):
        spec["baseModel"] = tiny_cached(spec["baseModel"]).as_uri() + "/"
    spec["generation"]["seed"] = spec["training"]["seed"] = spec["evaluation"]["seed"] = seed
    return spec


def cached(name: str, fn, force: set[str]) -> dict:
    path = OUT / f"{name}.json"
    if path.exists() and name not in force and not any(name.startswith(f) for f in force):
        return json.loads(path.read_text())
    t0 = time.time()
    result = fn()
    result["seconds"] = round(time.time() - t0, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"[{name}] {result['seconds']}s", flush=True)
    return json.loads(path.read_text())  # as a later run reads it (string keys)


def eval_summary(m: dict) -> dict:
    """The numbers the tables need from the evaluate stage's metrics."""
    keep = (
        "base",
        "tuned",
        "improvement",
        "improvementCiLow",
        "improvementCiHigh",
        "winRate",
        "tasks",
        "gate",
    )
    out = {k: m.get(k) for k in keep}
    out |= {k: m.get(k) for k in ("reward", "rewardHacking", "drift", "klToBase", "evaluationScorers")}
    return out


# --- experiments ---------------------------------------------------------------------------------------
def run_tao(spec: dict, prompts_uri: str, work: Path) -> dict:
    from test_demo_round import run_round

    out = run_round(spec, work, prompts_uri, log=lambda *_: None)
    man = out["manifests"]
    return {
        "eval": eval_summary(man["evaluate"]["metrics"]),
        "train": man["train"]["metrics"],
        "dataset": man["dataset"]["metrics"],
        "timings": out["timings"],
        "work": str(work),
    }


def tokens_per_answer(work: Path) -> dict:
    rows = [json.loads(x) for x in (Path(work) / "evaluate" / "eval.jsonl").read_text().splitlines() if x.strip()]
    out = {}
    for model in ("base", "tuned"):
        toks = [r["tokens"] for r in rows if r["model"] == model and "tokens" in r]
        out[model] = statistics.fmean(toks) if toks else None
    return out


def weights_bytes(work: Path) -> int:
    merged = Path(work) / "train" / "merged"
    return sum(p.stat().st_size for p in merged.rglob("*.safetensors"))


def labelled_ft(task: str, spec: dict, tao_work: Path, work: Path) -> dict:
    """SFT on the TAO round's training prompts with their references as targets; evaluated like TAO."""
    from tao_jobs.prompts import write_jsonl
    from tao_jobs.stages import evaluate, train
    from tao_jobs.store import Store
    from test_demo_round import _resolve, _stage_spec

    refs = {
        r["id"]: r["reference"]
        for r in map(
            json.loads,
            (ROOT / spec["prompts"]["uri"].removeprefix("file:")).read_text().splitlines(),
        )
    }
    prep = json.loads((tao_work / "prepare" / "manifest.json").read_text())
    prep_out = (tao_work / "prepare").as_uri() + "/"
    shards = _resolve({"output": prep_out}, prep, "prompts")
    held_out = _resolve({"output": prep_out}, prep, "heldOut")
    model = _resolve({"output": prep_out}, prep, "model")
    store = Store()
    rows = []
    for uri in shards:
        for line in store.read_text(uri).splitlines():
            p = json.loads(line)
            target = refs[p["prompt_id"]]
            rows.append(
                {
                    "prompt": p["messages"],
                    "completion": [{"role": "assistant", "content": str(target)}],
                }
            )
    work.mkdir(parents=True, exist_ok=True)
    write_jsonl(work / "sft.jsonl", rows)
    tr = dict(spec["training"]) | {"algorithm": "sft"}
    tspec = _stage_spec(
        spec,
        "train",
        work / "train",
        {"dataset": (work / "sft.jsonl").as_uri(), "model": model},
        tr,
    )
    tman = train.run(tspec, store)
    tuned = _resolve(tspec, tman, "merged")
    ev = spec["evaluation"]
    eparams = {
        "scoring": spec["scoring"],
        "samplesPerPrompt": ev["samplesPerPrompt"],
        "temperature": ev["temperature"],
        "maxTokens": spec["generation"]["maxTokens"],
        "seed": ev["seed"],
        "bootstrap": 1000,
        "evaluation": {
            "reuseTrainingScorers": False,
            "scorers": ev["scorers"],
            "tasks": ev.get("tasks") or {},
        },
    }
    espec = _stage_spec(
        spec,
        "evaluate",
        work / "evaluate",
        {"prompts": held_out, "base": model, "tuned": tuned},
        eparams,
    )
    eman = evaluate.run(espec, store)
    return {
        "eval": eval_summary(eman["metrics"]),
        "train": tman["metrics"],
        "rows": len(rows),
    }


def best_of_n(task: str, spec: dict, tao_work: Path) -> dict:
    from tao_jobs.models.local import local_model_dir
    from tao_jobs.models.tiny_signal import measure
    from tao_jobs.store import Store
    from test_demo_round import _resolve

    store = Store()
    prep = json.loads((tao_work / "prepare" / "manifest.json").read_text())
    prep_out = (tao_work / "prepare").as_uri() + "/"
    held = [json.loads(x) for x in store.read_text(_resolve({"output": prep_out}, prep, "heldOut")).splitlines() if x]
    rows = [
        {
            "id": p["prompt_id"],
            "prompt": p["messages"][-1]["content"],
            "task": p["task"],
            "reference": p["reference"],
        }
        for p in held
        if "reference" in p
    ]
    g = spec["generation"]
    model_dir = local_model_dir(store, _resolve({"output": prep_out}, prep, "model"))
    m = measure(
        model_dir,
        rows,
        database=(ROOT / "examples/sql/shop.sqlite").as_uri(),
        samples=g["samplesPerPrompt"],
        strategies=tuple(g["strategies"]),
        temperatures=tuple(g["temperatures"]),
        max_tokens=g["maxTokens"],
        seed=g["seed"],
    )
    t = m[task]
    return {
        "task": task,
        "n": g["samplesPerPrompt"],
        "greedy": t["greedy"],
        "vote": t["vote"],
        "prompts": t["prompts"],
    }


def signal(task: str) -> dict:
    """The base model on every example prompt of the task: greedy accuracy, and the vote over the first k of 16
    samples (plain + cot, temperature 1.0) for k = 1, 2, 4, 8, 16."""
    from tao_jobs.models import tiny_corpus
    from tao_jobs.models.local import tiny_cached
    from tao_jobs.models.tiny_signal import measure

    rows = tiny_corpus.demo_prompts(task)
    db = (ROOT / "examples/sql/shop.sqlite").as_uri()
    m = measure(tiny_cached("tiny://demo"), rows, database=db, samples=16, vote_at=(1, 2, 4, 8, 16))[task]
    return {"task": task, "prompts": m["prompts"], "greedy": m["greedy"], "voteAt": m["voteAt"]}


# --- report --------------------------------------------------------------------------------------------
def ci95(xs: list[float]) -> tuple[float, float, float]:
    """Mean and a t-based 95% interval over seeds (t for n-1 degrees of freedom; n <= 10)."""
    t = {
        1: 12.71,
        2: 4.30,
        3: 3.18,
        4: 2.78,
        5: 2.57,
        6: 2.45,
        7: 2.36,
        8: 2.31,
        9: 2.26,
    }
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, math.nan, math.nan
    h = t[len(xs) - 1] * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, m - h, m + h


def fmt(x, d=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def line_svg(
    title: str,
    xs: list[float],
    series: dict[str, list[float]],
    xlabel: str,
    ylabel: str,
) -> str:
    """A small log2-x line plot as SVG (no plotting library in the venv)."""
    w, h, left, bottom, top, right = 480, 300, 56, 44, 28, 120
    lx = [math.log2(x) for x in xs]
    x0, x1 = min(lx), max(lx) if max(lx) > min(lx) else min(lx) + 1
    ys = [y for s in series.values() for y in s if y is not None]
    y0, y1 = min(0.0, min(ys)), max(1.0, max(ys))
    px = lambda v: left + (math.log2(v) - x0) / (x1 - x0) * (w - left - right)  # noqa: E731
    py = lambda v: h - bottom - (v - y0) / (y1 - y0) * (h - bottom - top)  # noqa: E731
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<text x="{w / 2 - 60}" y="16" font-size="13">{title}</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<text x="{(left + w - right) / 2 - 40}" y="{h - 8}">{xlabel}</text>',
        f'<text x="10" y="{top - 8}">{ylabel}</text>',
    ]
    for x in xs:
        parts.append(f'<text x="{px(x) - 5}" y="{h - bottom + 16}">{x}</text>')
    for k in range(6):
        v = y0 + (y1 - y0) * k / 5
        parts.append(f'<text x="{left - 34}" y="{py(v) + 4}">{v:.1f}</text>')
        parts.append(f'<line x1="{left}" y1="{py(v)}" x2="{w - right}" y2="{py(v)}" stroke="#ddd"/>')
    for i, (name, s) in enumerate(series.items()):
        c = colors[i % len(colors)]
        pts = [(px(x), py(y)) for x, y in zip(xs, s, strict=True) if y is not None]
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{points}"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{c}"/>' for a, b in pts]
        parts.append(f'<text x="{w - right + 8}" y="{top + 14 + 16 * i}" fill="{c}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated experiment name prefixes to run (others: cache only)",
    )
    ap.add_argument("--force", default="", help="comma-separated experiment name prefixes to re-run")
    ap.add_argument("--skip", default="", help="comma-separated experiment name prefixes not to run")
    ap.add_argument("--scaling", default="2,4,8,16,32")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    force = {f for f in args.force.split(",") if f}
    only = [o for o in args.only.split(",") if o]
    skip = [s for s in args.skip.split(",") if s]
    work_root = Path(tempfile.mkdtemp(prefix="tao-results-"))
    results: dict[str, dict] = {}

    def want(name: str) -> bool:
        if any(name.startswith(s) for s in skip):
            return False
        return not only or any(name.startswith(o) for o in only)

    def get(name: str, fn) -> dict | None:
        path = OUT / f"{name}.json"
        if not want(name):
            results[name] = json.loads(path.read_text()) if path.exists() else None
            return results[name]
        results[name] = cached(name, fn, force)
        return results[name]

    for task in TASKS:
        get(f"signal-{task}", lambda task=task: signal(task))
    for task, example in TASKS.items():
        prompts = (ROOT / "examples" / example / "prompts.jsonl").as_uri()
        for seed in seeds:
            spec = seeded(load_example(example), seed)
            tao = get(
                f"tao-{task}-s{seed}",
                lambda spec=spec, t=task, s=seed, p=prompts: run_tao(spec, p, work_root / f"tao-{t}-{s}"),
            )
            if tao is None or not Path(tao["work"]).exists():
                continue
            work = Path(tao["work"])
            get(
                f"ft-{task}-s{seed}",
                lambda spec=spec, t=task, w=work, s=seed: labelled_ft(t, spec, w, work_root / f"ft-{t}-{s}"),
            )
            get(
                f"bon-{task}-s{seed}",
                lambda spec=spec, t=task, w=work: best_of_n(t, spec, w),
            )
        spec = seeded(load_example(example), 0)
        rnd = copy.deepcopy(spec)
        rnd["scoring"] = {
            "scorers": [
                {
                    "name": "random",
                    "type": "python",
                    "weight": 1,
                    "params": {"module": "bench_rewards:random_reward"},
                }
            ],
            "tasks": {},
        }
        get(
            f"random-{task}-s0",
            lambda s=rnd, t=task, p=prompts: run_tao(s, p, work_root / f"random-{t}"),
        )
    trivia_prompts = (ROOT / "examples" / "demo" / "prompts.jsonl").as_uri()
    for n in (int(x) for x in args.scaling.split(",") if x):
        spec = seeded(load_example("demo"), 0)
        spec["generation"]["samplesPerPrompt"] = n

        def scaling(spec=spec, n=n) -> dict:
            work = work_root / f"scaling-{n}"
            r = run_tao(spec, trivia_prompts, work)
            return r | {
                "tokensPerAnswer": tokens_per_answer(work),
                "weightsBytes": weights_bytes(work),
                "n": n,
            }

        get(f"scaling-n{n}", scaling)
    get(
        "multitask",
        lambda: run_tao(
            seeded(load_example("multitask"), 0),
            (ROOT / "examples/multitask/prompts.jsonl").as_uri(),
            work_root / "multitask",
        ),
    )
    hack = seeded(load_example("demo"), 0)
    hack["scoring"] = {
        "scorers": [
            {
                "name": "short",
                "type": "length",
                "weight": 1,
                "params": {"min": 1, "max": 5, "unit": "words"},
            }
        ],
        "tasks": {},
    }
    get("hack", lambda: run_tao(hack, trivia_prompts, work_root / "hack"))
    write_report(results, seeds, [int(x) for x in args.scaling.split(",") if x], args)


def write_report(results: dict, seeds: list[int], scaling: list[int], args) -> None:
    from report import render

    DOC.write_text(render(results, seeds, scaling, sys.argv))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    random.seed(0)
    main()
