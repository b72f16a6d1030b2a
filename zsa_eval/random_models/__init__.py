"""Random-weight models built offline, each with a locally trained tokenizer (one module per family): CLAP, PE-Audio,
tiny audio language models and MS-CLAP; `build_random_model` builds the one a model preset's `random_init` names."""

from __future__ import annotations

from pathlib import Path

from zsa_eval.errors import UserError
from zsa_eval.random_models.alm import build_random_alm
from zsa_eval.random_models.alm_omni import build_random_qwen2_5_omni, build_random_voxtral
from zsa_eval.random_models.alm_gemma_phi import build_random_phi4_multimodal
from zsa_eval.random_models.clap import build_random_clap
from zsa_eval.random_models.common import train_tokenizer
from zsa_eval.random_models.msclap import build_random_msclap
from zsa_eval.random_models.pe import build_random_pe

__all__ = ["build_random_alm", "build_random_clap", "build_random_model", "build_random_msclap", "build_random_pe",
           "build_random_qwen2_5_omni", "build_random_voxtral",
           "build_random_phi4_multimodal", "train_tokenizer"]


RANDOM_MODELS = {
    "tiny": lambda out_dir, seed: build_random_clap("tiny", out_dir, seed),
    "full": lambda out_dir, seed: build_random_clap("full", out_dir, seed),
    "pe_tiny": lambda out_dir, seed: build_random_pe("tiny", "pe_audio_video", out_dir, seed),
    "pe_frame_tiny": lambda out_dir, seed: build_random_pe("tiny", "pe_audio_frame", out_dir, seed),
    "pe_av_small": lambda out_dir, seed: build_random_pe("small", "pe_audio_video", out_dir, seed),
    "qwen2_audio_tiny": lambda out_dir, seed: build_random_alm("qwen2_audio", out_dir, seed),
    "audioflamingo3_tiny": lambda out_dir, seed: build_random_alm("audioflamingo3", out_dir, seed),
    "qwen2_5_omni_tiny": build_random_qwen2_5_omni,
    "voxtral_tiny": build_random_voxtral,
    "phi4_multimodal_tiny": build_random_phi4_multimodal,
    "msclap_2022_tiny": lambda out_dir, seed: build_random_msclap("2022", "tiny", out_dir, seed),
    "msclap_2023_tiny": lambda out_dir, seed: build_random_msclap("2023", "tiny", out_dir, seed),
    "msclap_2022_full": lambda out_dir, seed: build_random_msclap("2022", "full", out_dir, seed),
    "msclap_2023_full": lambda out_dir, seed: build_random_msclap("2023", "full", out_dir, seed),
}


def build_random_model(random_init: str, out_dir: Path, seed: int = 0) -> Path:
    """The random-weight model named by `model.random_init` (a key of RANDOM_MODELS), written to `out_dir`."""
    if random_init not in RANDOM_MODELS:
        raise UserError(f"model.random_init={random_init} is unknown: use one of {', '.join(RANDOM_MODELS)}")
    return RANDOM_MODELS[random_init](out_dir, seed)
