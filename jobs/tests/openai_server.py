"""A real OpenAI-compatible server on this machine: ``transformers serve`` (pinned transformers, its serving
extras pinned in jobs/requirements.txt) running a tiny model built in code. Used by the judge tests and
bench/judge_throughput.py. No download: the model is a local directory, HF_HUB_OFFLINE is set."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def transformers_serve(model_dir: Path, *, continuous_batching: bool = False, log: Path | None = None):
    """Yields ``(endpoint, model)`` for a ``transformers serve`` process serving ``model_dir`` on a free
    loopback port; stops it (its own process group) afterwards. RuntimeError with the log tail when it does
    not come up."""
    port = free_port()
    cli = Path(sys.executable).with_name("transformers")
    cmd = [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", str(model_dir)]
    if continuous_batching:
        cmd.insert(2, "--continuous-batching")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1", NO_COLOR="1")
    log = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"transformers-serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(
                    f"transformers serve not healthy after {START_TIMEOUT_S:.0f}s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.5)
        endpoint, model = f"http://127.0.0.1:{port}/v1", str(model_dir)
        # The first request loads the model: do it before anyone measures anything.
        chat(endpoint, model, [{"role": "user", "content": "warm up"}], max_tokens=4)
        yield endpoint, model
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def chat(endpoint: str, model: str, messages: list[dict], max_tokens: int = 64, timeout: float = 120) -> dict:
    """One plain chat completion request (no judge code in the way): the parsed JSON response."""
    body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
    req = urllib.request.Request(
        endpoint + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())
