"""Hugging Face transformers ``generate()`` engine (CPU for tests and the embedded demo, or one GPU).

Batched generation cannot give each row its own seed through ``generate(do_sample=True)`` (one global
generator), so sampling happens in a logits processor: each row has its own ``torch.Generator`` seeded from
its request and its own temperature and top-p; the processor keeps only the sampled token, and
``generate`` runs in greedy mode, which then picks it. A sample therefore depends only on its request (and
the model), not on the other rows of the batch, up to floating-point noise of batched kernels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LogitsProcessorList
from transformers.utils import logging as hf_logging

from .base import Completion, Engine, Request


class SeededSampler:
    """A logits processor sampling each row with its own seed, temperature and top-p."""

    def __init__(self, requests: list[Request]):
        self.requests = requests
        self.generators = [torch.Generator().manual_seed(r.seed) for r in requests]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float().cpu()
        chosen = []
        for row, (req, gen) in enumerate(zip(self.requests, self.generators, strict=True)):
            u = torch.rand((), generator=gen)  # drawn every step: the stream depends only on the seed
            chosen.append(self._pick(logits[row], req, float(u)))
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(chosen)), torch.tensor(chosen, device=scores.device)] = 0.0
        return out

    @staticmethod
    def _pick(logits: torch.Tensor, req: Request, u: float) -> int:
        if req.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / req.temperature, dim=-1)
        sorted_probs, order = torch.sort(probs, descending=True, stable=True)
        cum = torch.cumsum(sorted_probs, dim=-1)
        if req.top_p < 1:
            keep = int(torch.searchsorted(cum, torch.tensor(req.top_p))) + 1  # smallest set reaching top_p
            sorted_probs, cum = sorted_probs[:keep], cum[:keep]
        idx = int(torch.searchsorted(cum, torch.tensor(u * float(cum[-1])), right=True))
        return int(order[min(idx, len(sorted_probs) - 1)])


class TransformersEngine(Engine):
    def __init__(self, model_dir: Path, *, batch_size: int = 64, device: str | None = None):
        hf_logging.disable_progress_bar()
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])

    def generate(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion] = []
        for start in range(0, len(requests), self.batch_size):
            out += self._batch(requests[start : start + self.batch_size])
        return out

    @torch.inference_mode()
    def _batch(self, requests: list[Request]) -> list[Completion]:
        prompts = [
            self.tokenizer.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in requests
        ]
        # The chat template already renders any BOS: no second one from add_special_tokens.
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.device)
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max(r.max_tokens for r in requests),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        sequences = self.model.generate(
            **enc, generation_config=config, logits_processor=LogitsProcessorList([SeededSampler(requests)])
        )
        new = sequences[:, enc["input_ids"].shape[1] :].tolist()
        completions = []
        for req, ids in zip(requests, new, strict=True):
            ids = ids[: req.max_tokens]  # rows with a smaller limit than the batch's
            end = next((i for i, t in enumerate(ids) if t in self.eos_ids), None)
            kept = ids if end is None else ids[:end]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            completions.append(Completion(text, "length" if end is None else "stop", len(kept)))
        return completions

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
