"""Judged samples per second through the ``judge`` scorer against a real OpenAI-compatible server, beside the
server's own throughput for the very same requests sent straight to it (no scorer in the way).

The server is ``transformers serve`` (CPU) running the tiny judge model (``tiny://judge``, built in code).
For each concurrency C and mode: the scorer judges a shard of P prompts x S samples with ``concurrency=C``
(``score_groups``: requests in flight across prompts); the same chat completion bodies are then sent to the
server by a plain pool of C threads. "keeps up" = judged/s over raw/s. Run from the repo root:

    PYTHONPATH=jobs/src:jobs/tests ~/.cache/tao/venv/bin/python bench/judge_throughput.py [--prompts 16]

Prints a Markdown table (and writes it to --out when given).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openai_server import chat, transformers_serve
from tao_jobs.models.local import tiny_cached
from tao_jobs.scorers.judge import JudgeScorer
from test_judge_real_server import JUDGE_MODEL, trivia_groups


class Recording(JudgeScorer):
    """The judge, recording every request body it sends (to replay them straight to the server)."""

    def __init__(self, params: dict):
        super().__init__(params)
        self.bodies: list[dict] = []

    def complete(self, body: dict) -> str:
        with self._lock:
            self.bodies.append(json.loads(json.dumps(body)))
        return super().complete(body)


def run(endpoint: str, model: str, mode: str, concurrency: int, prompts: int, samples: int) -> dict:
    groups = trivia_groups(prompts, samples, seed=concurrency)
    judge = Recording(
        {
            "endpoint": endpoint,
            "model": model,
            "responseFormat": "none",
            "maxTokens": 64 if mode == "group" else 48,
            "mode": mode,
            "concurrency": concurrency,
        }
    )
    t0 = time.perf_counter()
    results = judge.score_groups([(p, t) for p, t, _ in groups])
    judged_s = time.perf_counter() - t0
    # agreement of the verdicts with the truth (score above the middle iff the answer is right)
    verdicts = [
        (s, r) for res, (_, _, rs) in zip(results, groups, strict=True) for (s, _), r in zip(res, rs, strict=True)
    ]
    agree = [(s > 0.5) == r for s, r in verdicts if s is not None]
    bodies = judge.bodies
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(
            pool.map(
                lambda b: chat(endpoint, model, b["messages"], max_tokens=b.get("max_tokens", 48)),
                bodies,
            )
        )
    raw_s = time.perf_counter() - t0
    n = prompts * samples
    return {
        "mode": mode,
        "concurrency": concurrency,
        "samples": n,
        "requests": len(bodies),
        "judged_per_s": n / judged_s,
        "raw_requests_per_s": len(bodies) / raw_s,
        "raw_samples_per_s": n / raw_s,
        "keeps_up": raw_s / judged_s,
        "peak_in_flight": judge.stats()["peakInFlight"],
        "agreement": sum(agree) / len(agree) if agree else None,
        "stats": judge.stats(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument(
        "--continuous-batching",
        action="store_true",
        help="serve with --continuous-batching",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    with transformers_serve(tiny_cached(JUDGE_MODEL), continuous_batching=args.continuous_batching) as (ep, model):
        for mode in ("pointwise", "group"):
            for c in (int(x) for x in args.concurrency.split(",")):
                r = run(ep, model, mode, c, args.prompts, args.samples)
                rows.append(r)
                print(json.dumps(r), flush=True)
    lines = [
        (
            f"transformers serve (CPU{', continuous batching' if args.continuous_batching else ''}), "
            f"{args.prompts} prompts x {args.samples} samples, model {JUDGE_MODEL}"
        ),
        "",
        (
            "| mode | concurrency | requests | judged samples/s | server alone, same requests: samples/s | "
            "judge / server | peak in flight | verdicts agreeing with the truth |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['concurrency']} | {r['requests']} | {r['judged_per_s']:.2f} | "
            f"{r['raw_samples_per_s']:.2f} | {r['keeps_up']:.2f} | {r['peak_in_flight']} | "
            f"{r['agreement'] if r['agreement'] is None else format(r['agreement'], '.2f')} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
