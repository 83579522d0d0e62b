"""A model URI as a local Hugging Face directory, and the content hash recorded as ``model_rev``.

Stages receive models as ``file://`` or ``s3://`` directory prefixes (the prepare stage stages ``tiny://``
models as artifacts). ``tiny://`` URIs are also accepted directly, for tests and one-off runs: they are
built once into a local cache (``TAO_TINY_CACHE``, default ``~/.cache/tao/tiny``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..contract import BadInput
from ..store import Store


def local_model_dir(store: Store, uri: str) -> Path:
    """A local directory holding the model of ``uri``; BadInput when it is not a model directory."""
    if uri.startswith("tiny://"):
        return tiny_cached(uri)
    path = store.local_dir(uri if uri.endswith("/") else uri + "/")
    if not (path / "config.json").is_file():
        raise BadInput(f"{uri}: not a Hugging Face model directory (no config.json)")
    return path


def tiny_cached(uri: str) -> Path:
    """Builds a tiny model once per URI into the cache (atomic rename: concurrent builders are safe)."""
    from . import tiny, tiny_corpus

    tiny.parse(uri)  # ValueError early for a bad URI
    root = Path(os.environ.get("TAO_TINY_CACHE") or Path.home() / ".cache" / "tao" / "tiny")
    # Keyed by the URI and the builder's source: a changed builder never serves a stale model.
    h = hashlib.sha256(uri.encode())
    for module in (tiny, tiny_corpus):
        h.update(b"\0" + Path(module.__file__).read_bytes())
    key = h.hexdigest()[:16]
    target = root / key
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        tiny.build(uri, tmp)
        os.rename(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():  # lost a race: the other builder's copy is identical
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_rev(model_dir: Path) -> str:
    """``sha256:<16 hex>`` over the weight files (names and bytes, sorted): the same weights, the same rev."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(model_dir).rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin"))
    if not files:
        raise BadInput(f"{model_dir}: no weight files (*.safetensors) in the model directory")
    for p in files:
        h.update(str(p.relative_to(model_dir)).encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()[:16]
