"""Shared test helpers: valid stage specs for every stage, JSONL files, running a stage as a subprocess,
and a real SeaweedFS S3 server.

Import the plain helpers directly (``from conftest import make_spec, run_stage, write_jsonl``); the
fixtures (``artifact_root``, ``s3_server``) are picked up by pytest.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

JOBS_SRC = Path(__file__).resolve().parents[1] / "src"
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(JOBS_SRC) not in sys.path:
    sys.path.insert(0, str(JOBS_SRC))

SCORING = {
    "scorers": [
        {"name": "has_digit", "type": "regex", "weight": 1, "params": {"pattern": "[0-9]", "mode": "search"}},
        {"name": "short", "type": "length", "weight": 1, "params": {"max": 40, "unit": "chars"}},
    ],
    "tasks": {},
}

DEFAULT_INPUTS: dict[str, dict] = {
    "prepare": {"prompts": "in/prompts.jsonl", "model": "tiny://test?steps=0"},
    "generate": {"prompts": "in/prompts/shard-0000.jsonl", "model": "tiny://test?steps=0"},
    "score": {"prompts": "in/prompts/shard-0000.jsonl", "generations": "in/generations.jsonl"},
    "dataset": {
        "prompts": ["in/prompts/shard-0000.jsonl"],
        "generations": ["in/generations.jsonl"],
        "scores": ["in/scores.jsonl"],
    },
    "train": {"dataset": "in/dpo.jsonl", "model": "tiny://test?steps=0"},
    "evaluate": {"prompts": "in/heldout.jsonl", "base": "tiny://test?steps=0", "tuned": "in/model/"},
}

DEFAULT_PARAMS: dict[str, dict] = {
    "prepare": {"onInvalid": "fail", "heldOutFraction": 0.25, "shards": 2, "seed": 0},
    "generate": {
        "engine": "transformers",
        "samplesPerPrompt": 2,
        "strategies": ["plain"],
        "temperatures": [1.0],
        "topP": 1,
        "maxTokens": 8,
        "seed": 0,
    },
    "score": SCORING,
    "dataset": {"algorithm": "dpo", "minMargin": 0.1},
    "train": {
        "algorithm": "dpo",
        "minMargin": 0.1,
        "lora": {"r": 4, "alpha": 8, "dropout": 0, "targetModules": "all-linear"},
        "learningRate": 1e-3,
        "epochs": 1,
        "maxSteps": 2,
        "batchSize": 2,
        "beta": 0.1,
        "sftWeight": 1.0,
        "minScore": 0,
        "ktoQuantile": 0.25,
        "klCoef": 0.05,
        "fullFineTune": False,
        "seed": 0,
    },
    "evaluate": {"scoring": SCORING, "samplesPerPrompt": 1, "temperature": 0, "maxTokens": 8, "seed": 0},
}

_spec_counter = itertools.count()


def _resolve(value: object, base: Path) -> object:
    """Relative paths become file:// URIs under ``base``; URIs and lists of them pass through."""
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    if isinstance(value, str) and "://" not in value:
        return (base / value).as_uri() + ("/" if value.endswith("/") else "")
    return value


def _merge(defaults: dict, overrides: dict | None) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in (overrides or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = copy.deepcopy(v)
    return out


def make_spec(
    stage: str,
    tmp_path: Path,
    *,
    inputs: dict | None = None,
    params: dict | None = None,
    output: str | None = None,
    shard: dict | None = None,
    store: dict | None = None,
    key: str | None = None,
    extra: dict | None = None,
) -> str:
    """Writes a valid stage spec for ``stage`` under ``tmp_path/specs/`` and returns its file:// URI.

    ``inputs`` and ``params`` are merged over the stage's defaults (``DEFAULT_INPUTS``/``DEFAULT_PARAMS``);
    a value of ``None`` removes a key. Input values that are not URIs are paths relative to ``tmp_path``
    (``"in/prompts.jsonl"``; lists allowed). ``output`` defaults to ``file://<tmp_path>/out/<stage>-<n>/``.
    ``extra`` is merged into the top level last (use it to break the spec on purpose).
    """
    n = next(_spec_counter)
    key = key or f"{stage}-{n:04d}"
    doc = {
        "apiVersion": "tao/v1",
        "kind": "StageSpec",
        "stage": stage,
        "run": {"name": "test-run", "round": 1, "workflowId": "tao-round-test-run-1", "codeVersion": "test"},
        "key": key,
        "shard": shard,
        "output": output or (tmp_path / "out" / key).as_uri() + "/",
        "store": store or {},
        "inputs": {k: _resolve(v, tmp_path) for k, v in _merge(DEFAULT_INPUTS[stage], inputs).items()},
        "params": _merge(DEFAULT_PARAMS[stage], params),
    }
    doc.update(extra or {})
    path = tmp_path / "specs" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path.as_uri()


def write_jsonl(path: Path, rows: list, *, raw_lines: dict[int, str] | None = None) -> str:
    """Writes rows as JSON lines and returns the file:// URI. ``raw_lines`` replaces line N (1-based) with
    raw text, to plant a corrupt line."""
    lines = [json.dumps(r) for r in rows]
    for n, text in (raw_lines or {}).items():
        lines[n - 1] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path.as_uri()


def read_jsonl(path: Path | str) -> list[dict]:
    p = Path(str(path).removeprefix("file://"))
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def spec_output(spec_uri: str) -> str:
    """The output prefix (file:// URI ending in "/") of a spec written by ``make_spec``."""
    return json.loads(Path(spec_uri.removeprefix("file://")).read_text())["output"]


def read_manifest(output_uri: str) -> dict:
    return json.loads(Path(output_uri.removeprefix("file://"), "manifest.json").read_text())


@dataclass
class StageRun:
    rc: int
    stdout: str
    stderr: str
    reason: str

    def __iter__(self):  # rc, stdout, stderr, reason = run_stage(...)
        return iter((self.rc, self.stdout, self.stderr, self.reason))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def stage_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(JOBS_SRC), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    env.update(extra or {})
    return env


def run_stage(stage: str, spec_uri: str, *, env: dict | None = None, timeout: float = 300) -> StageRun:
    """Runs ``python -m tao_jobs <stage> --spec <uri>`` with TAO_TERMINATION_LOG pointing at a temp file;
    returns (rc, stdout, stderr, reason-file text)."""
    with tempfile.TemporaryDirectory(prefix="tao-reason-") as d:
        reason_file = Path(d) / "reason"
        p = subprocess.run(
            [sys.executable, "-m", "tao_jobs", stage, "--spec", spec_uri],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=stage_env({"TAO_TERMINATION_LOG": str(reason_file)} | (env or {})),
        )
        reason = reason_file.read_text() if reason_file.exists() else ""
    return StageRun(p.returncode, p.stdout, p.stderr, reason)


@pytest.fixture
def artifact_root(tmp_path: Path) -> Path:
    """A fresh directory for a test's artifacts (inputs under ``in/``, outputs under ``out/``)."""
    root = tmp_path / "artifacts"
    root.mkdir()
    return root


# --- a real S3 server --------------------------------------------------------------------------------


def _free_port() -> int:
    """A free loopback port whose +10000 neighbour (SeaweedFS's gRPC port) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def _weed_binary() -> Path | None:
    candidates = [Path(sys.executable).parent / "weed"]
    setup = REPO_ROOT / "scripts" / "setup-python.sh"
    if not candidates[0].exists() and setup.exists():
        venv = subprocess.run(["bash", str(setup)], capture_output=True, text=True).stdout.strip()
        candidates.append(Path(venv) / "bin" / "weed")
    return next((c for c in candidates if c.exists()), None)


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    env: dict  # AWS_* variables a client (or a stage subprocess) needs

    def store_options(self) -> dict:
        """The ``store`` block of a stage spec pointing at this server."""
        return {"s3": {"endpoint": self.endpoint, "region": "us-east-1", "forcePathStyle": True}}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS ``weed mini`` on free loopback ports in a fresh directory, with auth on, one bucket.

    Ready when a SigV4-signed HEAD of the bucket succeeds. Only the process started here is stopped.
    """
    weed = _weed_binary()
    if weed is None:
        pytest.fail("weed binary not found: run scripts/setup-python.sh")
    import boto3
    from botocore.config import Config

    data = tmp_path_factory.mktemp("weed")
    bucket = "tao-test"
    creds = {"AWS_ACCESS_KEY_ID": "taotest", "AWS_SECRET_ACCESS_KEY": "taotestsecret"}
    env = dict(os.environ) | creds
    ports = {name: _free_port() for name in ("s3", "master", "filer", "volume")}
    cmd = [
        str(weed),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={ports['s3']}",
        f"-master.port={ports['master']}",
        f"-filer.port={ports['filer']}",
        f"-volume.port={ports['volume']}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=128",
        f"-bucket={bucket}",
    ]
    log = open(data / "weed.log", "w")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=1),
    )
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed mini exited ({proc.returncode}): {(data / 'weed.log').read_text()[-2000:]}")
            try:
                client.head_bucket(Bucket=bucket)
                break
            except Exception as e:  # noqa: BLE001 - not ready yet
                if time.time() > deadline:
                    raise RuntimeError(f"weed mini not ready in 60 s: {(data / 'weed.log').read_text()[-2000:]}") from e
                time.sleep(0.3)
        yield S3Server(endpoint, bucket, creds | {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
