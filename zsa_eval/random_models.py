"""Random-weight CLAP models built offline: a tiny one for tests and smoke runs, and one of the full
laion/clap-htsat-fused architecture (~153.5 M parameters) for speed work, each with a locally trained tokenizer."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizerFast

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
TOKENIZER_CORPUS = [
    "This is a sound of {}.", "A sound of {}.", "The sound of {}.", "A recording of {}.", "An audio clip of {}.",
    "dog rooster pig cow frog cat hen insects sheep crow rain sea waves crackling fire crickets chirping birds",
    "water drops wind pouring water toilet flush thunderstorm crying baby sneezing clapping breathing coughing",
    "footsteps laughing brushing teeth snoring drinking sipping door wood knock mouse click keyboard typing",
    "door wood creaks can opening washing machine vacuum cleaner clock alarm clock tick glass breaking",
    "helicopter chainsaw siren car horn engine train church bells airplane fireworks hand saw",
    "low hum high beep white noise rising chirp clicks music speech silence tone",
]

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


def train_tokenizer(vocab_size: int = 400) -> RobertaTokenizerFast:
    """A byte-level BPE tokenizer with RoBERTa's <s> ... </s> framing, trained on a small local corpus."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TOKENIZER_CORPUS * 4, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=SPECIAL_TOKENS, show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                      ("<s>", bpe.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=64)


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
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return out_dir
