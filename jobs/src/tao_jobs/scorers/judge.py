"""``judge``: an LLM judge behind any OpenAI-compatible chat completions endpoint (vLLM, TGI, llama.cpp, OpenAI).

Params:
- ``endpoint`` (required): the API base, ``http://host:port/v1`` (requests go to ``<endpoint>/chat/completions``;
  an endpoint already ending in ``/chat/completions`` is used as is).
- ``model`` (required): the model name sent in each request.
- ``mode`` (default ``"pointwise"``): ``"pointwise"``, ``"pairwise"`` or ``"group"``.
- ``rubric`` (optional): what to judge, appended to the judge's instructions (default: helpfulness,
  correctness and following the user's instructions).
- ``apiKeyEnv`` (default ``"OPENAI_API_KEY"``): the environment variable holding the API key, sent as
  ``Authorization: Bearer``; no header when the default variable is unset. Naming another variable that is
  unset is a params error (the key never appears in the spec).
- ``timeoutS`` (default 60): per-request timeout. ``retries`` (default 3): retries after a failed attempt
  (connection error, timeout, HTTP 408, 429 or 5xx), with exponential backoff ``backoffS * 2**(k-1)`` before
  retry ``k`` (``backoffS`` default 1, capped at 30 s; a numeric ``Retry-After`` on a 429 is honoured up
  to 60 s). Other HTTP errors (400, 401, 404...) are not retried.
- ``temperature`` (default 0), ``maxTokens`` (optional ``max_tokens``).
- ``responseFormat`` (default ``"json_schema"``): the ``response_format`` requested, ``"json_schema"`` (the
  verdict's JSON Schema, strict: vLLM and OpenAI constrain decoding to it), ``"json_object"`` or ``"none"``
  (for servers that support neither; the instructions still ask for JSON).
- ``concurrency`` (default 8): requests in flight at once across everything scored in one call of
  ``score_groups`` (the score stage passes the whole shard), not per prompt group: a group of 8 samples
  judged pointwise does not leave a server that batches 64 requests waiting for the next group.
- ``countRetries`` (group mode only, default 2): how many times a group verdict with the wrong number of
  scores (or no parseable score list) is answered with a correction before the group abstains.

Pointwise: one request per sample asking for ``{"score": <integer 1-10>, "reason": "..."}``; the score is
``(score - 1) / 9`` (1 -> 0.0, 10 -> 1.0; a non-integer number in [1, 10] is accepted as is).
Details ``{"verdict": score, "reason": str}``.

Pairwise: every unordered pair of samples (i, j) is judged twice, with i as response A and j as B, then
swapped (position bias); a verdict is ``{"winner": "A" | "B" | "tie", "reason": "..."}``. Each verdict
gives the winner 1 point and the loser 0, or both 0.5 on a tie. A sample's score is its *win rate*: points
over the number of parsed verdicts it took part in (``2 * (N - 1)`` when all parse). Two samples with
identical text are a tie in both orders without asking the judge. Cost: ``N * (N - 1)`` requests per prompt
(56 for 8 samples), against ``N`` for pointwise. Details ``{"wins", "losses", "ties",
"judgments", "unparseable"}``.

Group (RULER-style): one request per prompt shows all N samples, numbered, and asks for
``{"scores": [N integers 0-10], "reason": "..."}``, scored *relative to each other* (the best gets the
highest score); a sample's score is ``score / 10``. The ``json_schema`` response format fixes the count
(``minItems = maxItems = N``); a server that does not constrain decoding may reply with another count: the
reply is then kept in the conversation and followed by a user message saying what was wrong ("got 3 scores
for 4 responses") and asking again, so even a deterministic judge sees a different request; after
``countRetries`` such corrections every sample of the group abstains (details ``{"error": "no usable group
verdict after K attempt(s): ...", "raw": ...}``). Cost: 1 request per prompt (plus corrections), the
cheapest mode; ``stats()`` adds ``countRetries`` and ``wrongCount``. Details ``{"verdict", "reason",
"attempts"}``.

Unparseable verdicts (not JSON, a missing or out-of-range field, empty content) are counted in
``stats()["unparseable"]`` and never scored: pointwise, the sample *abstains* (score ``None``, details
``{"error": "unparseable verdict", "raw": <first 200 chars>}``); pairwise, the verdict is left out of both
samples' counts, and a sample with no parsed verdict (or a group of one sample) abstains. ``ScoringPlan``
then combines the sample's other scorers with their own weights; a sample on which every scorer abstained
has no combined score (``None``).

Endpoint failures are not verdicts: after the retries a ``JudgeEndpointError`` names the endpoint and the
last status or error, and the stage fails (a crash exit, so the orchestrator may retry the stage). A 200
response that is not a chat completion is the same error, not retried. Uses only the standard library.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from .base import Scorer, ScorerParamsError, check_keys, choice_param, number_param
from .json_valid import extract_json

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0
DEFAULT_RUBRIC = "Judge helpfulness, correctness, and how well the response follows the user's instructions."
REFERENCE_RUBRIC = (
    "Judge correctness against the reference answer: the best score only when the response's final answer "
    "agrees with the reference (same value or meaning; wording and format do not matter), the lowest when it "
    "contradicts it."
)
MAX_REASON_CHARS = 300
MAX_RAW_CHARS = 200

POINTWISE_SYSTEM = (
    "You are an impartial, strict judge of AI assistant responses. You are shown a conversation and the "
    "assistant's final response. Rate the response on a scale from 1 (very poor) to 10 (excellent).\n"
    "Rubric: {rubric}\n"
    'Answer with a JSON object only: {{"score": <integer from 1 to 10>, "reason": "<one short sentence>"}}.'
)
PAIRWISE_SYSTEM = (
    "You are an impartial, strict judge of AI assistant responses. You are shown a conversation and two "
    "candidate final responses, A and B. Decide which response is better; the order in which they are shown "
    "must not influence you, nor their length.\n"
    "Rubric: {rubric}\n"
    'Answer with a JSON object only: {{"winner": "A" or "B" or "tie", "reason": "<one short sentence>"}}.'
)
POINTWISE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "enum": list(range(1, 11))}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}
GROUP_SYSTEM = (
    "You are an impartial, strict judge of AI assistant responses. You are shown a conversation and {n} "
    "candidate final responses to it, numbered 1 to {n}. Score every response from 0 (worst) to 10 (best), "
    "relative to each other: the best gets the highest score, equally good responses get equal scores, and the "
    "order in which they are shown must not influence you.\n"
    "Rubric: {rubric}\n"
    'Answer with a JSON object only: {{"scores": [<{n} integers from 0 to 10, one per response, in order>], '
    '"reason": "<one short sentence>"}}.'
)
GROUP_CORRECTION = 'Your reply {problem}. Reply again with a JSON object whose "scores" list has exactly {n} integers.'
MODES = ("pointwise", "pairwise", "group")
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": {"type": "string"}},
    "required": ["winner", "reason"],
    "additionalProperties": False,
}


def group_schema(n: int) -> dict:
    """The JSON Schema of a group verdict for ``n`` samples (a server that constrains decoding to it can only
    answer with the right count)."""
    return {
        "type": "object",
        "properties": {
            "scores": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 10},
                "minItems": n,
                "maxItems": n,
            },
            "reason": {"type": "string"},
        },
        "required": ["scores", "reason"],
        "additionalProperties": False,
    }


class JudgeEndpointError(RuntimeError):
    """The judge endpoint could not be used (down, erroring, or not speaking the chat completions API)."""


def render_conversation(messages: list[dict]) -> str:
    return "\n\n".join(f"[{m.get('role', 'user')}]\n{m.get('content', '')}" for m in messages)


def parse_pointwise(content: str | None) -> tuple[float, str] | None:
    """(score in [0, 1], reason) from a pointwise verdict, or None when unparseable."""
    v = extract_json(content or "")
    if not isinstance(v, dict):
        return None
    s = v.get("score")
    if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or not 1 <= s <= 10:
        return None
    return (float(s) - 1.0) / 9.0, str(v.get("reason", ""))[:MAX_REASON_CHARS]


def parse_pairwise(content: str | None) -> str | None:
    """``"A"``, ``"B"`` or ``"tie"`` from a pairwise verdict, or None when unparseable."""
    v = extract_json(content or "")
    if not isinstance(v, dict) or not isinstance(v.get("winner"), str):
        return None
    w = v["winner"].strip()
    return {"a": "A", "b": "B", "tie": "tie"}.get(w.lower())


def parse_group(content: str | None, n: int) -> tuple[list[float] | None, list[str] | None, str]:
    """(scores in [0, 10], reasons, "") from a group verdict with exactly ``n`` scores, else (None, None,
    what was wrong): ``"got K scores for N responses"`` or ``"is not a JSON object with a scores list of
    numbers from 0 to 10"``."""
    v = extract_json(content or "")
    scores = v.get("scores") if isinstance(v, dict) else None
    if not isinstance(scores, list) or not all(
        not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x) and 0 <= x <= 10 for x in scores
    ):
        return None, None, "is not a JSON object with a scores list of numbers from 0 to 10"
    if len(scores) != n:
        return None, None, f"got {len(scores)} scores for {n} responses"
    reason = str(v.get("reason", ""))[:MAX_REASON_CHARS]
    return [float(x) for x in scores], [reason] * n, ""


class JudgeScorer(Scorer):
    def __init__(self, params: dict):
        allowed = {
            "endpoint",
            "model",
            "mode",
            "rubric",
            "apiKeyEnv",
            "timeoutS",
            "retries",
            "backoffS",
            "temperature",
            "maxTokens",
            "responseFormat",
            "concurrency",
            "countRetries",
        }
        problems = check_keys(params, allowed)
        endpoint = params.get("endpoint")
        u = urlparse(endpoint) if isinstance(endpoint, str) else None
        if u is None or u.scheme not in ("http", "https") or not u.netloc:
            problems.append(f"endpoint: must be an http(s) URL like http://host:port/v1, got {endpoint!r}")
            self.url = ""
        else:
            base = endpoint.rstrip("/")
            self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        self.model = params.get("model")
        if not isinstance(self.model, str) or not self.model:
            problems.append("model: required, the model name to send")
        self.mode = choice_param(params, "mode", MODES, "pointwise", problems)
        self.rubric = params.get("rubric", DEFAULT_RUBRIC)
        if not isinstance(self.rubric, str) or not self.rubric.strip():
            problems.append("rubric: must be a non-empty string")
        key_env = params.get("apiKeyEnv", "OPENAI_API_KEY")
        self.api_key = None
        if not isinstance(key_env, str) or not key_env:
            problems.append("apiKeyEnv: must be the name of an environment variable")
        else:
            self.api_key = os.environ.get(key_env) or None
            if self.api_key is None and "apiKeyEnv" in params:
                problems.append(f"apiKeyEnv: environment variable {key_env} is not set")
        self.timeout = number_param(params, "timeoutS", 60.0, problems, exclusive_minimum=0)
        self.retries = number_param(params, "retries", 3, problems, minimum=0, integer=True)
        self.backoff = number_param(params, "backoffS", 1.0, problems, minimum=0)
        self.temperature = number_param(params, "temperature", 0.0, problems, minimum=0)
        self.max_tokens = number_param(params, "maxTokens", None, problems, minimum=1, integer=True)
        self.response_format = choice_param(
            params, "responseFormat", ("json_schema", "json_object", "none"), "json_schema", problems
        )
        self.concurrency = number_param(params, "concurrency", 8, problems, minimum=1, integer=True)
        self.count_retries = number_param(params, "countRetries", 2, problems, minimum=0, integer=True)
        if "countRetries" in params and self.mode != "group":
            problems.append("countRetries: only applies to mode 'group'")
        if problems:
            raise ScorerParamsError(problems)
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "retries": 0, "verdicts": 0, "unparseable": 0, "abstained": 0}
        if self.mode == "group":
            self._counts |= {"countRetries": 0, "wrongCount": 0}
        self._counts["peakInFlight"] = 0  # the most requests this scorer had in flight at once
        self._flying = 0

    # --- HTTP ----------------------------------------------------------------------------------------
    def _in_flight(self, delta: int) -> None:
        with self._lock:
            self._flying += delta
            self._counts["peakInFlight"] = max(self._counts["peakInFlight"], self._flying)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def _body(self, system: str, user: str, schema: dict, name: str) -> dict:
        body: dict = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        elif self.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def complete(self, body: dict) -> str:
        """The first choice's message content (``""`` when null); JudgeEndpointError after the retries."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = "no attempt"
        delay = 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(max(delay, min(MAX_BACKOFF_S, self.backoff * 2 ** (attempt - 1))))
            delay = 0.0
            self._count("requests")
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            self._in_flight(+1)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                snippet = _snippet(e)
                last = f"HTTP {e.code}{': ' + snippet if snippet else ''}"
                if e.code not in RETRYABLE_STATUS:
                    raise JudgeEndpointError(f"judge endpoint {self.url}: {last} (not retried)") from e
                if e.code == 429:
                    delay = _retry_after(e)
                continue
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                reason = getattr(e, "reason", None) or e
                last = f"{type(e).__name__}: {reason}"
                continue
            finally:
                self._in_flight(-1)
            return self._content(raw)
        raise JudgeEndpointError(f"judge endpoint {self.url} failed after {self.retries + 1} attempt(s); last: {last}")

    def _content(self, raw: bytes) -> str:
        try:
            content = json.loads(raw)["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            text = raw[:MAX_RAW_CHARS].decode("utf-8", "replace")
            raise JudgeEndpointError(
                f"judge endpoint {self.url}: the response is not a chat completion ({text!r})"
            ) from e
        return content if isinstance(content, str) else ""

    def _map(self, fn, items: list) -> list:
        """``fn`` over ``items`` with up to ``concurrency`` requests in flight; the first error cancels the rest."""
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="judge")
        try:
            futures = [pool.submit(fn, x) for x in items]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # --- scoring -------------------------------------------------------------------------------------
    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float | None, object]]:
        return self.score_groups([(prompt, texts)])[0]

    def score_groups(self, groups: list[tuple[dict, list[str]]], on_done=None) -> list[list]:
        """All groups' requests go through one pool: up to ``concurrency`` in flight across the whole list
        (a shard), not one group at a time, so a group of 8 samples never leaves a 64-slot server idle.

        Each group is first planned as independent *requests* (pointwise: one per sample; pairwise: one
        per ordered pair; group: one per prompt) and a *finish* step that turns their answers into scores.
        ``on_done(i)`` is called (from the calling thread, in order) once group ``i`` is finished."""
        plans = [self._plan(prompt, texts) for prompt, texts in groups]
        calls = [(g, k) for g, (requests, _) in enumerate(plans) for k in range(len(requests))]
        answers: list[list] = [[None] * len(requests) for requests, _ in plans]

        def run(call: tuple[int, int]):
            g, k = call
            return plans[g][0][k]()

        for (g, k), answer in zip(calls, self._map(run, calls), strict=True):
            answers[g][k] = answer
        out = []
        for g, (_, finish) in enumerate(plans):
            out.append(finish(answers[g]))
            if on_done is not None:
                on_done(g)
        return out

    def _context(self, prompt: dict) -> str | None:
        """The conversation shown to the judge; None when the prompt cannot be judged (judge-with-reference
        without a reference)."""
        return f"[Conversation]\n{render_conversation(prompt.get('messages') or [])}"

    def _plan(self, prompt: dict, texts: list[str]):
        if not texts:
            return [], lambda _: []
        context = self._context(prompt)
        if context is None:
            return [], lambda _: [self._abstain(self.no_context_reason) for _ in texts]
        if self.mode == "pointwise":
            return self._pointwise(context, texts)
        if self.mode == "group":
            return self._group(context, texts)
        return self._pairwise(context, texts)

    no_context_reason: dict = {}

    def _abstain(self, details: dict) -> tuple[None, dict]:
        self._count("abstained")
        return None, dict(details)

    def _pointwise(self, context: str, texts: list[str]):
        system = POINTWISE_SYSTEM.format(rubric=self.rubric)

        def judge(text: str) -> tuple[float | None, object]:
            user = f"{context}\n\n[Response to judge]\n{text}"
            content = self.complete(self._body(system, user, POINTWISE_SCHEMA, "verdict"))
            parsed = parse_pointwise(content)
            if parsed is None:
                self._count("unparseable")
                return self._abstain({"error": "unparseable verdict", "raw": content[:MAX_RAW_CHARS]})
            self._count("verdicts")
            score, reason = parsed
            return score, {"verdict": round(score * 9 + 1, 6), "reason": reason}

        return [functools.partial(judge, t) for t in texts], lambda answers: answers

    def _group(self, context: str, texts: list[str]):
        """One request judging every sample of the prompt relative to the others (RULER-style); a reply with
        the wrong number of scores (or no parseable list) is answered with a correction in the same
        conversation, up to ``countRetries`` times, then every sample abstains."""
        n = len(texts)
        system = GROUP_SYSTEM.format(rubric=self.rubric, n=n)
        shown = "\n\n".join(f"[Response {i}]\n{t}" for i, t in enumerate(texts, start=1))
        user = f"{context}\n\n{shown}"
        schema = group_schema(n)

        def judge() -> list[tuple[float | None, object]]:
            body = self._body(system, user, schema, "scores")
            content = ""
            problem = "no reply"
            for attempt in range(self.count_retries + 1):
                if attempt:
                    self._count("countRetries")
                    body["messages"] = body["messages"] + [
                        {"role": "assistant", "content": content},
                        {"role": "user", "content": GROUP_CORRECTION.format(problem=problem, n=n)},
                    ]
                content = self.complete(body)
                scores, reasons, problem = parse_group(content, n)
                if scores is not None:
                    self._count("verdicts")
                    return [
                        (s / 10.0, {"verdict": s, "reason": r, "attempts": attempt + 1})
                        for s, r in zip(scores, reasons, strict=True)
                    ]
                self._count("wrongCount" if problem.startswith("got") else "unparseable")
            details = {"error": f"no usable group verdict after {self.count_retries + 1} attempt(s): {problem}"}
            details["raw"] = content[:MAX_RAW_CHARS]
            return [self._abstain(details) for _ in texts]

        return [judge], lambda answers: answers[0]

    def _pairwise(self, context: str, texts: list[str]):
        system = PAIRWISE_SYSTEM.format(rubric=self.rubric)
        n = len(texts)
        ordered = [(a, b) for i, j in itertools.combinations(range(n), 2) for a, b in ((i, j), (j, i))]
        to_ask = [(a, b) for a, b in ordered if texts[a] != texts[b]]

        def judge(pair: tuple[int, int]) -> str | None:
            a, b = pair
            user = f"{context}\n\n[Response A]\n{texts[a]}\n\n[Response B]\n{texts[b]}"
            winner = parse_pairwise(self.complete(self._body(system, user, PAIRWISE_SCHEMA, "comparison")))
            self._count("unparseable" if winner is None else "verdicts")
            return winner

        def finish(answers: list) -> list[tuple[float | None, object]]:
            verdicts = dict(zip(to_ask, answers, strict=True))
            tally = [{"wins": 0, "losses": 0, "ties": 0, "judgments": 0, "unparseable": 0} for _ in range(n)]
            for a, b in ordered:
                winner = verdicts.get((a, b), "tie")  # identical texts: a tie without asking
                if winner is None:
                    tally[a]["unparseable"] += 1
                    tally[b]["unparseable"] += 1
                    continue
                for k in (a, b):
                    tally[k]["judgments"] += 1
                if winner == "tie":
                    tally[a]["ties"] += 1
                    tally[b]["ties"] += 1
                else:
                    w, lose = (a, b) if winner == "A" else (b, a)
                    tally[w]["wins"] += 1
                    tally[lose]["losses"] += 1
            out: list[tuple[float | None, object]] = []
            for t in tally:
                if t["judgments"] == 0:
                    self._count("abstained")
                    reason = "no other sample to compare with" if n == 1 else "no parseable verdict"
                    out.append((None, t | {"error": reason}))
                else:
                    out.append(((t["wins"] + 0.5 * t["ties"]) / t["judgments"], t))
            return out

        return [functools.partial(judge, pair) for pair in to_ask], finish

    def stats(self) -> dict:
        with self._lock:
            return dict(self._counts)


def _snippet(e: urllib.error.HTTPError) -> str:
    try:
        body = e.read()[:MAX_RAW_CHARS].decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only for the message
        body = ""
    return " ".join(body.split())


def _retry_after(e: urllib.error.HTTPError) -> float:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(e.headers.get("Retry-After", ""))))
    except (TypeError, ValueError):
        return 0.0


class JudgeWithReferenceScorer(JudgeScorer):
    """``judge-with-reference``: the judge sees the prompt's ``reference`` (the gold answer) beside the
    conversation and judges agreement with it. Evaluation only (training prompts carry no references). Same
    params and modes as ``judge``; the default rubric asks whether the response's final answer agrees with the
    reference. A prompt without a reference is abstained on (details ``{"error": "no reference"}``): never
    scored as wrong, never as right, and no request is sent for it."""

    needs_reference = True
    no_context_reason = {"error": "no reference"}

    def __init__(self, params: dict):
        params = {"rubric": REFERENCE_RUBRIC} | dict(params)
        super().__init__(params)

    def _context(self, prompt: dict) -> str | None:
        ref = prompt.get("reference")
        if ref is None or ref == "" or ref == []:
            return None
        refs = ref if isinstance(ref, list) else [ref]
        shown = "\n".join(str(r) for r in refs)
        label = "[Reference answer]" if len(refs) == 1 else "[Reference answers (any one is right)]"
        return f"{super()._context(prompt)}\n\n{label}\n{shown}"
