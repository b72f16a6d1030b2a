"""PE-Audio (Meta's Perception Encoder audio models in transformers): `pe_audio_video` checkpoints (facebook/pe-av-*,
of which only the audio branch and the text model are loaded) and `pe_audio` ones (PeAudioModel, or
PeAudioFrameLevelModel for facebook/pe-a-frame-*: one embedding per 40 ms frame).

Scores are SigLIP-style, as the models' own forward computes them: logits = audio_embeds @ text_embeds.T *
text_audio_logit_scale + text_audio_logit_bias (unnormalized embeddings, scale used as is), scores =
sigmoid(logits), each label on its own. Frame-level models give one logit per frame and label, pooled to one per
clip by `frame_pooling` (max: the label's best frame; mean: all frames alike), then the sigmoid.

Batch invariance: the DAC codec at the front of the audio encoder is a stack of convolutions that, in a zero-padded
batch, lets the padding leak into a clip's last frames (transformers' batched forward is not batch-invariant for
clips of unequal length). So each clip is run through the codec on its own (clips of equal length together), and
only the transformer, whose padding masks are exact, sees the padded batch.

`max_seconds` is the family's window (zsa_eval/long_audio.py): under `long_audio=native` clips over it are cut to
their first `max_seconds`, under `windows` they are heard in consecutive windows of it. The model has no fixed
window, its memory grows with the length (attention with its square). 30 s by default leaves the clips of the usual
zero-shot benchmarks whole (ESC-50 5 s, UrbanSound8K up to 4 s, AudioSet 10 s; mteb cuts PE-AV input to its first
30 s too, mteb PR 4624); the encoder's 10000 positions (transformers' default max_position_embeddings) allow up to
~400 s: raise `model.max_seconds` for longer recordings. The cut is deterministic (no seed).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from zsa_eval.errors import UserError
from zsa_eval.families import Family, Inputs, ModelSpec, weighted_mean

FRAME_POOLING = ("max", "mean")


class CodecFeatures(torch.nn.Module):
    """Stands in for the audio encoder's embedder when the codec features were computed clip by clip."""

    def forward(self, input_values: torch.Tensor, padding_mask: torch.Tensor | None = None):
        return input_values, padding_mask


@contextmanager
def codec_features_as_input(encoder: torch.nn.Module) -> Iterator[None]:
    """Inside, `encoder(input_values=codec features, padding_mask=frame mask)` runs everything after the codec."""
    embedder = encoder.embedder
    encoder.embedder = CodecFeatures()
    try:
        yield
    finally:
        encoder.embedder = embedder


def load_audio_branch(name_or_path: str, config, options: dict):
    """PeAudioModel from a `pe_audio_video` checkpoint: its `audio_model.*` weights and the shared `text_model.*`
    (the video tower is never built: it needs timm and is unused here). A weight the checkpoint lacks is an error,
    never a silently random one."""
    from transformers import PeAudioModel

    audio_config = config.audio_config
    audio_config._commit_hash = getattr(config, "_commit_hash", None)
    model, info = PeAudioModel.from_pretrained(name_or_path, config=audio_config, output_loading_info=True,
                                               key_mapping={r"^audio_model\.": ""}, **options)
    check_logit_parameters(name_or_path, model, info["missing_keys"])
    if info["missing_keys"]:
        raise UserError(f"model {name_or_path!r}: the pe_audio_video checkpoint lacks {len(info['missing_keys'])} "
                        f"audio-branch weights (e.g. {sorted(info['missing_keys'])[0]}); point model.name_or_path at "
                        "a complete facebook/pe-av-* checkpoint")
    return model


class PeAudioFamily(Family):
    name = "pe_audio"
    model_types = ("pe_audio", "pe_audio_video")
    score_kind = "sigmoid"
    score_description = "sigmoid of each audio-text logit (labels scored independently; rows need not sum to 1)"
    pipeline_supported = False

    def __init__(self, model: torch.nn.Module, feature_extractor, tokenizer, device: torch.device,
                 dtype: torch.dtype, max_seconds: float, frame_pooling: str | None):
        super().__init__(device, dtype, model)
        from transformers import PeAudioFrameLevelModel

        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer
        self.frame_level = isinstance(model, PeAudioFrameLevelModel)
        self.audio_rank = 2 if self.frame_level else 1  # frame-level: (frames, dim) per clip
        check_settings(model, feature_extractor, max_seconds, frame_pooling, self.frame_level)
        self.max_samples = int(round(max_seconds * self.sampling_rate))
        self.max_seconds = float(max_seconds)
        self.frame_pooling = frame_pooling if self.frame_level else None

    @classmethod
    def load(cls, spec: ModelSpec) -> PeAudioFamily:
        import transformers

        name_or_path, options = spec.name_or_path, spec.hub_options()
        config = transformers.AutoConfig.from_pretrained(name_or_path, **options)
        feature_extractor = transformers.PeAudioFeatureExtractor.from_pretrained(name_or_path, **options)
        tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path, **options)
        if config.model_type == "pe_audio_video":
            model = load_audio_branch(name_or_path, config, options)
        else:
            frame_level = "PeAudioFrameLevelModel" in (config.architectures or [])
            model_class = transformers.PeAudioFrameLevelModel if frame_level else transformers.PeAudioModel
            model, info = model_class.from_pretrained(name_or_path, output_loading_info=True, **options)
            check_logit_parameters(name_or_path, model, info["missing_keys"])
        return cls(model, feature_extractor, tokenizer, spec.device, spec.dtype, spec.settings.get("max_seconds"),
                   spec.settings.get("frame_pooling"))

    @property
    def window_seconds(self) -> float:
        """`model.max_seconds`: the preparer cuts a clip (or window) to its first max_seconds."""
        return self.max_seconds

    @property
    def long_clips_heard(self) -> str:
        return f"only the first {self.max_seconds:g} s heard"

    @property
    def frame_seconds(self) -> float:
        """One frame of the codec's features (the feature extractor's hop: 1920 samples at 48 kHz, 40 ms)."""
        return self.feature_extractor.hop_length / self.sampling_rate

    def embedding_settings(self) -> dict:
        return {"max_seconds": self.max_seconds}

    def settings(self) -> dict:
        return {"max_seconds": self.max_seconds, "frame_level": self.frame_level, "frame_pooling": self.frame_pooling}

    def preparer(self, device: torch.device) -> Callable[[np.ndarray, int], Inputs]:
        """The first max_seconds of the clip, reflect-padded to whole 40 ms frames by PeAudioFeatureExtractor on the
        clip alone (no randomness: the seed is unused)."""
        def prepare(waveform: np.ndarray, seed: int) -> Inputs:
            features = self.feature_extractor(waveform[: self.max_samples], sampling_rate=self.sampling_rate,
                                              return_tensors="np")
            return {"input_values": torch.from_numpy(features["input_values"][0, 0]).to(device)}
        return prepare

    def collate(self, prepared: Sequence[Inputs]) -> Inputs:
        waveforms = [clip["input_values"] for clip in prepared]
        return {"input_values": torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True),
                "lengths": torch.tensor([waveform.shape[0] for waveform in waveforms])}

    @torch.inference_mode()
    def embed_audio(self, inputs: Inputs) -> list[torch.Tensor]:
        """Codec per clip (clips of one length together), then the encoder's transformer on the padded batch with
        its frame mask; the audio head on the class token (or on every real frame, for frame-level models)."""
        encoder = self.model.audio_encoder
        waveforms = inputs["input_values"].to(self.device, self.dtype)
        lengths = inputs["lengths"].tolist()
        codec: list[torch.Tensor | None] = [None] * len(lengths)
        for length in sorted(set(lengths)):
            rows = [row for row, own in enumerate(lengths) if own == length]
            features, _ = encoder.embedder(waveforms[rows, None, :length])
            for row, clip_features in zip(rows, features):
                codec[row] = clip_features
        frames = torch.tensor([clip_features.shape[0] for clip_features in codec], device=self.device)
        frame_mask = (torch.arange(int(frames.max()), device=self.device)[None] < frames[:, None]).long()
        with codec_features_as_input(encoder):
            output = encoder(input_values=torch.nn.utils.rnn.pad_sequence(codec, batch_first=True),
                             padding_mask=frame_mask)
        if self.frame_level:
            embeddings = self.model.audio_head(output.last_hidden_state).float()
            return [clip[:count] for clip, count in zip(embeddings, frames.tolist())]
        return list(self.model.audio_head(output.pooler_output).float())

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """The text model's last hidden state at the first token, through the audio-text head (as the model's
        forward computes it: its get_text_audio_embeds fails in transformers 5.24, see tests/test_pe_audio.py)."""
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        output = self.model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                       output_hidden_states=True, return_dict=True)
        return self.model.text_audio_head(output.hidden_states[-1][:, 0]).float()

    def combine_prompts(self, per_prompt: torch.Tensor) -> torch.Tensor:
        """The mean of the prompts' embeddings: logits are linear in it, so this averages the prompts' logits."""
        return per_prompt.mean(dim=0)

    def logits(self, audio: Sequence[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
        scale = self.model.text_audio_logit_scale.float()
        bias = self.model.text_audio_logit_bias.float()
        if not self.frame_level:
            return torch.stack(list(audio)) @ classifier.T * scale + bias
        per_frame = [clip @ classifier.T * scale + bias for clip in audio]  # (frames, classes) per clip
        if self.frame_pooling == "max":
            return torch.stack([frame_logits.max(dim=0).values for frame_logits in per_frame])
        return torch.stack([frame_logits.mean(dim=0) for frame_logits in per_frame])

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid()

    def pool_windows(self, embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
        """Pooled where the logits are linear: the weighted mean of the (unnormalized) embeddings, whose logit is the
        weighted mean of the windows' logits. Frame-level models: the windows' frames one after another (a frame
        stands for 40 ms, so frame_pooling's max or mean runs over the whole clip, its mean weighted by duration)."""
        if self.frame_level:
            return torch.cat(list(embeddings))
        return weighted_mean(embeddings, weights)

    def clip_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        """Frame-level models: the mean of the frames (its logit is the mean of the frames' logits)."""
        return embedding.mean(dim=0) if self.frame_level else embedding


LOGIT_PARAMETERS = ("text_audio_logit_scale", "text_audio_logit_bias")


def check_logit_parameters(name_or_path: str, model: torch.nn.Module, missing_keys: Collection[str]) -> None:
    """The logit scale and bias must be the checkpoint's, and the scale not 0: transformers fills missing ones itself
    (zeros, or whatever memory held), and a scale of 0 makes every logit the bias, so every clip would get the same
    score and every metric would sit at chance without a sign of it."""
    missing = [name for name in LOGIT_PARAMETERS if name in missing_keys]
    if missing:
        raise UserError(f"model {name_or_path!r}: the checkpoint lacks {' and '.join(missing)}, which transformers "
                        "would fill with untrained values (0 gives every clip the same score); point "
                        "model.name_or_path at a trained PE-Audio checkpoint")
    scale, bias = (getattr(model, name).item() for name in LOGIT_PARAMETERS)
    if scale == 0:
        same_score = torch.sigmoid(torch.tensor(bias)).item()
        raise UserError(f"model {name_or_path!r} has text_audio_logit_scale=0 (text_audio_logit_bias={bias:g}): "
                        f"every logit would equal the bias, giving every clip the same score ({same_score:.3g}) and "
                        "every metric chance level; point model.name_or_path at a trained PE-Audio checkpoint")


def check_settings(model: torch.nn.Module, feature_extractor, max_seconds, frame_pooling, frame_level: bool) -> None:
    """max_seconds must be positive and within the encoder's positions; frame-level models need a frame_pooling."""
    if not isinstance(max_seconds, (int, float)) or isinstance(max_seconds, bool) or max_seconds <= 0:
        raise UserError(f"model.max_seconds={max_seconds} must be a positive number of seconds, e.g. "
                        "model.max_seconds=30 (the audio PE-Audio hears at once)")
    frames = max_seconds * feature_extractor.sampling_rate / feature_extractor.hop_length + 1
    positions = model.config.audio_config.max_position_embeddings
    if frames > positions:
        longest = (positions - 1) * feature_extractor.hop_length / feature_extractor.sampling_rate
        raise UserError(f"model.max_seconds={max_seconds} is longer than this encoder's {positions} positions allow "
                        f"({longest:g} s); use a smaller model.max_seconds")
    if frame_level and frame_pooling not in FRAME_POOLING:
        raise UserError(f"model.frame_pooling={frame_pooling} is not a frame pooling: a frame-level PE-Audio model "
                        "needs model.frame_pooling=max (a label's best frame) or model.frame_pooling=mean")
