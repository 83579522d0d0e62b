"""Renders docs/results.md from bench/results/*.json (bench/results.py calls it; it can also be run alone to
re-render without re-running anything: ``python bench/report.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
TASK_NAMES = {
    "trivia": "counting trivia (numeric-match)",
    "sql": "text-to-SQL (execution accuracy)",
}
NOTES = OUT / "notes.md"  # hand-written reading of the numbers, kept beside them


def _ci(xs: list[float]) -> str:
    from results import ci95, fmt

    xs = [x for x in xs if x is not None]
    if not xs:
        return "not run"
    m, lo, hi = ci95(xs)
    # accuracies: the t-interval over 3 seeds can leave [0, 1]; shown clipped to it
    return f"{fmt(m)} ({fmt(max(0.0, lo))} – {fmt(min(1.0, hi))})" if len(xs) > 1 else f"{fmt(m)} (1 seed)"


def render(results: dict, seeds: list[int], scaling: list[int], argv: list[str]) -> str:
    from results import fmt, line_svg

    r = results
    lines = [
        "# Results: TAO's claims at toy scale",
        "",
        "Produced by `bench/results.py` (a benchmark, not a test) on the tiny model and the example tasks; every",
        "number below is read from `bench/results/*.json`, written by that script. Machine: 2 shared CPU cores, no",
        "GPU. Command:",
        "",
        "    PYTHONPATH=jobs/src:jobs/tests HF_HUB_OFFLINE=1 ~/.cache/tao/venv/bin/python " + " ".join(argv),
        "",
        "The tasks (`jobs/src/tao_jobs/models/tiny_corpus.py`, `examples/demo`, `examples/sql`): the tiny model's",
        "pre-training corpus gives half of the items a *misconception* that greedy decoding follows, while the",
        "correct answer holds more probability mass spread over equivalent phrasings or queries, and the `cot`",
        "strategy is right more often. Training uses no labels (majority vote on the extracted number; SQL",
        "execution vote); the *independent metric* is the evaluation's own reference scorer on held-out prompts",
        "(`numeric-match` against the gold number; `sql-execution-match` against the gold SQL), greedy decoding.",
        "",
        "## Is there a label-free signal? Base model, greedy vs majority vote of N samples",
        "",
        "All example prompts; N samples per prompt spread over strategies `plain` and `cot` at temperature 1.0.",
        "",
        "| task | prompts | greedy accuracy | one sample | vote@2 | vote@4 | vote@8 | vote@16 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task in ("trivia", "sql"):
        s = r.get(f"signal-{task}")
        if not s:
            lines.append(f"| {task} | not run | | | | | | |")
            continue
        at = s["voteAt"]
        cells = " | ".join(fmt(at.get(k)) for k in ("1", "2", "4", "8", "16"))
        lines.append(f"| {TASK_NAMES[task]} | {s['prompts']} | {fmt(s['greedy'])} | {cells} |")
    lines += [
        "",
        "## Table 3 in miniature: base, labelled fine-tuning, TAO without labels",
        "",
        f"Seeds {', '.join(map(str, seeds))} (generation, training and held-out split; the base model is the same).",
        "Mean over seeds and 95% t-interval (clipped to [0, 1]) of the independent metric on each seed's held-out",
        "prompts (about 30 trivia and 20 SQL prompts per seed). *Best-of-N*",
        "is the test-time-compute ceiling TAO distils (N samples at inference, majority vote with the round's",
        "scorers: N times the serving cost); *random reward* is the control where each sample's reward is random.",
        "",
        "| task | base | labelled FT (SFT on references) | TAO (no labels) | TAO − base per seed [paired 95% CI] | "
        "best-of-N at inference | random-reward control |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task in ("trivia", "sql"):
        tao = [r.get(f"tao-{task}-s{s}") for s in seeds]
        ft = [r.get(f"ft-{task}-s{s}") for s in seeds]
        bon = [r.get(f"bon-{task}-s{s}") for s in seeds]
        rnd = r.get(f"random-{task}-s0")
        base = [t["eval"]["base"]["mean"] for t in tao if t]
        tuned = [t["eval"]["tuned"]["mean"] for t in tao if t]
        ftm = [f["eval"]["tuned"]["mean"] for f in ft if f]
        bonm = [b["vote"] for b in bon if b]
        diffs = [
            f"{fmt(t['eval']['improvement'], 2)} [{fmt(t['eval']['improvementCiLow'], 2)}, "
            f"{fmt(t['eval']['improvementCiHigh'], 2)}]"
            for t in tao
            if t
        ]
        rnds = f"{fmt(rnd['eval']['tuned']['mean'])} (base {fmt(rnd['eval']['base']['mean'])})" if rnd else "not run"
        lines.append(
            f"| {TASK_NAMES[task]} | {_ci(base)} | {_ci(ftm)} | {_ci(tuned)} | {'; '.join(diffs) or 'not run'} | "
            f"{_ci(bonm)} | {rnds} |"
        )
    lines += [
        "",
        "## Figure 3 in miniature: the metric against samples per prompt, and the serving cost",
        "",
    ]
    sc = [(n, r.get(f"scaling-n{n}")) for n in scaling]
    sc = [(n, x) for n, x in sc if x]
    if sc:
        svg = line_svg(
            "trivia: held-out accuracy vs samples per prompt",
            [n for n, _ in sc],
            {
                "TAO tuned": [x["eval"]["tuned"]["mean"] for _, x in sc],
                "base": [x["eval"]["base"]["mean"] for _, x in sc],
            },
            "samples per prompt (log2)",
            "accuracy",
        )
        (ROOT / "docs" / "results-scaling.svg").write_text(svg)
        lines += [
            "![accuracy vs samples per prompt](results-scaling.svg)",
            "",
            "| samples per prompt | base | TAO tuned | 95% CI of tuned − base | tokens per answer (base → tuned) | "
            "tuned weights (bytes) | round time (s) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for n, x in sc:
            e = x["eval"]
            tok = x.get("tokensPerAnswer") or {}
            lines.append(
                f"| {n} | {fmt(e['base']['mean'])} | {fmt(e['tuned']['mean'])} | "
                f"{fmt(e['improvementCiLow'], 2)} – {fmt(e['improvementCiHigh'], 2)} | "
                f"{fmt(tok.get('base'), 1)} → {fmt(tok.get('tuned'), 1)} | {x.get('weightsBytes')} | "
                f"{x['timings']['total']:.0f} |"
            )
    else:
        lines.append("not run")
    lines += ["", "## Table 4 in miniature: one multi-task round over both tasks", ""]
    mt = r.get("multitask")
    if mt:
        lines += [
            "| task | prompts | base | TAO tuned | tuned − base (95% CI) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for task, t in sorted((mt["eval"].get("tasks") or {}).items()):
            change = f"{fmt(t.get('change'), 2)} ({fmt(t.get('ciLow'), 2)} – {fmt(t.get('ciHigh'), 2)})"
            lines.append(f"| {task} | {t.get('n')} | {fmt(t.get('before'))} | {fmt(t.get('after'))} | {change} |")
        gate = mt["eval"].get("gate")
        lines += ["", f"Gate: `{json.dumps(gate)}`" if gate else "Gate: not reported"]
    else:
        lines.append("not run")
    lines += ["", "## A reward-hacking case: brevity alone as the training reward", ""]
    hk = r.get("hack")
    if hk:
        e = hk["eval"]
        rw = e.get("reward") or {}
        lines += [
            "The trivia round trained on one rule, `length` with 1–5 words (the shortest answers score highest: on",
            'this task the misconception\'s phrasing, "a spider has 10 legs.", is the shortest), evaluated on the',
            "independent metric (`numeric-match`):",
            "",
            "| | base | tuned | change (95% CI) |",
            "| --- | --- | --- | --- |",
            f"| training reward (length) | {fmt(rw.get('before'))} | {fmt(rw.get('after'))} | "
            f"{fmt(rw.get('change'), 2)} ({fmt(rw.get('ciLow'), 2)} – {fmt(rw.get('ciHigh'), 2)}) |",
            f"| independent metric | {fmt(e['base']['mean'])} | {fmt(e['tuned']['mean'])} | "
            f"{fmt(e['improvement'], 2)} ({fmt(e['improvementCiLow'], 2)} – {fmt(e['improvementCiHigh'], 2)}) |",
            "",
            f"Reward-hacking flag: `{json.dumps(e.get('rewardHacking'))}`",
            "",
            f"Gate: `{json.dumps(e.get('gate'))}`",
        ]
    else:
        lines.append("not run")
    judge = OUT / "judge-throughput.md"
    lines += ["", "## Judge throughput against a real server", ""]
    if judge.exists():
        lines += [
            "`bench/judge_throughput.py`: `transformers serve` on CPU running `tiny://judge`; judged samples per",
            "second through the `judge` scorer against the server's own throughput for the same request bodies sent",
            'by a plain thread pool with the same concurrency ("judge / server" = 1.0 means the scorer adds nothing).',
            "",
            judge.read_text().strip(),
        ]
    else:
        lines.append("not run")
    if NOTES.exists():
        lines += ["", "## Reading the numbers", "", NOTES.read_text().strip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    results = {p.stem: json.loads(p.read_text()) for p in OUT.glob("*.json")}
    seeds = sorted({int(k.rsplit("-s", 1)[1]) for k in results if k.startswith("tao-")}) or [0]
    scaling = sorted(int(k.removeprefix("scaling-n")) for k in results if k.startswith("scaling-n"))
    (ROOT / "docs" / "results.md").write_text(render(results, seeds, scaling, ["bench/results.py"]))
    print("wrote docs/results.md")
