"""Audio-embedding cache: one .npy per clip (never pickled), keyed by what determines the embedding.

A key covers the model (config and weights, hashed), its precision and device type, the feature extractor's
settings, the family's settings (PE-Audio's max_seconds), this package's preprocessing version, the clip's crop
seed and the clip's encoded bytes. Any change to one of them is a different key, so a changed file or model can
never reuse a stale entry.
"""

from __future__ import annotations

import json
import os
import uuid
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
    """Hash of a model's config and the bytes of every weight tensor (~0.05 s for 153 M parameters), not of where it
    was loaded from: a byte-identical copy of a checkpoint has the same fingerprint, other weights another one."""
    digest = xxhash.xxh3_128()
    digest.update(json.dumps(without_paths(model.config.to_dict()), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(memoryview(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def model_fingerprint(model: torch.nn.Module, feature_extractor, device: torch.device,
                      weights: str | None = None, settings: dict | None = None) -> str:
    """Hash of everything on the model side that shapes an audio embedding: its class, device type and dtype,
    weights (`weights`: its weights_fingerprint, when already computed), feature extractor and the family's settings
    (`settings`, e.g. PE-Audio's max_seconds)."""
    digest = xxhash.xxh3_128()
    dtype = next(model.parameters()).dtype
    digest.update(f"{PREPROCESSING_VERSION}\0{type(model).__name__}\0{device.type}\0{dtype}\0".encode())
    digest.update((weights or weights_fingerprint(model)).encode())
    digest.update(json.dumps(feature_extractor.to_dict(), sort_keys=True, default=str).encode())
    if settings:
        digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def clip_key(encoded_audio: bytes, seed: int) -> str:
    return xxhash.xxh3_128(encoded_audio + seed.to_bytes(8, "little")).hexdigest()


class EmbeddingCache:
    """Audio embeddings of one model fingerprint under `root/<fingerprint>/<key>.npy`."""

    def __init__(self, root: Path, fingerprint: str):
        self.folder = Path(root) / fingerprint

    def load(self, key: str) -> np.ndarray | None:
        try:
            return np.load(self.folder / f"{key}.npy", allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None

    def store(self, key: str, embedding: np.ndarray) -> None:
        """Write atomically, so a reader never sees half an entry."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{key}.{uuid.uuid4().hex[:8]}.tmp.npy"
        np.save(temporary, np.ascontiguousarray(embedding, dtype=np.float32), allow_pickle=False)
        os.replace(temporary, self.folder / f"{key}.npy")
