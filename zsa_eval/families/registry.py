"""The model families by the checkpoint `model_type`s (config.json) each loads."""

from __future__ import annotations

from zsa_eval.families import Family
from zsa_eval.families.clap import ClapFamily
from zsa_eval.families.pe_audio import PeAudioFamily

FAMILIES: dict[str, type[Family]] = {model_type: family for family in (ClapFamily, PeAudioFamily)
                                     for model_type in family.model_types}
