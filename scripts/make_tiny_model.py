"""Build a random-weight CLAP offline, where `model=tiny_random` (or --out) expects it.

    python scripts/make_tiny_model.py                 # tiny model into the zsa-eval cache
    python scripts/make_tiny_model.py --size full --out /tmp/clap-full   # full laion/clap-htsat-fused shape
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra import compose, initialize_config_dir

from zsa_eval.__main__ import CONFIG_DIR
from zsa_eval.random_models import SIZES, build_random_clap


def default_location() -> Path:
    """Where model=tiny_random looks, as the config resolves it (cache_dir / ZSA_EVAL_CACHE)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return Path(compose(config_name="config", overrides=["model=tiny_random"]).model.name_or_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: the tiny_random path)")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    out = build_random_clap(arguments.size, arguments.out or default_location(), arguments.seed)
    print(f"random-weight {arguments.size} CLAP written to {out}")


if __name__ == "__main__":
    main()
