"""``judge``: an LLM judge behind any OpenAI-compatible chat completions endpoint (vLLM, TGI, llama.cpp, OpenAI).

Params:
- ``endpoint`` (required): the API base, ``http://host:port/v1`` (requests go to ``<endpoint>/chat/completions``;
  an endpoint already ending in ``/chat/completions`` is used as is).
- ``model`` (required): the model name sent in each request.
- ``mode`` (default ``"pointwise"``): ``"pointwise"`` or ``"pairwise"``.
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
- ``concurrency`` (default 8): requests in flight at once within a prompt group.

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
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": {"type": "string"}},
    "required": ["winner", "reason"],
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
        self.mode = choice_param(params, "mode", ("pointwise", "pairwise"), "pointwise", problems)
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
        if problems:
            raise ScorerParamsError(problems)
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "retries": 0, "verdicts": 0, "unparseable": 0, "abstained": 0}

    # --- HTTP ----------------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

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
        if not texts:
            return []
        conversation = render_conversation(prompt.get("messages") or [])
        if self.mode == "pointwise":
            return self._pointwise(conversation, texts)
        return self._pairwise(conversation, texts)

    def _pointwise(self, conversation: str, texts: list[str]) -> list[tuple[float | None, object]]:
        system = POINTWISE_SYSTEM.format(rubric=self.rubric)

        def judge(text: str) -> tuple[float | None, object]:
            user = f"[Conversation]\n{conversation}\n\n[Response to judge]\n{text}"
            content = self.complete(self._body(system, user, POINTWISE_SCHEMA, "verdict"))
            parsed = parse_pointwise(content)
            if parsed is None:
                self._count("unparseable")
                self._count("abstained")
                return None, {"error": "unparseable verdict", "raw": content[:MAX_RAW_CHARS]}
            self._count("verdicts")
            score, reason = parsed
            return score, {"verdict": round(score * 9 + 1, 6), "reason": reason}

        return self._map(judge, texts)

    def _pairwise(self, conversation: str, texts: list[str]) -> list[tuple[float | None, object]]:
        system = PAIRWISE_SYSTEM.format(rubric=self.rubric)
        n = len(texts)
        tally = [{"wins": 0, "losses": 0, "ties": 0, "judgments": 0, "unparseable": 0} for _ in range(n)]
        ordered = [(a, b) for i, j in itertools.combinations(range(n), 2) for a, b in ((i, j), (j, i))]
        to_ask = [(a, b) for a, b in ordered if texts[a] != texts[b]]

        def judge(pair: tuple[int, int]) -> str | None:
            a, b = pair
            user = f"[Conversation]\n{conversation}\n\n[Response A]\n{texts[a]}\n\n[Response B]\n{texts[b]}"
            winner = parse_pairwise(self.complete(self._body(system, user, PAIRWISE_SCHEMA, "comparison")))
            self._count("unparseable" if winner is None else "verdicts")
            return winner

        verdicts = dict(zip(to_ask, self._map(judge, to_ask), strict=True))
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
