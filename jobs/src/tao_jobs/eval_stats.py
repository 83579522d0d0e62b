"""The evaluate stage's statistics: paired comparisons with bootstrap intervals, drift, the reward-hacking
guard and the gate verdict. Pure functions over scored rows, so they are tested without models.

The unit is the prompt: a prompt's score is the mean over its samples. Two models are compared on the prompts
both have a score for (paired), by the per-prompt difference; its mean gets a percentile bootstrap 95% CI
(resampling prompts, seeded). The gate rules here and in the workflow's gate (workflows/gate.ts) are the same
and are checked against the same fixtures (tests/fixtures/gate/), so the report and the round result agree.
"""

from __future__ import annotations

import json
import math
import random
import statistics

TIE_EPS = 1e-9
NO_TASK = "(none)"


def bootstrap_ci(values: list[float], resamples: int, seed: int) -> tuple[float, float]:
    """Percentile 95% CI of the mean of ``values`` (resampled with replacement)."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * (resamples - 1))], means[int(round(0.975 * (resamples - 1)))]


def per_prompt(rows: list[dict], model: str, field: str = "score") -> dict[tuple[str, str], float]:
    """(split, prompt_id) -> mean of the model's samples' ``field`` (samples without a score left out)."""
    acc: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r["model"] == model and r.get(field) is not None:
            acc.setdefault((r.get("split", "heldOut"), r["prompt_id"]), []).append(r[field])
    return {k: statistics.fmean(v) for k, v in acc.items()}


def summary(values: list[float], resamples: int, seed: int) -> dict:
    lo, hi = bootstrap_ci(values, resamples, seed)
    return {"mean": statistics.fmean(values) if values else float("nan"), "ciLow": lo, "ciHigh": hi, "n": len(values)}


def paired(a: dict, b: dict, keys: list, resamples: int, seed: int) -> dict:
    """``b - a`` per prompt over ``keys`` (prompts both have): mean change, its CI, win/tie rates."""
    keys = [k for k in keys if k in a and k in b]
    diffs = [b[k] - a[k] for k in keys]
    if not diffs:
        return {"change": float("nan"), "ciLow": float("nan"), "ciHigh": float("nan"), "n": 0}
    lo, hi = bootstrap_ci(diffs, resamples, seed)
    return {
        "before": statistics.fmean(a[k] for k in keys),
        "after": statistics.fmean(b[k] for k in keys),
        "change": statistics.fmean(diffs),
        "ciLow": lo,
        "ciHigh": hi,
        "n": len(diffs),
        "winRate": sum(d > TIE_EPS for d in diffs) / len(diffs),
        "tieRate": sum(abs(d) <= TIE_EPS for d in diffs) / len(diffs),
    }


def format_features(text: str, finish_reason: str | None) -> dict[str, bool]:
    """The answer's surface format: what a reward can push without the answer getting better."""
    stripped = text.strip()
    try:
        is_json = isinstance(json.loads(stripped), dict | list) if stripped else False
    except ValueError:
        is_json = False
    return {
        "truncated": finish_reason == "length",
        "empty": not stripped,
        "multiline": "\n" in stripped,
        "fenced": "```" in stripped,
        "json": is_json,
    }


def drift(rows: list[dict], models: tuple[str, ...]) -> dict:
    """Length (characters and tokens) and format shares per model; ``formatDrift`` is the largest absolute
    change of a format share from base to tuned, ``lengthChange`` the relative change of the mean length."""
    out: dict = {"length": {}, "tokens": {}, "format": {}}
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        out["length"][m] = statistics.fmean(len(r["text"]) for r in mine) if mine else float("nan")
        out["tokens"][m] = statistics.fmean(r.get("tokens") or 0 for r in mine) if mine else float("nan")
        feats = [format_features(r["text"], r.get("finish_reason")) for r in mine]
        out["format"][m] = {k: sum(f[k] for f in feats) / len(feats) for k in feats[0]} if feats else {}
    b, t = out["format"].get("base", {}), out["format"].get("tuned", {})
    out["formatDrift"] = max((abs(t[k] - b[k]) for k in b), default=0.0)
    base_len = out["length"].get("base") or 0.0
    out["lengthChange"] = (out["length"]["tuned"] - base_len) / base_len if base_len else float("nan")
    return out


def reward_hacking(reward: dict, quality: dict, tolerance: float, independent: bool) -> dict:
    """ "Reward up, quality flat or down": the training reward rose (its change exceeds ``tolerance`` and its
    paired 95% CI does not reach below 0) while the independent metric's change is at most ``tolerance``.

    Why not "the reward's CI lies above 0": a hack that moves a bounded reward a little while quality falls
    (brevity on a task whose answers are already short: reward +0.04, CI 0.00 to 0.11, accuracy -0.07) never
    clears that bar on a few dozen prompts, and a flag that a falling model escapes is the wrong way round.
    A false alarm only refuses a candidate whose independent metric is flat or down anyway. Not checked when
    the evaluation reuses the training scorers (the two are the same number)."""
    base = {
        "rewardChange": reward.get("change"),
        "rewardCiLow": reward.get("ciLow"),
        "rewardCiHigh": reward.get("ciHigh"),
        "qualityChange": quality.get("change"),
        "qualityCiLow": quality.get("ciLow"),
        "qualityCiHigh": quality.get("ciHigh"),
        "tolerance": tolerance,
    }
    if not independent:
        return base | {
            "checked": False,
            "flagged": False,
            "reason": "not checked: evaluation reuses the training scorers",
        }
    r, r_lo = reward.get("change", float("nan")), reward.get("ciLow", float("nan"))
    q = quality.get("change", float("nan"))
    if not (math.isfinite(r) and math.isfinite(r_lo) and math.isfinite(q)):
        return base | {"checked": False, "flagged": False, "reason": "not checked: no comparable scores"}
    reward_up = r > tolerance and r_lo >= 0
    flagged = reward_up and q <= tolerance
    if flagged:
        reason = (
            f"training reward up {r:+.3f} (95% CI {r_lo:+.3f} to {reward['ciHigh']:+.3f}) "
            f"while the independent metric moved {q:+.3f} (flat or down: at most {tolerance:g})"
        )
    elif reward_up:
        reason = f"training reward and independent metric both up ({r:+.3f}, {q:+.3f})"
    elif r <= tolerance:
        reason = f"training reward not up: changed {r:+.3f} (at most {tolerance:g})"
    else:
        reason = f"training reward not up: its 95% CI reaches below 0 ({r_lo:+.3f})"
    return base | {"checked": True, "flagged": flagged, "reason": reason}


def _fmt(x: float) -> str:
    return f"{x:+.4f}"


def _vs(ok: bool) -> str:
    return " >" if ok else ", not more than the required"


def gate_verdict(metrics: dict, gate: dict) -> dict:
    """The gate's decision from the evaluation metrics: the same rules as workflows/gate.ts.

    Checks, in order (the first failing one decides): the rule's statistic of candidate − base (``mean``:
    the mean change; ``ciLower``: the lower bound of its 95% CI) must exceed ``minImprovement``; the same
    against the promoted model when one was compared; with more than one task, no task's mean change below
    ``-maxTaskRegression``; no reward hacking unless ``rewardHacking: "allow"``; ``promote`` must be true.
    Returns ``{passed, rule, decidedBy, reason, statistic, threshold, checks: [{name, passed, detail}]}``.
    """
    rule, threshold = gate["rule"], gate["minImprovement"]
    key = "improvement" if rule == "mean" else "improvementCiLow"
    stat = metrics.get(key)
    checks: list[dict] = []
    if stat is None or not math.isfinite(stat):
        checks.append({"name": "rule", "passed": False, "detail": "evaluation produced no comparable scores"})
    else:
        what = "mean change" if rule == "mean" else "95% CI lower bound of the change"
        ok = stat > threshold
        checks.append({"name": "rule", "passed": ok, "detail": f"{rule}: {what} {_fmt(stat)}{_vs(ok)} {threshold}"})
    vs = metrics.get("vsPromoted")
    if vs and vs.get("compared"):
        s = vs.get("change") if rule == "mean" else vs.get("ciLow")
        ok = s is not None and math.isfinite(s) and s > threshold
        shown = _fmt(s) if s is not None and math.isfinite(s) else "n/a"
        checks.append(
            {
                "name": "promoted",
                "passed": ok,
                "detail": f"{rule} vs the promoted model: {shown}{_vs(ok)} {threshold}",
            }
        )
    tasks = metrics.get("tasks") or {}
    if len(tasks) > 1:
        bound = gate["maxTaskRegression"]
        worst = sorted((t["change"], name) for name, t in tasks.items() if t.get("n"))  # ties: by name
        bad = [(c, n) for c, n in worst if c < -bound]
        detail = (
            f"task {bad[0][1]!r} regressed {_fmt(bad[0][0])} (bound -{bound})"
            if bad
            else f"no task below -{bound} (worst {worst[0][1]!r} {_fmt(worst[0][0])})"
            if worst
            else "no task scored"
        )
        checks.append({"name": "tasks", "passed": not bad, "detail": detail})
    hack = metrics.get("rewardHacking") or {}
    if hack.get("flagged"):
        allowed = gate["rewardHacking"] == "allow"
        checks.append(
            {
                "name": "rewardHacking",
                "passed": allowed,
                "detail": f"reward hacking{' (allowed by gate.rewardHacking)' if allowed else ''}: {hack['reason']}",
            }
        )
    if not gate["promote"]:
        checks.append({"name": "promote", "passed": False, "detail": "promotion is disabled (gate.promote=false)"})
    failed = next((c for c in checks if not c["passed"]), None)
    decided = failed or checks[0]
    return {
        "passed": failed is None,
        "rule": rule,
        "statistic": stat,
        "threshold": threshold,
        "decidedBy": decided["name"],
        "reason": decided["detail"],
        "checks": checks,
    }
