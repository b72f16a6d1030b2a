"""MS-CLAP's networks (Microsoft's CLAP, as the `msclap` 1.3.4 package builds them), written from reading its code and
built from torch and transformers parts. The module tree mirrors msclap's state dict name for name, so its .pth files
load as they are (zsa_eval/families/msclap.py loads them).

- 2022: CNN14 (PANNs) on a 64-band log-mel spectrogram, BERT (the [CLS] token's hidden state).
- 2023: HTSAT (a Swin transformer over the log-mel spectrogram cut into four time chunks stacked as a 256x256
  image), GPT-2 (the hidden state of the last token msclap counts).
- Both: each embedding through a projection (two bias-free linear layers, GELU between, a residual, LayerNorm); the
  log-mel front end is torchlibrosa's as msclap runs it (an STFT as two convolutions whose DFT kernels, and the mel
  filter bank, are weights of the checkpoint; computed here when a checkpoint lacks them), run in float32 whatever
  the model's precision.

Only the audio embedding is computed: the heads that give msclap's AudioSet class probabilities (CNN14's
fc_audioset, HTSAT's tscam_conv and head) are built so that the weights load, but never run."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zsa_eval.families.msclap_audio import Cnn14, HtsatWrapper
from zsa_eval.families.msclap_config import COUNTED_PAD_ID, MsClapConfig


# --- projections, encoders, the model ------------------------------------------------------------------------------

class Projection(nn.Module):
    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.linear1 = nn.Linear(inputs, outputs, bias=False)
        self.linear2 = nn.Linear(outputs, outputs, bias=False)
        self.layer_norm = nn.LayerNorm(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.linear1(x)
        return self.layer_norm(projected + self.linear2(F.gelu(projected)))


class AudioEncoder(nn.Module):
    def __init__(self, config: MsClapConfig):
        super().__init__()
        self.base = Cnn14(config) if config.audio_encoder == "Cnn14" else HtsatWrapper(config)
        self.projection = Projection(config.out_emb, config.d_proj)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.projection(self.base(waveforms))


def text_model(config: MsClapConfig) -> nn.Module:
    """BertModel (with its pooler, whose weights the checkpoints hold) or GPT2Model, from the config's text_config."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    settings = {name: value for name, value in config.text_config.items() if name != "model_type"}
    if config.text_model == "bert":
        return BertModel(BertConfig(**settings))
    return GPT2Model(GPT2Config(**settings))


class TextEncoder(nn.Module):
    def __init__(self, config: MsClapConfig):
        super().__init__()
        self.gpt = config.text_model == "gpt2"
        self.base = text_model(config)
        self.projection = Projection(self.base.config.hidden_size, config.d_proj)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """BERT: the [CLS] token's last hidden state. GPT-2: the hidden state at (ids that are not 0) - 1, as msclap
        counts: the <|endoftext|> it appends, unless the text holds '!' (id 0 in GPT-2's vocabulary, and msclap's pad
        token), which moves it one token back per '!'."""
        hidden = self.base(**tokens).last_hidden_state
        if not self.gpt:
            return self.projection(hidden[:, 0])
        last = (tokens["input_ids"] != COUNTED_PAD_ID).sum(dim=-1) - 1
        return self.projection(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])


class MsClapModel(nn.Module):
    """msclap's CLAP module: `audio_encoder`, `caption_encoder`, `logit_scale`; raw (unnormalized) embeddings, as
    msclap's get_audio_embeddings and get_text_embeddings return them."""

    def __init__(self, config: MsClapConfig):
        super().__init__()
        self.config = config
        self.audio_encoder = AudioEncoder(config)
        self.caption_encoder = TextEncoder(config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def audio_embeddings(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, clip_samples) waveforms, as the family prepares them -> (batch, d_proj)."""
        return self.audio_encoder(waveforms)

    def text_embeddings(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.caption_encoder(tokens)
