"""Build a random-weight model offline, where its `model=` preset (or --out) expects it.

    python scripts/make_tiny_model.py                 # tiny CLAP into the zsa-eval cache (model=tiny_random)
    python scripts/make_tiny_model.py --size pe_tiny  # tiny PE-Audio (model=pe_tiny_random)
    python scripts/make_tiny_model.py --size qwen2_audio_tiny   # tiny Qwen2-Audio (model=qwen2_audio_tiny_random)
    python scripts/make_tiny_model.py --size audioflamingo3_tiny   # tiny Audio Flamingo 3
    python scripts/make_tiny_model.py --size qwen2_5_omni_tiny   # tiny Qwen2.5-Omni thinker
    python scripts/make_tiny_model.py --size voxtral_tiny   # tiny Voxtral (needs mistral-common)
    python scripts/make_tiny_model.py --size full --out /tmp/clap-full   # full laion/clap-htsat-fused shape
    python scripts/make_tiny_model.py --size pe_av_small --out /tmp/pe-av-small   # pe-av-small's audio branch
    python scripts/make_tiny_model.py --size msclap_2023_tiny   # tiny MS-CLAP 2023 (model=msclap_2023_tiny_random)
    python scripts/make_tiny_model.py --size msclap_2022_full --out /tmp/msclap-2022   # at msclap's own sizes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from zsa_eval.__main__ import CONFIG_DIR
from zsa_eval.random_models import RANDOM_MODELS, build_random_model

PRESETS = {"tiny": "tiny_random", "pe_tiny": "pe_tiny_random", "pe_frame_tiny": "pe_frame_tiny_random",
           "qwen2_audio_tiny": "qwen2_audio_tiny_random", "audioflamingo3_tiny": "audioflamingo3_tiny_random",
           "qwen2_5_omni_tiny": "qwen2_5_omni_tiny_random", "voxtral_tiny": "voxtral_tiny_random",
           "msclap_2022_tiny": "msclap_2022_tiny_random", "msclap_2023_tiny": "msclap_2023_tiny_random"}


def default_location(size: str, seed: int) -> Path:
    """Where the size's model= preset looks, as the config resolves it (cache_dir / ZSA_EVAL_CACHE)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose(config_name="config", overrides=[f"model={PRESETS[size]}", f"model.random_init_seed={seed}"])
    return Path(config.model.name_or_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(RANDOM_MODELS), default="tiny")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: the size's preset path)")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if arguments.out is None and arguments.size not in PRESETS:
        sys.exit(f"make_tiny_model: --size {arguments.size} has no model= preset; give --out DIR")
    out = build_random_model(arguments.size, arguments.out or default_location(arguments.size, arguments.seed),
                             arguments.seed)
    print(f"random-weight {arguments.size} model written to {out}")


if __name__ == "__main__":
    main()
