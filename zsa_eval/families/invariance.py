"""Batch invariance, checked: a family's audio embedding of a clip must not depend on the batch it is computed in
(which clips share it, their order, their lengths), or scores would depend on batch_size, worker count and a
resumed run's batches. zsa-eval prepares every clip alone; this checks the rest, the family's collate and encoder,
on clips of unequal lengths (`zsa_eval.api.check_batch_invariance`, for a family's own tests)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from zsa_eval.families import AudioEncoderFamily
from zsa_eval.families.contract import FamilyFailed, calling, checked_audio, family_label

TEST_SECONDS = (0.3, 0.7, 1.0, 1.6, 2.5)  # clips of unequal lengths, in units of the family's window (or seconds)


def probe_clips(family: AudioEncoderFamily, seed: int) -> list[np.ndarray]:
    """Seeded noise and tones of TEST_SECONDS windows each (seconds, for a family without a window)."""
    rng = np.random.default_rng(seed)
    unit = family.window_seconds or 1.0
    clips = []
    for number, share in enumerate(TEST_SECONDS):
        samples = max(1, int(share * unit * family.sampling_rate))
        tone = np.sin(2 * np.pi * (220 * (number + 1)) * np.arange(samples) / family.sampling_rate)
        clips.append((0.3 * tone + 0.1 * rng.standard_normal(samples)).astype(np.float32))
    return clips


def embedded(family: AudioEncoderFamily, prepared: Sequence[dict]) -> list[torch.Tensor]:
    with calling(family, "collate"):
        inputs = family.collate(list(prepared))
    with calling(family, "embed_audio"), torch.inference_mode():
        return [embedding.float().cpu() for embedding in checked_audio(family, family.embed_audio(inputs),
                                                                         len(prepared))]


def check_batch_invariance(family: AudioEncoderFamily, clips: Sequence[np.ndarray] | None = None, seed: int = 0,
                           atol: float = 1e-5) -> float:
    """The largest change of a clip's audio embedding between computing it alone and in batches (all clips, in
    reverse order; neighbours in pairs); a FamilyFailed naming the family when it is above `atol`. `clips`: mono
    float32 waveforms at the family's rate (default: five seeded clips of unequal lengths)."""
    clips = list(clips) if clips is not None else probe_clips(family, seed)
    with calling(family, "preparer"):
        prepare = family.preparer(torch.device("cpu"))
        prepared = [prepare(clip, seed + number) for number, clip in enumerate(clips)]
    alone = [embedded(family, [inputs])[0] for inputs in prepared]
    order = list(range(len(prepared)))[::-1]
    batches = [order] + [[first, first + 1] for first in range(0, len(prepared) - 1, 2)]
    largest = 0.0
    for batch in batches:
        for number, embedding in zip(batch, embedded(family, [prepared[number] for number in batch])):
            largest = max(largest, (embedding - alone[number]).abs().max().item())
    if largest > atol:
        raise FamilyFailed(f"{family_label(family)}: embed_audio is not batch-invariant: a clip's embedding moves by "
                           f"{largest:.3g} with the batch it is in (allowed {atol:g}); embed each clip of a batch as "
                           "it would be alone (mask the padding, or encode clips of unequal length apart)")
    return largest
