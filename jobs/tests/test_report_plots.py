"""The round report's plot: base vs tuned score distributions as an SVG beside report.md, referenced from it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import make_spec, write_jsonl
from tao_jobs.eval_report import SCORES_PLOT, render_report, scores_svg
from tao_jobs.models.local import tiny_cached
from tao_jobs.stages import evaluate
from tao_jobs.store import Store

SVG = "{http://www.w3.org/2000/svg}"


def _rows(scores: dict[str, list]) -> list[dict]:
    return [
        {"prompt_id": f"p{i}", "model": m, "sample_id": 0, "score": s, "scores": {}, "text": "x"}
        for m, vals in scores.items()
        for i, s in enumerate(vals)
    ]


def _bars(svg: str) -> dict[str, list[str]]:
    """The bars' tooltips per fill colour."""
    root = ET.fromstring(svg)
    out: dict[str, list[str]] = {}
    for r in root.iter(f"{SVG}rect"):
        title = r.find(f"{SVG}title")
        if title is not None:
            out.setdefault(r.get("fill"), []).append(title.text)
    return out


def test_scores_svg_is_valid_svg_with_a_bar_per_model_and_bin():
    svg = scores_svg(_rows({"base": [0.0, 0.1, 0.15, 0.5, None], "tuned": [0.9, 0.95, 1.0, 0.5]}), bins=10)
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == f"{SVG}svg" and root.get("viewBox")
    bars = _bars(svg)
    assert [len(v) for v in bars.values()] == [10, 10]
    base, tuned = bars.values()
    assert base[0] == "base: 1 sample(s)" and base[1] == "base: 2 sample(s)"  # 0.1 and 0.15 share [0.1, 0.2)
    assert tuned[-1] == "tuned: 3 sample(s)"  # 0.9, 0.95 and 1.0 (the top edge is in the last bin)
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "base: n=4, mean 0.188" in texts and "tuned: n=4, mean 0.838" in texts  # None is not a score


def test_scores_outside_the_unit_interval_widen_the_axis_and_odd_input_is_safe():
    svg = scores_svg(_rows({"base": [-2.0, 0.0], "tuned": [3.0]}))
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "-2.00" in texts and "3.00" in texts
    empty = scores_svg(_rows({"base": [None], "tuned": []}))
    assert ET.fromstring(empty).tag == f"{SVG}svg"


def test_evaluate_writes_the_plot_beside_the_report_and_references_it(tmp_path):
    questions = ["How many legs does a spider have?", "How many days are in a week?"]
    rows = [{"prompt_id": f"h{i}", "messages": [{"role": "user", "content": q}]} for i, q in enumerate(questions)]
    write_jsonl(tmp_path / "in" / "heldout.jsonl", rows)
    base = tiny_cached("tiny://engine?steps=100").as_uri() + "/"
    tuned = tiny_cached("tiny://engine?steps=100&seed=1").as_uri() + "/"
    uri = make_spec("evaluate", tmp_path, inputs={"base": base, "tuned": tuned}, params={"maxTokens": 8})
    spec = json.loads(Path(uri.removeprefix("file://")).read_text())
    manifest = evaluate.run(spec, Store())
    out = Path(spec["output"].removeprefix("file://"))
    plot = out / SCORES_PLOT
    assert ET.parse(plot).getroot().tag == f"{SVG}svg"
    assert f"![Score distribution: base vs tuned]({SCORES_PLOT})" in (out / "report.md").read_text()
    assert SCORES_PLOT in [f["path"] for f in manifest["files"]]
    assert manifest["outputs"] == {"report": "report.md", "results": "eval.jsonl"}


def test_report_survives_samples_without_a_score():
    rows = _rows({"base": [0.5, None], "tuned": [None, 1.0]})
    metrics = {k: {"mean": 0.5, "ciLow": 0.5, "ciHigh": 0.5, "meanLength": 1.0, "n": 1} for k in ("base", "tuned")} | {
        "improvement": 0.0,
        "improvementCiLow": 0.0,
        "improvementCiHigh": 0.0,
        "winRate": 0.0,
        "tieRate": 1.0,
    }
    spec = {"run": {"round": 1, "name": "r"}, "params": {"temperature": 0, "samplesPerPrompt": 1, "maxTokens": 8}}
    prompts = [{"prompt_id": f"p{i}", "messages": [{"role": "user", "content": "q"}]} for i in range(2)]
    report = render_report(spec, metrics, rows, prompts, [])
    assert "base (n/a)" in report and SCORES_PLOT in report
