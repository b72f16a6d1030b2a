"""The clips a run streams: each item read, decoded and (given the family's preparer) prepared alone in a DataLoader
worker, with its crop seed drawn from the run seed and its id, or its cached embedding, or a skip record."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from zsa_eval.audio import AudioSource, check_readable, load_clip
from zsa_eval.cache import EmbeddingCache, clip_key
from zsa_eval.errors import BadAudio
from zsa_eval.families import Inputs
from zsa_eval.interrupts import stop_if_interrupted
from zsa_eval.long_audio import LongAudio


def clip_seed(seed: int, item_id: str) -> int:
    """A seed for one clip's random crops that depends only on the run seed and the item's id."""
    digest = hashlib.blake2b(f"{seed}\0{item_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


class ClipDataset(Dataset):
    """Prepares one item in a worker: a cached embedding, or the model inputs of a clip heard as one span when given
    a CPU `prepare` (a family's preparer), or else the waveform and how `long_audio` splits it into windows
    (prepared later, a chunk of windows at a time, so that the inputs held at once do not grow with the clip's
    length: on the device, in the main process, or by the pipeline). Items that cannot be read or decoded come back
    as skip records."""

    def __init__(self, clips: Sequence[AudioSource], item_ids: Sequence[str], sampling_rate: int, seed: int,
                 long_audio: LongAudio, prepare: Callable[[np.ndarray, int], Inputs] | None = None,
                 cache: EmbeddingCache | None = None, decode_options: dict | None = None):
        """`decode_options`: keyword arguments of load_clip (the family's decode_options)."""
        self.clips = clips
        self.seeds = [clip_seed(seed, item_id) for item_id in item_ids]
        self.sampling_rate = sampling_rate
        self.long_audio = long_audio
        self.prepare = prepare
        self.cache = cache
        self.decode_options = decode_options or {}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        sample = self.sample(index)
        stop_if_interrupted()  # a Ctrl-C recorded while this clip was decoded stops the run here
        return sample

    def sample(self, index: int) -> dict:
        """Item `index` as a cached embedding, its windows' model inputs, a waveform or a skip record (a clip that
        cannot be read or decoded, or that the family's preparer refused); all but the skip record with the clip's
        `windowing`."""
        seed = self.seeds[index]
        try:
            source = self.clips[index]
            check_readable(source)
            key = clip_key(source, seed) if self.cache else None
            cached = self.cache.load(key) if self.cache else None
            if cached is not None:
                return {"index": index, "embedding": cached.embedding,
                        "windowing": self.long_audio.split(cached.samples)}
            waveform = load_clip(source, self.sampling_rate, **self.decode_options)
            clip = {"index": index, "seed": seed, "cache_key": key, "windowing": self.long_audio.split(len(waveform))}
            if self.prepare is None or len(clip["windowing"].spans) > 1:  # windows: prepared chunk by chunk, later
                return clip | {"waveform": waveform}
            return clip | {"inputs": [self.prepare(waveform[start:stop], seed)
                                      for start, stop in clip["windowing"].spans]}
        except BadAudio as error:
            return {"index": index, "error": (error.reason, error.detail)}


def collate_clips(samples: list[dict]) -> dict:
    """A batch's good samples (`clips`) and positions, and its bad ones apart as (index, reason, detail)."""
    good = [sample for sample in samples if "error" not in sample]
    return {
        "indices": [sample["index"] for sample in good],
        "skipped": [(sample["index"], *sample["error"]) for sample in samples if "error" in sample],
        "clips": good,
    }


def clip_loader(dataset: ClipDataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_clips)
