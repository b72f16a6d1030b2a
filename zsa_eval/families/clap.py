"""CLAP (LAION, transformers' ClapModel): log-mel features per clip, fused or not; cosine similarity times the
audio logit scale; softmax over the candidate labels.

A fused checkpoint hears a clip no longer than its 10 s window as laion_clap's evaluation does by default
(`short_clip_fusion=laion`: the global view alone, no fusion branch), or as transformers' feature extractor and
pipeline do (`transformers`: the clip marked `is_longer`, its four identical views fused); longer clips are fused
either way. `int16_roundtrip` quantizes each clip as laion_clap's file loader does, before its features;
`laion_loader_length` resamples a clip to the length librosa.load gives it (zsa_eval.audio.resample).

Checkpoints are transformers' (a Hub id or a save_pretrained directory) or LAION's original laion_clap `.pt` files,
converted on load (zsa_eval/laion_checkpoint.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from zsa_eval.errors import UserError
from zsa_eval.families import ContrastiveFamily, Inputs, ModelSpec
from zsa_eval.audio import int16_round_trip
from zsa_eval.featurize import LAION, TRANSFORMERS, ClapFeaturizer
from zsa_eval.laion_checkpoint import is_laion_checkpoint, load_laion_checkpoint

ROBERTA = "roberta-base"  # the tokenizer of laion_clap's text tower, unless model.tokenizer names another


def pooled(output) -> torch.Tensor:
    """The embedding from get_*_features, whether it returns a tensor (transformers 4) or an output (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClapFamily(ContrastiveFamily):
    name = "clap"
    model_types = ("clap",)
    pipeline_supported = True

    def __init__(self, model: torch.nn.Module, feature_extractor, tokenizer, device: torch.device,
                 dtype: torch.dtype, short_clip_fusion: str | None = None, int16_roundtrip: bool = False,
                 laion_loader_length: bool = False):
        """`short_clip_fusion` (fused checkpoints): `laion` (also for None or auto) or `transformers`, see
        zsa_eval.featurize.ClapFeaturizer; `int16_roundtrip`: quantize each clip as laion_clap's loader does;
        `laion_loader_length`: resample to the length librosa.load gives."""
        super().__init__(device, dtype, model)
        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer
        self.fused = feature_extractor.truncation == "fusion"
        self.short_clip_fusion = (short_clip_fusion if short_clip_fusion in (LAION, TRANSFORMERS) else LAION) \
            if self.fused else None
        self.int16_roundtrip = bool(int16_roundtrip)
        self.laion_loader_length = bool(laion_loader_length)

    @classmethod
    def claims(cls, spec: ModelSpec) -> bool:
        """A laion_clap `.pt` file (a path, or OWNER/REPO/FILE.pt on the Hub) has no config.json: it is CLAP's."""
        return is_laion_checkpoint(spec.name_or_path)

    @classmethod
    def load(cls, spec: ModelSpec) -> ClapFamily:
        """transformers' checkpoint, or a laion_clap `.pt` file converted (with roberta-base's tokenizer or
        `model.tokenizer`)."""
        import transformers

        name_or_path, options, settings = spec.name_or_path, spec.hub_options(), spec.settings
        if is_laion_checkpoint(name_or_path):
            model, processor = load_laion_checkpoint(name_or_path, spec.revision, spec.online,
                                                     settings.get("tokenizer") or ROBERTA)
        else:
            processor = transformers.AutoProcessor.from_pretrained(name_or_path, **options)
            model = transformers.AutoModel.from_pretrained(name_or_path, **options)
        if not all(hasattr(model, method) for method in ("get_text_features", "get_audio_features")):
            raise UserError(f"model {name_or_path!r} ({type(model).__name__}) is not a CLAP-style audio-text model; "
                            "choose a model with get_text_features and get_audio_features (model=clap, ...)")
        family = cls(model, processor.feature_extractor, processor.tokenizer, spec.device, spec.dtype,
                     settings.get("short_clip_fusion"), settings.get("int16_roundtrip") or False,
                     settings.get("laion_loader_length") or False)
        family.processor = processor  # the checkpoint's processor, as transformers loaded it (save_pretrained)
        return family

    def embedding_settings(self) -> dict:
        """How a fused checkpoint hears short clips, and the int16 round trip and librosa's length when on (the cache
        key and identity of an unfused checkpoint without them are as before these settings)."""
        return ({"short_clip_fusion": self.short_clip_fusion} if self.fused else {}) \
            | ({"int16_roundtrip": True} if self.int16_roundtrip else {}) \
            | ({"laion_loader_length": True} if self.laion_loader_length else {})

    def decode_options(self) -> dict:
        return {"librosa_length": True} if self.laion_loader_length else {}

    @property
    def window_seconds(self) -> float:
        """The feature extractor's `max_length_s` (10 s): longer clips are fused or cropped, shorter ones padded."""
        return self.feature_extractor.nb_max_samples / self.sampling_rate

    @property
    def long_clips_heard(self) -> str:
        window = f"{self.window_seconds:g} s"
        return (f"each fused from the whole clip shrunk to {window} and three {window} crops" if self.fused
                else f"each heard as one seeded {window} crop")

    @property
    def frame_seconds(self) -> float:
        """One FFT window of the log-mel features (1024 samples at 48 kHz: 21 ms)."""
        return self.feature_extractor.fft_window_size / self.sampling_rate

    def preparer(self, device: torch.device) -> Callable[[np.ndarray, int], Inputs]:
        """Featurize each clip alone, as the pipeline does: a batch of short clips would get one random clip marked
        `is_longer`, and long clips get fusion crops seeded per clip (see zsa_eval/featurize.py)."""
        featurize = ClapFeaturizer(self.feature_extractor, device, self.short_clip_fusion or TRANSFORMERS)

        def prepare(waveform: np.ndarray, seed: int) -> Inputs:
            features, is_longer = featurize(int16_round_trip(waveform) if self.int16_roundtrip else waveform, seed)
            return {"input_features": features, "is_longer": torch.tensor([is_longer], device=device)}
        return prepare

    def collate(self, prepared: Sequence[Inputs]) -> Inputs:
        return {key: torch.stack([clip[key] for clip in prepared]) for key in ("input_features", "is_longer")}

    @torch.inference_mode()
    def embed_audio(self, inputs: Inputs) -> list[torch.Tensor]:
        """Normalized audio embeddings."""
        audio = pooled(self.model.get_audio_features(
            input_features=inputs["input_features"].to(self.device, self.dtype),
            is_longer=inputs["is_longer"].to(self.device)))
        return list(torch.nn.functional.normalize(audio.float(), dim=-1))

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalized text embeddings."""
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        return torch.nn.functional.normalize(pooled(self.model.get_text_features(**tokens)).float(), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """exp(logit_scale_a), as ClapModel's logits_per_audio."""
        return self.model.logit_scale_a.exp().float()
