"""Generation engines behind one interface: transformers ``generate()`` (CPU/GPU) and vLLM (GPU).

``open_engine(name, model_dir)`` returns an :class:`Engine`; ``engine.generate(requests)`` returns one
:class:`Completion` per :class:`Request`, in order. Both engines honour each request's own temperature,
top-p, token limit and seed, so a sample is reproducible from what is recorded with it.
"""

from .base import Completion, Engine, Request, open_engine

__all__ = ["Completion", "Engine", "Request", "open_engine"]
