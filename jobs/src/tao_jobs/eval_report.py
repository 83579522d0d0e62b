"""The round report (``report.md``) written by the evaluate stage: plain Markdown, readable in any viewer."""

from __future__ import annotations

import statistics

MAX_EXAMPLES = 5
BAR = 20


def _fmt(x: float) -> str:
    return f"{x:.3f}"


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
    out += ["", "## Score distribution (samples)", "", *_histogram(rows), "", "## Examples", ""]
    first = {(r["prompt_id"], r["model"]): r for r in rows if r["sample_id"] == 0}
    by_id = {p["prompt_id"]: p for p in prompts}
    changed = sorted(
        (pid for pid in by_id if (pid, "base") in first and (pid, "tuned") in first),
        key=lambda pid: -(first[pid, "tuned"]["score"] - first[pid, "base"]["score"]),
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
