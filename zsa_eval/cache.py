"""Audio-embedding cache: one .npy per clip (never pickled) and a .json beside it holding the decoded clip's length
(how its windows fell: zsa_eval.long_audio), keyed by what determines the embedding.

A key covers the model as its family describes it (ModelFamily.cache_identity: the family and its version, the
model's class, its weights hashed or the user's fingerprint, its precision and device type, the feature
extractor's settings, the family's settings such as PE-Audio's max_seconds), the long-audio policy (other than
`native`), this package's preprocessing version, the clip's crop seed and the clip's encoded bytes. Any change to
one of them is a different key, so a changed file or model can never reuse a stale entry.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xxhash

PREPROCESSING_VERSION = "1"  # bump when decoding, resampling or featurization changes


def without_paths(config: dict) -> dict:
    """A config dict without `_name_or_path` (where it was loaded from), in sub-configs too."""
    return {key: without_paths(value) if isinstance(value, dict) else value
            for key, value in config.items() if key != "_name_or_path"}


def weights_fingerprint(model: torch.nn.Module) -> str:
    """Hash of a model's config (a transformers model's; else its class) and the bytes of every weight tensor
    (~0.05 s for 153 M parameters), not of where it was loaded from: a byte-identical copy of a checkpoint has the
    same fingerprint, other weights another one."""
    digest = xxhash.xxh3_128()
    config = getattr(model, "config", None)
    described = without_paths(config.to_dict()) if hasattr(config, "to_dict") else type(model).__qualname__
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def model_fingerprint(identity: Mapping, settings: Mapping | None = None) -> str:
    """Hash of everything on the model side that shapes an audio embedding: the family's cache_identity (its
    version, model class, weights, device type, dtype, feature extractor and settings) and the run's settings that
    do too (`settings`: the long-audio policy), with this package's preprocessing version."""
    digest = xxhash.xxh3_128()
    digest.update(f"{PREPROCESSING_VERSION}\0".encode())
    digest.update(json.dumps({"model": identity, "settings": dict(settings or {})}, sort_keys=True,
                             default=str).encode())
    return digest.hexdigest()


READ_CHUNK = 1 << 20  # a clip's file is hashed a MiB at a time (its bytes are never all held)


def clip_key(source: bytes | str, seed: int) -> str:
    """Hash of a clip's encoded bytes (given, or read from its file a chunk at a time: the same key) and its seed."""
    digest = xxhash.xxh3_128()
    if isinstance(source, bytes):
        digest.update(source)
    else:
        with open(source, "rb") as file:
            for chunk in iter(lambda: file.read(READ_CHUNK), b""):
                digest.update(chunk)
    digest.update(seed.to_bytes(8, "little"))
    return digest.hexdigest()


@dataclass(frozen=True)
class CachedClip:
    """A cache entry: the clip's audio embedding and its decoded length in samples at the model's rate."""

    embedding: np.ndarray
    samples: int


class EmbeddingCache:
    """Audio embeddings of one model fingerprint under `root/<fingerprint>/<key>.npy` (+ `<key>.json`)."""

    def __init__(self, root: Path, fingerprint: str):
        self.folder = Path(root) / fingerprint

    def load(self, key: str) -> CachedClip | None:
        """The entry, or None when it is missing, torn or incomplete."""
        try:
            embedding = np.load(self.folder / f"{key}.npy", allow_pickle=False)
            samples = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))["samples"]
        except (FileNotFoundError, ValueError, OSError, KeyError, TypeError):
            return None
        return CachedClip(embedding, int(samples))

    def store(self, key: str, embedding: np.ndarray, samples: int) -> None:
        """Write atomically, the length first: a reader never sees half an entry, nor an embedding without it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.replace(f"{key}.json", lambda path: path.write_text(json.dumps({"samples": int(samples)}),
                                                                 encoding="utf-8"))
        self.replace(f"{key}.npy", lambda path: np.save(path, np.ascontiguousarray(embedding, dtype=np.float32),
                                                       allow_pickle=False))

    def replace(self, name: str, write: Callable[[Path], object]) -> None:
        """Let `write(path)` fill a temporary file, then move it to `name` in one rename."""
        temporary = self.folder / f".{uuid.uuid4().hex[:8]}.tmp{Path(name).suffix}"
        write(temporary)
        os.replace(temporary, self.folder / name)
