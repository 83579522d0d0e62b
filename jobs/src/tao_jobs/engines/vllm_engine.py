"""vLLM engine (GPU images only; vLLM has no CPU wheel, so it is imported when this engine is opened).

``LLM.chat`` applies the model's chat template with a generation prompt. Each request gets its own
``SamplingParams`` with its own seed: one seeded ``SamplingParams`` broadcast over a batch gives every prompt
the same noise (vLLM issue 50440). ``generation_config="vllm"`` stops vLLM from silently taking sampling
defaults from the model's ``generation_config.json``: what is recorded with a sample is what was used.
"""

from __future__ import annotations

from pathlib import Path

from .base import Completion, Engine, Request


class VllmEngine(Engine):
    def __init__(self, model_dir: Path, *, load_format: str = "auto", **llm_options: object):
        from vllm import LLM  # noqa: PLC0415 - lazy: only the GPU image has vLLM

        self.model_dir = Path(model_dir)
        self.llm = LLM(
            model=str(self.model_dir),
            generation_config="vllm",
            load_format=load_format,  # "dummy": random weights from the config (GPU smoke tests)
            seed=0,
            **llm_options,
        )

    def generate(self, requests: list[Request]) -> list[Completion]:
        from vllm import SamplingParams  # noqa: PLC0415

        params = [
            SamplingParams(
                n=1,
                temperature=r.temperature,
                top_p=r.top_p if r.temperature > 0 else 1.0,
                max_tokens=r.max_tokens,
                seed=r.seed,
            )
            for r in requests
        ]
        outputs = self.llm.chat(
            [r.messages for r in requests], sampling_params=params, add_generation_prompt=True, use_tqdm=False
        )
        completions = []
        for out in outputs:
            c = out.outputs[0]
            reason = "length" if c.finish_reason == "length" else "stop"
            completions.append(Completion(c.text, reason, len(c.token_ids)))
        return completions

    def close(self) -> None:
        del self.llm
