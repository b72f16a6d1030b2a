"""Two zsa-eval model families over the toy model of toy_family.networks, written against zsa_eval.api alone:

- `ToyClapFamily` (entry point `toy_clap`): a contrastive embedding family (CLIP's kind: it gives its logit scale,
  zsa_eval.api.ContrastiveFamily does the rest), audio and text, for zero-shot, retrieval and the probes;
- `ToyEncoderFamily` (`toy_encoder`): its audio tower alone, an audio encoder for the probes.

Options (`+model.options.KEY=VALUE`): `seed` (random weights, default 0), `dim` (embedding size, default 32),
`window_seconds` (the audio heard at once, default 2). `model.name_or_path`, when set, is a safetensors file of
trained weights (`save_toy_clap`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from toy_family.networks import ToyClap, random_toy_clap
from zsa_eval.api import AudioEncoderFamily, ContrastiveFamily, Inputs, ModelSpec, UserError, weighted_mean

OPTIONS = {"seed": 0, "dim": 32, "window_seconds": 2.0}

__all__ = ["ToyClap", "ToyClapFamily", "ToyEncoderFamily", "random_toy_clap", "save_toy_clap"]


def save_toy_clap(model: ToyClap, path: str) -> None:
    """Trained weights as a safetensors file (what model.name_or_path names)."""
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, path)


def toy_model(spec: ModelSpec, family: str) -> tuple[ToyClap, float]:
    """The model spec's options ask for, and its window in seconds; an unknown option is a one-line mistake."""
    unknown = sorted(set(spec.options) - set(OPTIONS))
    if unknown:
        raise UserError(f"model.options.{unknown[0]} is not an option of {family}: it takes "
                        f"{', '.join(OPTIONS)}")
    options = OPTIONS | dict(spec.options)
    model = random_toy_clap(int(options["seed"]), int(options["dim"]))
    if spec.name_or_path:
        model.load_state_dict(load_file(spec.name_or_path))
    return model, float(options["window_seconds"])


class ToyAudio:
    """The audio side both families share: each clip cut or zero-padded to the window (alone: batch-invariant),
    the audio tower, normalized embeddings, and windows pooled as CLAP pools them."""

    sampling_rate = 16000
    model: ToyClap

    def __init__(self, model: ToyClap, device: torch.device, dtype: torch.dtype, window_seconds: float = 2.0,
                 fingerprint: str | None = None):
        super().__init__(device, dtype, model, fingerprint)
        self.window_s = window_seconds
        self.clip_samples = int(round(window_seconds * self.sampling_rate))

    @classmethod
    def load(cls, spec: ModelSpec) -> ToyAudio:
        model, window_seconds = toy_model(spec, cls.name)
        return cls(model, spec.device, spec.dtype, window_seconds, spec.fingerprint)

    @property
    def window_seconds(self) -> float:
        return self.window_s

    @property
    def frame_seconds(self) -> float:
        return self.model.audio.n_fft / self.sampling_rate

    def embedding_settings(self) -> dict:
        return {"window_seconds": self.window_s}

    def preparer(self, device: torch.device) -> Callable[[np.ndarray, int], Inputs]:
        samples = self.clip_samples

        def prepare(waveform: np.ndarray, seed: int) -> Inputs:
            clip = np.zeros(samples, dtype=np.float32)
            clip[:min(samples, len(waveform))] = waveform[:samples]
            return {"waveform": torch.from_numpy(clip).to(device)}
        return prepare

    def collate(self, prepared: Sequence[Inputs]) -> Inputs:
        return {"waveform": torch.stack([clip["waveform"] for clip in prepared])}

    @torch.inference_mode()
    def embed_audio(self, inputs: Inputs) -> list[torch.Tensor]:
        audio = self.model.audio(inputs["waveform"].to(self.device, self.dtype))
        return list(torch.nn.functional.normalize(audio.float(), dim=-1))

    def pool_windows(self, embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
        return torch.nn.functional.normalize(weighted_mean(list(embeddings), weights), dim=-1)


class ToyClapFamily(ToyAudio, ContrastiveFamily):
    name = "toy_clap"
    version = "1"

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model.text(list(texts)).float(), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().float()


class ToyEncoderFamily(ToyAudio, AudioEncoderFamily):
    """The toy model's audio tower alone: no text, so the probes only."""

    name = "toy_encoder"
    version = "1"
