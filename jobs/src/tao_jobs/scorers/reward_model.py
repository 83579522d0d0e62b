"""``reward-model``: a Hugging Face sequence-classification reward model (Skywork-Reward-V2 style).

Params:
- ``model`` (required): the model directory, ``file:///path/`` or ``s3://bucket/prefix/``. Its
  ``config.json`` must name a ``*ForSequenceClassification`` architecture with one label (``num_labels: 1``),
  and its tokenizer must have a chat template; otherwise BadInput (exit 65) when the model is loaded.
- ``engine`` (default ``"transformers"``): ``"transformers"`` (the reference path) or ``"vllm"`` (the fast
  path; GPU images only, checked when the plan is built).
- ``batchSize`` (default 8): sequences per forward pass (transformers) or per ``classify`` call (vLLM).
  It does not change the scores (see below).
- ``maxLength`` (default 4096): at most this many tokens per conversation, capped by the model's
  ``max_position_embeddings``. Longer conversations keep their *last* ``maxLength`` tokens (the response's
  end, where the score is read) and are counted as truncated.
- ``normalize`` (default ``"sigmoid"``): ``"sigmoid"`` maps the logit to (0, 1); ``"none"`` keeps the raw
  logit (unbounded: combining it with [0, 1] scorers mixes scales, and ``minMargin`` then applies to logits).
- ``dtype`` (default ``"auto"``): ``"auto"`` (float32 on CPU, the checkpoint's dtype on GPU), ``"float32"``,
  ``"bfloat16"`` or ``"float16"``.

Input: the prompt's messages followed by ``{"role": "assistant", "content": text}``, rendered with the
tokenizer's chat template (``tokenize=False``, no generation prompt) and tokenized with
``add_special_tokens=False`` (the template already holds any BOS; adding another one is the duplicate-BOS bug
the Skywork model cards warn about). Both engines get these same token ids.

Value: the model's single logit at the last token, ``sigmoid(logit)`` by default. Reference path:
``AutoModelForSequenceClassification`` in eval mode without gradients, sequences sorted by length and
right-padded in batches; the padding id is one that is not the last token of any sequence in the batch (and
the model's ``pad_token_id`` is set to it for that call), so the model's "last non-padding token" is the
last token for every sequence and a batch gives the scores of one-by-one calls (to float rounding). Fast
path: vLLM's pooling runner (``LLM(model, runner="pooling")``; ``*ForSequenceClassification`` checkpoints
are classify models), ``LLM.classify`` on the token ids with the activation turned off
(``PoolingParams(use_activation=False)``, or ``activation=False`` on vLLM releases before that name), so it
returns the same logit. ``tests/test_scorer_reward_model.py::test_vllm_matches_transformers`` (``gpu``)
checks the parity.

Details: ``{"logit": float, "tokens": int, "truncated": bool}``. ``stats()``: ``{"samples", "truncated"}``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from ..contract import BadInput
from .base import Scorer, ScorerParamsError, check_keys, choice_param, number_param

ENGINES = ("transformers", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def conversation_ids(tokenizer, messages: list[dict], text: str, max_length: int) -> tuple[list[int], bool]:
    """(token ids, truncated) of the prompt's messages plus the response, as described in the docstring."""
    conv = [{"role": m["role"], "content": m["content"]} for m in messages]
    conv.append({"role": "assistant", "content": text})
    rendered = tokenizer.apply_chat_template(conv, tokenize=False)
    ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    if len(ids) > max_length:
        return ids[-max_length:], True
    return ids, False


def check_model_dir(uri: str, model_dir: Path) -> dict:
    """The model's config; BadInput unless it is a one-label sequence classifier."""
    config = json.loads((model_dir / "config.json").read_text())
    archs = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise BadInput(f"{uri}: not a sequence-classification reward model (architectures: {archs})")
    labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    if labels != 1:
        raise BadInput(f"{uri}: a reward model has one output (num_labels 1), this one has {labels}")
    return config


class TransformersBackend:
    """The reference path: ``AutoModelForSequenceClassification`` on CUDA when available, else CPU."""

    def __init__(self, model_dir: Path, dtype: str):
        import torch
        from transformers import AutoModelForSequenceClassification

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            torch_dtype = torch.float32 if self.device == "cpu" else "auto"
        else:
            torch_dtype = getattr(torch, dtype)
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch_dtype)
        self.model = model.to(self.device).eval()
        self.vocab = self.model.config.get_text_config().vocab_size

    def logits(self, batch: list[list[int]]) -> list[float]:
        torch = self.torch
        lasts = {ids[-1] for ids in batch}
        filler = 0
        while filler in lasts:
            filler += 1
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), filler, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ids in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[i, : len(ids)] = 1
        config = self.model.config.get_text_config()
        saved = config.pad_token_id
        config.pad_token_id = filler
        try:
            with torch.inference_mode():
                out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device))
        finally:
            config.pad_token_id = saved
        return [float(x) for x in out.logits[:, 0].float().cpu()]

    def close(self) -> None:
        del self.model
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


class VllmBackend:
    """The fast path: vLLM's pooling runner (imported here: only GPU images have vLLM)."""

    def __init__(self, model_dir: Path, max_length: int, dtype: str):
        from vllm import LLM, PoolingParams

        options = {"model": str(model_dir), "max_model_len": max_length, "seed": 0, "dtype": dtype}
        try:
            self.llm = LLM(runner="pooling", **options)
        except TypeError:  # vLLM before the runner/convert options (< 0.10.1)
            self.llm = LLM(task="classify", **options)
        self.activated = False
        try:
            self.params = PoolingParams(use_activation=False)
        except TypeError:
            try:
                self.params = PoolingParams(activation=False)
            except TypeError:  # neither switch: the default activation (sigmoid for one label) is applied
                self.params, self.activated = PoolingParams(), True

    def logits(self, batch: list[list[int]]) -> list[float]:
        from vllm.inputs import TokensPrompt

        outs = self.llm.classify(
            [TokensPrompt(prompt_token_ids=ids) for ids in batch], pooling_params=self.params, use_tqdm=False
        )
        values = [float(o.outputs.probs[0]) for o in outs]
        if self.activated:
            eps = 1e-12
            values = [math.log(max(p, eps) / max(1.0 - p, eps)) for p in values]
        return values

    def close(self) -> None:
        del self.llm


class RewardModelScorer(Scorer):
    uses_store = True

    def __init__(self, params: dict, store=None):
        problems = check_keys(params, {"model", "engine", "batchSize", "maxLength", "normalize", "dtype"})
        self.uri = params.get("model")
        if not isinstance(self.uri, str) or not self.uri.startswith(("file://", "s3://")):
            problems.append(f"model: required, a file:// or s3:// model directory, got {self.uri!r}")
        self.engine = choice_param(params, "engine", ENGINES, "transformers", problems)
        if self.engine == "vllm" and importlib.util.find_spec("vllm") is None:
            problems.append("engine: 'vllm' is not installed in this image (use the GPU image or 'transformers')")
        self.batch_size = number_param(params, "batchSize", 8, problems, minimum=1, integer=True)
        self.max_length = number_param(params, "maxLength", 4096, problems, minimum=2, integer=True)
        self.normalize = choice_param(params, "normalize", ("sigmoid", "none"), "sigmoid", problems)
        self.dtype = choice_param(params, "dtype", DTYPES, "auto", problems)
        if problems:
            raise ScorerParamsError(problems)
        self._store = store
        self._tokenizer = None
        self._backend = None
        self._counts = {"samples": 0, "truncated": 0}

    def _load(self) -> None:
        from transformers import AutoTokenizer

        from ..models.local import local_model_dir

        if self._store is None:
            from ..store import Store

            self._store = Store()
        model_dir = local_model_dir(self._store, self.uri)
        config = check_model_dir(self.uri, model_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if not getattr(tokenizer, "chat_template", None):
            raise BadInput(f"{self.uri}: the tokenizer has no chat template")
        limit = (config.get("text_config") or config).get("max_position_embeddings")
        if isinstance(limit, int) and limit > 0:
            self.max_length = min(self.max_length, limit)
        if self.engine == "vllm":
            self._backend = VllmBackend(model_dir, self.max_length, self.dtype)
        else:
            self._backend = TransformersBackend(model_dir, self.dtype)
        self._tokenizer = tokenizer

    def logits(self, prompt: dict, texts: list[str]) -> list[tuple[float, int, bool]]:
        """(logit, tokens, truncated) per text."""
        if self._backend is None:
            self._load()
        encoded = [conversation_ids(self._tokenizer, prompt.get("messages") or [], t, self.max_length) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i][0]))
        values: list[float] = [0.0] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, v in zip(chunk, self._backend.logits([encoded[i][0] for i in chunk]), strict=True):
                values[i] = v
        return [(v, len(ids), truncated) for v, (ids, truncated) in zip(values, encoded, strict=True)]

    def score_group(self, prompt: dict, texts: list[str]) -> list[tuple[float, object]]:
        if not texts:
            return []
        out = []
        for logit, tokens, truncated in self.logits(prompt, texts):
            if not math.isfinite(logit):
                raise RuntimeError(f"reward model {self.uri} produced a non-finite logit ({logit})")
            self._counts["samples"] += 1
            self._counts["truncated"] += truncated
            score = sigmoid(logit) if self.normalize == "sigmoid" else logit
            out.append((score, {"logit": logit, "tokens": tokens, "truncated": truncated}))
        return out

    def stats(self) -> dict:
        return dict(self._counts)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
