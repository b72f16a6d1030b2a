"""Random-weight CLAP: a tiny one for tests and smoke runs, and one of the full laion/clap-htsat-fused architecture
(~153.5 M parameters) for speed work."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
)

from zsa_eval.random_models.common import train_tokenizer, write_model


SIZES = {
    "tiny": dict(
        text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=80),
        audio_config=dict(hidden_size=128, patch_embeds_hidden_size=16, depths=[1, 1, 1, 1],
                          num_attention_heads=[1, 1, 2, 2], enable_fusion=True, fusion_type="aff_2d"),
        projection_dim=16,
    ),
    "full": dict(
        text_config=dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1),
        audio_config=dict(enable_fusion=True, fusion_type="aff_2d"),
        projection_dim=512,
    ),
}


def build_random_clap(size: str, out_dir: Path, seed: int = 0) -> Path:
    """Write a random-weight ClapModel and its processor to `out_dir` (atomically) and return it."""
    if size not in SIZES:
        raise ValueError(f"unknown random model size {size!r}; choose one of {sorted(SIZES)}")
    tokenizer = train_tokenizer()
    spec = SIZES[size]
    text_config = {"vocab_size": len(tokenizer), **spec["text_config"], "pad_token_id": tokenizer.pad_token_id,
                   "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = ClapConfig(text_config=text_config, audio_config=spec["audio_config"],
                        projection_dim=spec["projection_dim"])
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    processor = ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
    return write_model(out_dir, write)
