"""Random-weight PE-Audio: tiny ones in the `pe_audio_video` and frame-level `pe_audio` layouts, and one of
pe-av-small's audio branch."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    PeAudioConfig,
    PeAudioFeatureExtractor,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioVideoConfig,
    RobertaTokenizerFast,
)

from zsa_eval.random_models.common import train_tokenizer, write_model


# PE-Audio shapes. `small`: the audio branch of facebook/pe-av-small as far as it can be known offline: the text
# model as transformers' PeAudioConfig default (ModernBERT, 22 layers of 1024, the 50368-token vocabulary), the DAC
# codec and audio transformer as perception_models' defaults (64 channels, strides 2-8-10-12; 16 layers of 1024).
PE_SIZES = {
    "tiny": dict(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        audio_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          head_dim=16, dac_config=dict(encoder_hidden_size=4, codebook_dim=8)),
    ),
    "small": dict(
        text_config=dict(vocab_size=50368, hidden_size=1024, intermediate_size=2624, num_hidden_layers=22,
                         num_attention_heads=16),
        audio_config=dict(hidden_size=1024, intermediate_size=2752, num_hidden_layers=16, num_attention_heads=8,
                          head_dim=128, dac_config=dict(encoder_hidden_size=64, codebook_dim=128)),
    ),
}
PE_LAYOUTS = ("pe_audio_video", "pe_audio", "pe_audio_frame")


def pe_audio_config(size: str, tokenizer: RobertaTokenizerFast) -> PeAudioConfig:
    spec = PE_SIZES[size]
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "cls_token_id": tokenizer.bos_token_id,
           "sep_token_id": tokenizer.eos_token_id}
    text_config = {"model_type": "modernbert", "vocab_size": len(tokenizer), **spec["text_config"], **ids}
    audio_config = {**spec["audio_config"], "dac_config": {"downsampling_ratios": [2, 8, 10, 12],
                                                           **spec["audio_config"]["dac_config"]}}
    return PeAudioConfig(text_config=text_config, audio_config=audio_config)


def random_pe_audio(config: PeAudioConfig, frame_level: bool, seed: int) -> PeAudioModel:
    """A PE-Audio model with PyTorch's default random weights (its own initializer's are so small that every clip
    gets the same embedding, and it zeroes the biases, which hides padding leaks that trained weights show), and a
    logit scale and bias that put the tiny model's logits around 0, so the scores spread."""
    torch.manual_seed(seed)
    model = (PeAudioFrameLevelModel if frame_level else PeAudioModel)(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Embedding)):
                module.reset_parameters()
        model.text_audio_logit_scale.fill_(5.0)
        model.text_audio_logit_bias.fill_(10.0)
    return model


def pe_audio_video_checkpoint(model: PeAudioModel, tokenizer: RobertaTokenizerFast) -> tuple[PeAudioVideoConfig, dict]:
    """The config and weights of a `pe_audio_video` checkpoint (facebook/pe-av-* layout) whose audio branch is
    `model`: the text model at `text_model.*`, the rest at `audio_model.*`, no video tower (PeAudioVideoModel needs
    timm to be built; zsa-eval loads only the audio branch)."""
    config = PeAudioVideoConfig(text_config=model.config.text_config.to_dict(),
                                audio_video_config={"audio_config": model.config.audio_config.to_dict()})
    config.architectures = ["PeAudioVideoModel"]
    weights = {name if name.startswith("text_model.") else f"audio_model.{name}": tensor.contiguous().clone()
               for name, tensor in model.state_dict().items()}
    return config, weights


def build_random_pe(size: str, layout: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-weight PE-Audio checkpoint of `layout` (pe_audio_video, pe_audio, pe_audio_frame), with its
    feature extractor and tokenizer, to `out_dir` (atomically) and return it."""
    if size not in PE_SIZES or layout not in PE_LAYOUTS:
        raise ValueError(f"unknown PE-Audio size {size!r} or layout {layout!r}; choose from {sorted(PE_SIZES)} "
                         f"and {PE_LAYOUTS}")
    tokenizer = train_tokenizer()
    model = random_pe_audio(pe_audio_config(size, tokenizer), layout == "pe_audio_frame", seed)

    def write(staging: Path) -> None:
        if layout == "pe_audio_video":
            config, weights = pe_audio_video_checkpoint(model, tokenizer)
            config.save_pretrained(staging)
            save_file(weights, staging / "model.safetensors", metadata={"format": "pt"})
        else:
            model.save_pretrained(staging)
        PeAudioFeatureExtractor().save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return write_model(out_dir, write)


# Tiny audio language models. The audio encoder keeps the real models' 1500 positions (the encoders take exactly 30 s
# of features, 3000 frames) and 128 mel bins (the WhisperFeatureExtractor of both checkpoints); everything else is
# small. The chat turns, audio placeholders and end of turn are the real checkpoints' special tokens.
