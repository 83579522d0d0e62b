"""The round report (``report.md``) written by the evaluate stage: plain Markdown, readable in any viewer, with
the score distributions of base vs tuned as an SVG histogram beside it (``plots/scores.svg``, written by hand:
no plotting dependency in the images) and the same counts as a text table for viewers without images."""

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
        if r["score"] is None:  # every scorer abstained: not a score
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


def render_report(spec: dict, metrics: dict, rows: list[dict], prompts: list[dict], scorers: list[str]) -> str:
    run, params = spec["run"], spec["params"]
    b, t = metrics["base"], metrics["tuned"]
    decoding = "greedy" if params["temperature"] == 0 else f"temperature {params['temperature']}"
    out = [
        f"# Round {run['round']} of `{run['name']}`: base vs tuned",
        "",
        f"{b['n']} held-out prompts, {params['samplesPerPrompt']} sample(s) per prompt per model, {decoding}, "
        f"max {params['maxTokens']} tokens. Score = weighted mean of the scorers ({', '.join(scorers)}), "
        f"in [0, 1]. 95% CIs: bootstrap over prompts ({params.get('bootstrap', 1000)} resamples).",
        "",
        "| model | mean score | 95% CI | mean length (chars) |",
        "| --- | --- | --- | --- |",
        f"| base | {_fmt(b['mean'])} | {_fmt(b['ciLow'])} – {_fmt(b['ciHigh'])} | {b['meanLength']:.1f} |",
        f"| tuned | {_fmt(t['mean'])} | {_fmt(t['ciLow'])} – {_fmt(t['ciHigh'])} | {t['meanLength']:.1f} |",
        "",
        f"**Improvement: {metrics['improvement']:+.3f}** (95% CI {metrics['improvementCiLow']:+.3f} – "
        f"{metrics['improvementCiHigh']:+.3f}); tuned wins on {metrics['winRate']:.0%} of prompts, "
        f"ties on {metrics['tieRate']:.0%}, loses on {max(0.0, 1 - metrics['winRate'] - metrics['tieRate']):.0%}.",
        "",
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
    first = {(r["prompt_id"], r["model"]): r for r in rows if r["sample_id"] == 0}
    by_id = {p["prompt_id"]: p for p in prompts}
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
