"""The model families by the checkpoint `model_type`s (config.json) each loads."""

from __future__ import annotations

from zsa_eval.families import ModelFamily
from zsa_eval.families.alm import AudioFlamingo3Family, Qwen2AudioFamily
from zsa_eval.families.clap import ClapFamily
from zsa_eval.families.msclap import MsClapFamily
from zsa_eval.families.pe_audio import PeAudioFamily

FAMILIES: dict[str, type[ModelFamily]] = {
    model_type: family for family in (ClapFamily, PeAudioFamily, MsClapFamily, Qwen2AudioFamily,
                                          AudioFlamingo3Family)
    for model_type in family.model_types}
