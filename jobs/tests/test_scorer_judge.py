"""``judge`` against a hand-written stand-in server (``FakeJudge``: http.server on a loopback port) that
returns scripted verdicts, garbage, errors and delays: the failure cases a real model server cannot be made
to produce on demand. The same scorer against a real server (``transformers serve`` running a tiny judge
model) is tested in test_judge_real_server.py."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tao_jobs.contract import InvalidSpec
from tao_jobs.scorers import ScoringPlan
from tao_jobs.scorers.base import ScorerParamsError
from tao_jobs.scorers.judge import JudgeEndpointError, JudgeScorer

P = {"prompt_id": "p", "messages": [{"role": "user", "content": "Write a greeting."}], "task": "chat"}
POINTWISE_RE = re.compile(r"\[Response to judge\]\n(.*)\Z", re.DOTALL)
PAIRWISE_RE = re.compile(r"\[Response A\]\n(.*)\n\n\[Response B\]\n(.*)\Z", re.DOTALL)


def completion(content: str | None) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "judge-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }


class Server(ThreadingHTTPServer):
    request_queue_size = 64  # the default 5 overflows with 8 concurrent requests (1 s SYN retransmits)
    daemon_threads = True


class FakeJudge:
    """A chat completions server. ``behave(body, n)`` (n: 1-based request count) returns (status, payload)
    where payload is a dict (sent as JSON) or a str (sent as is)."""

    def __init__(self, behave: Callable[[dict, int], tuple[int, object]]):
        self.behave = behave
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with judge.lock:
                    judge.requests.append(body)
                    judge.headers.append(dict(self.headers))
                    judge.paths.append(self.path)
                    n = len(judge.requests)
                status, payload = judge.behave(body, n)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(behave) -> FakeJudge:
        s = FakeJudge(behave)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def user_text(body: dict) -> str:
    return body["messages"][-1]["content"]


def pointwise_verdicts(body: dict, n: int) -> tuple[int, object]:
    """Scores the response by the digit it contains; "garbage"/"oob"/"null" give unparseable verdicts."""
    response = POINTWISE_RE.search(user_text(body)).group(1)
    if "garbage" in response:
        return 200, completion("Sure! I'd rate this pretty highly.")
    if "oob" in response:
        return 200, completion('{"score": 11, "reason": "off the scale"}')
    if "null" in response:
        return 200, completion(None)
    digit = re.search(r"\d+", response)
    return 200, completion(json.dumps({"score": int(digit.group(0)), "reason": f"rated {digit.group(0)}"}))


def counts(scorer: JudgeScorer) -> dict:
    """The scorer's counters without the in-flight peak (timing-dependent)."""
    return {k: v for k, v in scorer.stats().items() if k != "peakInFlight"}


def judge(endpoint: str, **params) -> JudgeScorer:
    return JudgeScorer({"endpoint": endpoint, "model": "judge-test", "backoffS": 0.01} | params)


def test_pointwise_structured_verdicts(serve, monkeypatch):
    monkeypatch.setenv("TAO_TEST_JUDGE_KEY", "sekret")
    server = serve(pointwise_verdicts)
    scorer = judge(server.endpoint, apiKeyEnv="TAO_TEST_JUDGE_KEY", rubric="Be warm.")
    results = scorer.score_group(P, ["hello 10", "hi 1", "hey 4"])
    assert [s for s, _ in results] == [1.0, 0.0, pytest.approx(3 / 9)]
    assert results[0][1] == {"verdict": 10, "reason": "rated 10"}
    body = server.requests[0]
    assert server.paths == ["/v1/chat/completions"] * 3
    assert body["model"] == "judge-test" and body["temperature"] == 0
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["score", "reason"]
    assert "Rubric: Be warm." in body["messages"][0]["content"]
    assert "[user]\nWrite a greeting." in user_text(body)
    assert all(h["Authorization"] == "Bearer sekret" for h in server.headers)
    assert counts(scorer) == {"requests": 3, "retries": 0, "verdicts": 3, "unparseable": 0, "abstained": 0}


def test_unparseable_verdicts_are_counted_and_abstain(serve):
    server = serve(pointwise_verdicts)
    scorer = judge(server.endpoint, responseFormat="json_object")
    results = scorer.score_group(P, ["fine 7", "garbage", "oob", "null"])
    assert results[0] == (pytest.approx(6 / 9), {"verdict": 7, "reason": "rated 7"})
    assert [s for s, _ in results[1:]] == [None, None, None]
    assert results[1][1] == {"error": "unparseable verdict", "raw": "Sure! I'd rate this pretty highly."}
    assert results[2][1]["raw"] == '{"score": 11, "reason": "off the scale"}'
    assert results[3][1] == {"error": "unparseable verdict", "raw": ""}
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    assert counts(scorer) == {"requests": 4, "retries": 0, "verdicts": 1, "unparseable": 3, "abstained": 3}


def test_plan_leaves_abstained_judge_scores_out_of_the_combination(serve):
    server = serve(pointwise_verdicts)
    scorers = [
        {"name": "judge", "type": "judge", "weight": 3, "params": {"endpoint": server.endpoint, "model": "m"}},
        {"name": "short", "type": "length", "weight": 1, "params": {"max": 10}},
    ]
    plan = ScoringPlan.from_params({"scorers": scorers, "tasks": {"judged-only": ["judge"]}})
    rows = plan.score_group(P, ["ok 10", "garbage!!!!!!"])  # lengths 5 and 13
    assert rows[0]["combined"] == pytest.approx((3 * 1.0 + 1 * 1.0) / 4)
    assert "abstained" not in rows[0]
    # The unparseable verdict gives no judge score: the length score alone (weight 1 of 1) is the combination.
    assert rows[1]["scores"] == {"short": pytest.approx(0.7)}
    assert rows[1]["combined"] == rows[1]["scores"]["short"]
    assert rows[1]["abstained"] == ["judge"] and rows[1]["details"]["judge"]["error"] == "unparseable verdict"
    # With the judge alone, a sample it abstained on has no combined score at all.
    only = plan.score_group(P | {"task": "judged-only"}, ["ok 8", "garbage"])
    assert only[0]["combined"] == pytest.approx(7 / 9)
    assert only[1]["combined"] is None and only[1]["scores"] == {} and only[1]["abstained"] == ["judge"]
    assert plan.stats()["judge"]["unparseable"] == 2


def test_500s_are_retried_and_counted(serve):
    server = serve(lambda body, n: (500, {"error": "overloaded"}) if n <= 2 else pointwise_verdicts(body, n))
    scorer = judge(server.endpoint, retries=3)
    assert scorer.score_group(P, ["good 10"]) == [(1.0, {"verdict": 10, "reason": "rated 10"})]
    assert counts(scorer) == {"requests": 3, "retries": 2, "verdicts": 1, "unparseable": 0, "abstained": 0}


def test_429_is_retried(serve):
    server = serve(lambda body, n: (429, {"error": "slow down"}) if n == 1 else pointwise_verdicts(body, n))
    scorer = judge(server.endpoint)
    assert scorer.score_group(P, ["good 1"]) == [(0.0, {"verdict": 1, "reason": "rated 1"})]
    assert scorer.stats()["retries"] == 1


def test_an_endpoint_that_keeps_failing_is_a_clear_error(serve):
    server = serve(lambda body, n: (503, "upstream unavailable"))
    scorer = judge(server.endpoint, retries=2)
    with pytest.raises(JudgeEndpointError) as e:
        scorer.score_group(P, ["x 5"])
    assert str(e.value) == (
        f"judge endpoint {server.endpoint}/chat/completions failed after 3 attempt(s); "
        "last: HTTP 503: upstream unavailable"
    )
    assert len(server.requests) == 3 and scorer.stats()["retries"] == 2


def test_client_errors_are_not_retried(serve):
    server = serve(lambda body, n: (404, {"error": {"message": "model 'judge-test' not found"}}))
    with pytest.raises(JudgeEndpointError, match=r"HTTP 404: .*model 'judge-test' not found.* \(not retried\)"):
        judge(server.endpoint).score_group(P, ["x 5"])
    assert len(server.requests) == 1


def test_a_response_that_is_not_a_chat_completion_is_an_error(serve):
    server = serve(lambda body, n: (200, {"status": "ok"}))
    with pytest.raises(JudgeEndpointError, match="the response is not a chat completion"):
        judge(server.endpoint).score_group(P, ["x 5"])


def test_endpoint_down_names_the_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    scorer = judge(f"http://127.0.0.1:{port}/v1", retries=1)
    with pytest.raises(JudgeEndpointError) as e:
        scorer.score_group(P, ["x 5"])
    assert str(e.value).startswith(f"judge endpoint http://127.0.0.1:{port}/v1/chat/completions failed after 2")
    assert "Connection refused" in str(e.value)


def pairwise(prefer: Callable[[str, str], str | None]) -> Callable[[dict, int], tuple[int, object]]:
    def behave(body: dict, n: int) -> tuple[int, object]:
        a, b = PAIRWISE_RE.search(user_text(body)).groups()
        winner = prefer(a, b)
        if winner is None:
            return 200, completion("A is better, I guess")
        return 200, completion(json.dumps({"winner": winner, "reason": "because"}))

    return behave


def seen_pairs(server: FakeJudge) -> list[tuple[str, str]]:
    return sorted(PAIRWISE_RE.search(user_text(b)).groups() for b in server.requests)


def test_pairwise_asks_both_orders_and_scores_win_rates(serve):
    # A consistent judge: the response with more "!" wins, equal counts tie.
    def prefer(a, b):
        return "A" if a.count("!") > b.count("!") else "B" if b.count("!") > a.count("!") else "tie"

    server = serve(pairwise(prefer))
    texts = ["hi!!!", "hi!", "hey!", "hi"]
    scorer = judge(server.endpoint, mode="pairwise")
    results = scorer.score_group(P, texts)
    assert seen_pairs(server) == sorted((a, b) for a in texts for b in texts if a != b)  # 12 = 4 * 3
    # hi!!! beats all 3 (6 verdicts); hi! and hey! each beat "hi", lose to hi!!!, tie each other.
    assert [s for s, _ in results] == [1.0, 0.5, 0.5, 0.0]
    assert results[1][1] == {"wins": 2, "losses": 2, "ties": 2, "judgments": 6, "unparseable": 0}
    body = server.requests[0]
    assert body["response_format"]["json_schema"]["schema"]["properties"]["winner"]["enum"] == ["A", "B", "tie"]


def test_pairwise_cancels_position_bias(serve):
    server = serve(pairwise(lambda a, b: "A"))  # always picks the first response shown
    results = judge(server.endpoint, mode="pairwise").score_group(P, ["one", "two", "three"])
    assert [s for s, _ in results] == [0.5, 0.5, 0.5]


def test_pairwise_unparseable_verdicts_are_excluded(serve):
    # Verdicts on the pair (x, z) in either order are garbage; x beats y both ways.
    def prefer(a, b):
        if {a, b} == {"x", "z"}:
            return None
        return {"xy": "A", "yx": "B", "yz": "A", "zy": "B"}[a + b]

    server = serve(pairwise(prefer))
    scorer = judge(server.endpoint, mode="pairwise")
    results = scorer.score_group(P, ["x", "y", "z"])
    assert [s for s, _ in results] == [1.0, 0.5, 0.0]
    assert results[0][1] == {"wins": 2, "losses": 0, "ties": 0, "judgments": 2, "unparseable": 2}
    assert counts(scorer) == {"requests": 6, "retries": 0, "verdicts": 4, "unparseable": 2, "abstained": 0}


def test_pairwise_identical_texts_tie_without_asking_and_single_samples_abstain(serve):
    server = serve(pairwise(lambda a, b: "A" if a == "long answer" else "B"))
    scorer = judge(server.endpoint, mode="pairwise")
    results = scorer.score_group(P, ["same", "same", "long answer"])
    assert len(server.requests) == 4  # (same, long) x 2 orders x 2 copies; same-vs-same not asked
    assert [s for s, _ in results] == [0.25, 0.25, 1.0]
    (score, details) = scorer.score_group(P, ["alone"])[0]
    assert score is None and details["error"] == "no other sample to compare with"
    # All verdicts unparseable: every sample abstains.
    garbage = serve(pairwise(lambda a, b: None))
    results = judge(garbage.endpoint, mode="pairwise").score_group(P, ["a", "b"])
    assert [s for s, _ in results] == [None, None] and results[0][1]["error"] == "no parseable verdict"


def test_bad_params(monkeypatch):
    monkeypatch.delenv("TAO_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ScorerParamsError) as e:
        JudgeScorer(
            {"endpoint": "localhost:8000", "mode": "listwise", "apiKeyEnv": "TAO_TEST_UNSET_KEY", "retries": -1}
        )
    assert e.value.problems == [
        "endpoint: must be an http(s) URL like http://host:port/v1, got 'localhost:8000'",
        "model: required, the model name to send",
        "mode: must be one of 'pointwise', 'pairwise', 'group', got 'listwise'",
        "apiKeyEnv: environment variable TAO_TEST_UNSET_KEY is not set",
        "retries: must be an integer >= 0, got -1",
    ]
    with pytest.raises(InvalidSpec, match=r"params.scorers.0.params.model: required"):
        ScoringPlan.from_params({"scorers": [{"name": "j", "type": "judge", "params": {"endpoint": "http://h/v1"}}]})
    explicit = JudgeScorer({"endpoint": "https://api.example.com/v1/chat/completions/", "model": "m"})
    assert explicit.url == "https://api.example.com/v1/chat/completions"


GROUP_RE = re.compile(r"\[Response (\d+)\]\n")


def test_fake_server_sees_concurrency_across_prompt_groups(serve):
    """8 prompts of 1 sample each, concurrency 8: all 8 requests are in flight together (a per-group pool
    would send them one at a time). The stand-in server holds each request until 8 are waiting (or 5 s)."""
    arrived = threading.Semaphore(0)
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def behave(body, n):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        arrived.release()
        deadline = time.time() + 5
        while time.time() < deadline and state["peak"] < 8:
            time.sleep(0.01)
        with lock:
            state["now"] -= 1
        return pointwise_verdicts(body, n)

    server = serve(behave)
    scorer = judge(server.endpoint, concurrency=8)
    groups = [(P | {"prompt_id": f"p{i}"}, [f"answer {i + 1}"]) for i in range(8)]
    done = []
    results = scorer.score_groups(groups, on_done=done.append)
    # requests of different groups were in flight together (not a timing: the server counted them)
    assert state["peak"] == 8 and scorer.stats()["peakInFlight"] == 8
    assert [r[0][0] for r in results] == [pytest.approx(i / 9) for i in range(8)]  # each group its own verdict
    assert done == list(range(8))
    # Through the plan (what the score stage calls): the same requests, the same results.
    plan = ScoringPlan.from_params(
        {"scorers": [{"name": "j", "type": "judge", "params": {"endpoint": server.endpoint, "model": "m"}}]}
    )
    rows = plan.score_groups(groups)
    assert [r[0]["scores"]["j"] for r in rows] == [r[0][0] for r in results]


def group_verdicts(short_first: bool = False, garbage: bool = False):
    """Scores each numbered response by the digit in it; ``short_first``: the first reply of a conversation
    leaves the last score out; ``garbage``: never a usable reply."""

    def behave(body: dict, n: int) -> tuple[int, object]:
        first_user = body["messages"][1]["content"]
        texts = re.split(r"\n\n\[Response \d+\]\n", first_user)[1:]
        scores = [int(re.search(r"\d+", t).group(0)) for t in texts]
        if garbage:
            return 200, completion("they are all fine")
        if short_first and len(body["messages"]) == 2:
            scores = scores[:-1]
        return 200, completion(json.dumps({"scores": scores, "reason": "by digit"}))

    return behave


def test_fake_server_group_mode_scores_all_samples_in_one_request(serve):
    server = serve(group_verdicts())
    scorer = judge(server.endpoint, mode="group")
    results = scorer.score_group(P, ["a 10", "b 0", "c 5"])
    assert [s for s, _ in results] == [1.0, 0.0, 0.5]
    assert results[0][1] == {"verdict": 10, "reason": "by digit", "attempts": 1}
    assert len(server.requests) == 1
    body = server.requests[0]
    assert GROUP_RE.findall(user_text(body)) == ["1", "2", "3"]
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["scores"]["minItems"] == schema["properties"]["scores"]["maxItems"] == 3
    assert "3 candidate final responses" in body["messages"][0]["content"]
    assert counts(scorer) == {
        "requests": 1,
        "retries": 0,
        "verdicts": 1,
        "unparseable": 0,
        "abstained": 0,
        "countRetries": 0,
        "wrongCount": 0,
    }


def test_fake_server_group_mode_corrects_a_wrong_count_in_the_conversation(serve):
    server = serve(group_verdicts(short_first=True))
    scorer = judge(server.endpoint, mode="group")
    results = scorer.score_group(P, ["a 10", "b 0", "c 5", "d 1"])
    assert [s for s, _ in results] == [1.0, 0.0, 0.5, 0.1]
    assert all(d["attempts"] == 2 for _, d in results)
    retry = server.requests[1]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert json.loads(retry[2]["content"])["scores"] == [10, 0, 5]
    assert retry[3]["content"].startswith("Your reply got 3 scores for 4 responses.")
    assert counts(scorer)["countRetries"] == 1 and counts(scorer)["wrongCount"] == 1


def test_fake_server_group_mode_abstains_after_count_retries(serve):
    server = serve(group_verdicts(garbage=True))
    scorer = judge(server.endpoint, mode="group", countRetries=1)
    results = scorer.score_group(P, ["a 1", "b 2"])
    assert [s for s, _ in results] == [None, None]
    assert results[0][1]["error"].startswith("no usable group verdict after 2 attempt(s): is not a JSON object")
    assert len(server.requests) == 2
    assert counts(scorer) == {
        "requests": 2,
        "retries": 0,
        "verdicts": 0,
        "unparseable": 2,
        "abstained": 2,
        "countRetries": 1,
        "wrongCount": 0,
    }
    with pytest.raises(ScorerParamsError, match="countRetries: only applies to mode 'group'"):
        judge(server.endpoint, countRetries=1)


def test_fake_server_judge_with_reference_shows_the_reference_and_abstains_without_one(serve):
    server = serve(pointwise_verdicts)
    plan = ScoringPlan.from_params(
        {
            "scorers": [
                {"name": "r", "type": "judge-with-reference", "params": {"endpoint": server.endpoint, "model": "m"}}
            ]
        }
    )
    rows = plan.score_group(P | {"reference": "8"}, ["it is 8"])
    assert rows[0]["scores"]["r"] == pytest.approx(7 / 9)
    text = user_text(server.requests[0])
    assert "[Reference answer]\n8\n\n[Response to judge]\nit is 8" in text
    assert "agrees with the reference" in server.requests[0]["messages"][0]["content"]
    rows = plan.score_group(P | {"reference": ["8", "eight"]}, ["it is 9"])
    assert "[Reference answers (any one is right)]\n8\neight" in user_text(server.requests[1])
    rows = plan.score_group(P, ["it is 8", "it is 9"])  # no reference: abstains, nothing sent
    assert [r["combined"] for r in rows] == [None, None] and rows[0]["details"]["r"] == {"error": "no reference"}
    assert len(server.requests) == 2
    from tao_jobs.scorers.registry import needs_reference

    assert needs_reference("judge-with-reference", {})
