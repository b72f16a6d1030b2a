"""A toy audio-text model in plain torch (no transformers): an audio tower on log power spectra and a text tower on
UTF-8 bytes, projected into one space, with a learnt logit scale. Random weights come from a seed; trained ones
from a safetensors file (never a pickle)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class AudioTower(nn.Module):
    """Log power spectrum frames -> linear -> GELU -> mean over frames -> projection."""

    def __init__(self, n_fft: int, hidden: int, dim: int):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.frames = nn.Linear(n_fft // 2 + 1, hidden)
        self.projection = nn.Linear(hidden, dim)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(clips, samples) -> (clips, dim); every clip of a batch has the same length."""
        spectra = torch.stft(waveforms.float(), self.n_fft, self.n_fft // 2, window=self.window.float(),
                             return_complex=True).abs().pow(2).add(1e-6).log()
        hidden = nn.functional.gelu(self.frames(spectra.transpose(1, 2).to(self.frames.weight.dtype)))
        return self.projection(hidden.mean(dim=1))


class TextTower(nn.Module):
    """The mean of a text's byte embeddings -> projection."""

    def __init__(self, hidden: int, dim: int):
        super().__init__()
        self.bytes = nn.EmbeddingBag(256, hidden, mode="mean")
        self.projection = nn.Linear(hidden, dim)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        encoded = [torch.tensor(list(text.encode("utf-8")) or [0]) for text in texts]
        offsets = torch.tensor([0, *torch.tensor([len(ids) for ids in encoded]).cumsum(0)[:-1].tolist()])
        device = self.projection.weight.device
        return self.projection(self.bytes(torch.cat(encoded).to(device), offsets.to(device)))


class ToyClap(nn.Module):
    """Both towers and the logit scale (initialized to log 10, as CLIP's)."""

    def __init__(self, dim: int = 32, hidden: int = 64, n_fft: int = 512):
        super().__init__()
        self.audio = AudioTower(n_fft, hidden, dim)
        self.text = TextTower(hidden, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))


def random_toy_clap(seed: int, dim: int = 32) -> ToyClap:
    """A ToyClap with random weights drawn from `seed` (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ToyClap(dim=dim)
