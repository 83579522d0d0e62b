"""The round report (``report.md``) written by the evaluate stage: plain Markdown, readable in any viewer, with
the score distributions of base vs tuned as an SVG histogram beside it (``plots/scores.svg``, written by hand:
no plotting dependency in the images) and the same counts as a text table for viewers without images.

It says which scorers judged the round (the evaluation's own, or the training scorers by the user's choice),
the gate's rule and the numbers that decided, the training reward's change beside the independent metric's
(with the reward-hacking verdict), per-task and per-split (held-out, benchmark) changes, the comparison with
the promoted model, and drift (length, format, KL to base)."""

from __future__ import annotations

import math
import statistics
from xml.sax.saxutils import escape

MAX_EXAMPLES = 5
BAR = 20
SCORES_PLOT = "plots/scores.svg"
COLORS = {"base": "#8c8c8c", "tuned": "#1f77b4"}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _bar(x: float) -> str:
    n = max(0, min(BAR, round(x * BAR)))
    return "█" * n + "·" * (BAR - n)


def _quote(text: str, limit: int = 160) -> str:
    t = " ".join(text.split())
    t = t if len(t) <= limit else t[: limit - 1] + "…"
    return "`" + t.replace("`", "'") + "`" if t else "*(empty)*"


def _histogram(rows: list[dict]) -> list[str]:
    """Score distribution per model in five bins (a text plot)."""
    edges = [0.2, 0.4, 0.6, 0.8, 1.0]
    lines = ["| score | base | tuned |", "| --- | --- | --- |"]
    counts = {m: [0] * len(edges) for m in ("base", "tuned")}
    for r in rows:
        if r["score"] is None or r["model"] not in counts:  # abstained everywhere, or the promoted model
            continue
        i = next(i for i, e in enumerate(edges) if r["score"] <= e or i == len(edges) - 1)
        counts[r["model"]][i] += 1
    totals = {m: max(1, sum(c)) for m, c in counts.items()}
    lo = 0.0
    for i, e in enumerate(edges):
        cells = [f"{_bar(counts[m][i] / totals[m])} {counts[m][i]}" for m in ("base", "tuned")]
        lines.append(f"| {lo:.1f}–{e:.1f} | {cells[0]} | {cells[1]} |")
        lo = e
    return lines


def _change(d: dict) -> str:
    if not d or not d.get("n"):
        return "n/a"
    return f"{d['change']:+.3f} (95% CI {d['ciLow']:+.3f} – {d['ciHigh']:+.3f}, n={d['n']})"


def _gate(metrics: dict) -> list[str]:
    g = metrics.get("gate")
    if not g:
        return []
    out = [
        "## Gate",
        "",
        f"**{'Promote' if g['passed'] else 'Do not promote'}** — rule `{g['rule']}` (threshold {g['threshold']}); "
        f"decided by **{g['decidedBy']}**: {g['reason']}.",
        "",
    ]
    out += [f"- {'✔' if c['passed'] else '✘'} {c['name']}: {c['detail']}" for c in g["checks"]]
    return [*out, ""]


def _evidence(metrics: dict) -> list[str]:
    source = metrics.get("evaluationScorers", "training")
    names = metrics.get("scorerNames") or {}
    judged = (
        f"the evaluation's own scorers ({', '.join(names.get('evaluation', []))}), independent of the training reward"
        if source == "evaluation"
        else "the training scorers, reused by the spec's explicit choice (evaluation.reuseTrainingScorers): "
        "this evaluation is **not** independent of the reward the model was trained on"
    )
    q = {
        "n": metrics["base"]["n"],
        "change": metrics["improvement"],
        "ciLow": metrics["improvementCiLow"],
        "ciHigh": metrics["improvementCiHigh"],
    }
    r = metrics.get("reward") or {}
    hack = metrics.get("rewardHacking") or {}
    out = [
        "## Independent metric vs training reward",
        "",
        f"Judged by {judged}.",
        "",
        "| measure | base | tuned | change (tuned − base) |",
        "| --- | --- | --- | --- |",
        f"| independent metric | {_fmt(metrics['base']['mean'])} | {_fmt(metrics['tuned']['mean'])} | {_change(q)} |",
    ]
    if r.get("n"):
        out.append(
            f"| training reward ({', '.join(names.get('training', []))}) | {_fmt(r['before'])} | {_fmt(r['after'])} "
            f"| {_change(r)} |"
        )
    if hack:
        flag = "⚠ **reward hacking**" if hack.get("flagged") else "no reward hacking"
        out += ["", f"Reward-hacking guard (reward up, quality flat or down): {flag} — {hack.get('reason')}."]
    return [*out, ""]


def _groups(title: str, groups: dict) -> list[str]:
    if not groups or (len(groups) < 2 and title.startswith("Per task")):
        return []
    out = [f"## {title}", "", "| group | prompts | base | tuned | change (95% CI) |", "| --- | --- | --- | --- | --- |"]
    for name, d in groups.items():
        if d.get("n"):
            out.append(f"| {name} | {d['n']} | {_fmt(d['before'])} | {_fmt(d['after'])} | {_change(d)} |")
    return [*out, ""]


ARM_TITLES = {
    "labelledFineTuning": "labelled fine-tuning (SFT on the training prompts' references)",
    "bestOfN": "best-of-{n} at inference (the training scorers pick one of N samples)",
    "randomReward": "random-reward control (the round's samples, random rewards, same training)",
}


def _baselines(metrics: dict) -> list[str]:
    """Each baseline arm beside TAO, with the same paired statistics as candidate − base."""
    arms = metrics.get("baselines") or {}
    if not arms:
        return []
    t = metrics["tuned"]
    out = [
        "## Baselines beside TAO",
        "",
        "Each arm answers the same evaluation prompts and is scored by the same scorers; changes are paired per "
        "prompt with bootstrap 95% CIs. Arms do not gate promotion.",
        "",
        "| arm | mean score (95% CI) | arm − base | TAO − arm |",
        "| --- | --- | --- | --- |",
        f"| TAO (tuned) | {_fmt(t['mean'])} ({_fmt(t['ciLow'])} – {_fmt(t['ciHigh'])}) | {metrics['improvement']:+.3f} "
        f"(95% CI {metrics['improvementCiLow']:+.3f} – {metrics['improvementCiHigh']:+.3f}, n={t['n']}) | — |",
    ]
    for arm, a in arms.items():
        title = ARM_TITLES.get(arm, arm).replace("{n}", str(a.get("samplesPerPrompt", "N")))
        sc = a["score"]
        out.append(
            f"| {title} | {_fmt(sc['mean'])} ({_fmt(sc['ciLow'])} – {_fmt(sc['ciHigh'])}) | "
            f"{_change(a['vsBase'])} | {_change(a['taoVsArm'])} |"
        )
    return [*out, ""]


def _promoted(metrics: dict) -> list[str]:
    vs = metrics.get("vsPromoted")
    if not vs:
        return []
    if not vs.get("compared"):
        return ["## The promoted model", "", f"The promoted model `{vs['uri']}` is the {vs['sameAs']} model.", ""]
    return [
        "## The promoted model",
        "",
        f"`{vs['uri']}`: mean {_fmt(metrics['promoted']['mean'])}; tuned − promoted {_change(vs)}.",
        "",
    ]


def _drift(metrics: dict) -> list[str]:
    d = metrics.get("drift")
    if not d:
        return []
    models = list(d["length"])
    kl = metrics.get("klToBase")
    chars = ", ".join(f"{m} {d['length'][m]:.1f}" for m in models)
    tokens = ", ".join(f"{m} {d['tokens'][m]:.1f}" for m in models)
    out = [
        "## Drift",
        "",
        f"Mean length (chars): {chars} ({d['lengthChange']:+.0%} tuned vs base); tokens: {tokens}. "
        f"KL(tuned ‖ base) per token on the held-out answers: {'n/a' if kl is None else f'{kl:.4f}'}.",
        "",
        "| format (share of samples) | " + " | ".join(models) + " |",
        "| --- | " + " | ".join("---" for _ in models) + " |",
    ]
    for feat in d["format"].get("base", {}):
        out.append(f"| {feat} | " + " | ".join(f"{d['format'][m][feat]:.0%}" for m in models) + " |")
    out += ["", f"Largest format change, tuned vs base: {d['formatDrift']:.0%}.", ""]
    return out


def render_report(spec: dict, metrics: dict, rows: list[dict], prompts: list[dict], scorers: list[str]) -> str:
    run, params = spec["run"], spec["params"]
    b, t = metrics["base"], metrics["tuned"]
    decoding = "greedy" if params["temperature"] == 0 else f"temperature {params['temperature']}"
    splits = metrics.get("splits") or {}
    counted = " + ".join(f"{d['n']} {name}" for name, d in splits.items()) or f"{b['n']} held-out"
    out = [
        f"# Round {run['round']} of `{run['name']}`: base vs tuned",
        "",
        f"{counted} prompts, {params['samplesPerPrompt']} sample(s) per prompt per model, {decoding}, "
        f"max {params['maxTokens']} tokens. Score = weighted mean of the scorers ({', '.join(scorers)}), "
        f"in [0, 1]. 95% CIs: bootstrap over prompts ({params.get('bootstrap', 1000)} resamples).",
        "",
        *_gate(metrics),
        "| model | mean score | 95% CI | mean length (chars) |",
        "| --- | --- | --- | --- |",
        f"| base | {_fmt(b['mean'])} | {_fmt(b['ciLow'])} – {_fmt(b['ciHigh'])} | {b['meanLength']:.1f} |",
        f"| tuned | {_fmt(t['mean'])} | {_fmt(t['ciLow'])} – {_fmt(t['ciHigh'])} | {t['meanLength']:.1f} |",
        "",
        f"**Improvement: {metrics['improvement']:+.3f}** (95% CI {metrics['improvementCiLow']:+.3f} – "
        f"{metrics['improvementCiHigh']:+.3f}); tuned wins on {metrics['winRate']:.0%} of prompts, "
        f"ties on {metrics['tieRate']:.0%}, loses on {max(0.0, 1 - metrics['winRate'] - metrics['tieRate']):.0%}.",
        "",
        *_evidence(metrics),
        *_baselines(metrics),
        *_groups("Per task", metrics.get("tasks") or {}),
        *_groups("Held-out and benchmark", splits if "benchmark" in splits else {}),
        *_promoted(metrics),
        *_drift(metrics),
        "## Per scorer",
        "",
        "| scorer | base | tuned |",
        "| --- | --- | --- |",
    ]
    for name in scorers:
        vals = {
            m: [r["scores"][name] for r in rows if r["model"] == m and name in r["scores"]] for m in ("base", "tuned")
        }
        if vals["base"] and vals["tuned"]:
            out.append(f"| {name} | {_fmt(statistics.fmean(vals['base']))} | {_fmt(statistics.fmean(vals['tuned']))} |")
    out += ["", "## Score distribution (samples)", "", f"![Score distribution: base vs tuned]({SCORES_PLOT})", ""]
    out += [*_histogram(rows), "", "## Examples", ""]
    first = {(r["prompt_id"], r["model"]): r for r in rows if r["sample_id"] == 0 and r.get("split") != "benchmark"}
    by_id = {p["prompt_id"]: p for p in prompts if p.get("split") != "benchmark"}
    changed = sorted(
        (pid for pid in by_id if (pid, "base") in first and (pid, "tuned") in first),
        key=lambda pid: -((first[pid, "tuned"]["score"] or 0.0) - (first[pid, "base"]["score"] or 0.0)),
    )
    for pid in changed[:MAX_EXAMPLES]:
        question = by_id[pid]["messages"][-1]["content"]
        bt, tt = first[pid, "base"], first[pid, "tuned"]
        out += [
            f"- **{_quote(question, 100)}**",
            f"  - base ({_fmt(bt['score'])}): {_quote(bt['text'])}",
            f"  - tuned ({_fmt(tt['score'])}): {_quote(tt['text'])}",
        ]
    return "\n".join(out) + "\n"


def scores_svg(rows: list[dict], bins: int = 10) -> str:
    """An SVG histogram of the samples' combined scores, base vs tuned side by side in each bin (share of each
    model's scored samples), with each model's mean as a dashed line. Scores outside [0, 1] widen the axis."""
    models = ("base", "tuned")
    scores = {m: [float(r["score"]) for r in rows if r["model"] == m and r["score"] is not None] for m in models}
    every = [s for m in models for s in scores[m] if math.isfinite(s)]
    lo, hi = min([0.0, *every]), max([1.0, *every])
    width_of = (hi - lo) / bins
    counts = {m: [0] * bins for m in models}
    for m in models:
        for s in scores[m]:
            if math.isfinite(s):
                counts[m][min(bins - 1, int((s - lo) / width_of))] += 1
    shares = {m: [c / max(1, len(scores[m])) for c in counts[m]] for m in models}
    peak = max([0.0, *shares["base"], *shares["tuned"]]) or 1.0
    step = next(st for st in (0.05, 0.1, 0.2, 0.25) if math.ceil(peak / st - 1e-9) <= 6)  # y ticks, at most 6
    ticks = math.ceil(peak / step - 1e-9)
    top = ticks * step

    w, h, left, right, up, down = 640, 330, 56, 16, 52, 48
    pw, ph = w - left - right, h - up - down

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    def y(share: float) -> float:
        return up + ph - share / top * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2:.1f}" y="18" text-anchor="middle" font-size="13">'
        f"{escape('Combined score per sample: base vs tuned')}</text>",
    ]
    for i in range(ticks + 1):  # horizontal grid and y labels
        share = step * i
        out.append(f'<line x1="{left}" y1="{y(share):.1f}" x2="{w - right}" y2="{y(share):.1f}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{left - 6}" y="{y(share) + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    bar = pw / bins * 0.4
    for b in range(bins):
        x0 = x(lo + b * width_of)
        for j, m in enumerate(models):
            share = shares[m][b]
            bx = x0 + pw / bins * 0.1 + j * bar
            out.append(
                f'<rect x="{bx:.1f}" y="{y(share):.1f}" width="{bar:.1f}" height="{y(0) - y(share):.1f}" '
                f'fill="{COLORS[m]}"><title>{m}: {counts[m][b]} sample(s)</title></rect>'
            )
    for b in range(bins + 1):  # x ticks at the bin edges, labelled every other edge
        v = lo + b * width_of
        out.append(f'<line x1="{x(v):.1f}" y1="{y(0):.1f}" x2="{x(v):.1f}" y2="{y(0) + 4:.1f}" stroke="black"/>')
        if b % 2 == 0:
            out.append(f'<text x="{x(v):.1f}" y="{y(0) + 16:.1f}" text-anchor="middle">{v:.2f}</text>')
    out.append(f'<line x1="{left}" y1="{y(0):.1f}" x2="{w - right}" y2="{y(0):.1f}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{up}" x2="{left}" y2="{y(0):.1f}" stroke="black"/>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{h - 12}" text-anchor="middle">combined score</text>')
    out.append(
        f'<text x="14" y="{up + ph / 2:.1f}" text-anchor="middle" transform="rotate(-90 14 {up + ph / 2:.1f})">'
        "share of samples</text>"
    )
    for j, m in enumerate(models):  # means and the legend
        label = f"{m}: n={len(scores[m])}"
        if scores[m]:
            mean = statistics.fmean(scores[m])
            out.append(
                f'<line x1="{x(mean):.1f}" y1="{up}" x2="{x(mean):.1f}" y2="{y(0):.1f}" stroke="{COLORS[m]}" '
                'stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
            label += f", mean {mean:.3f}"
        lx, ly = left + j * 260, 38  # the legend, above the plot
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{COLORS[m]}"/>')
        out.append(f'<text x="{lx + 14}" y="{ly}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
