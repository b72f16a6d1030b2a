"""MS-CLAP's configuration: everything that shapes a model, and each version's defaults as msclap 1.3.4 sets them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

COUNTED_PAD_ID = 0  # msclap locates GPT-2's last token by counting the ids that are not 0 ('!', its pad token)


@dataclass
class MsClapConfig:
    """Everything that shapes an MS-CLAP model, a version's defaults as msclap 1.3.4 sets them (VERSIONS); a model
    folder zsa-eval writes holds it as config.json, beside the weights file."""

    version: str
    audio_encoder: str  # Cnn14 | HTSAT
    text_model: str  # bert | gpt2
    text_config: dict  # the transformers config of the text model (BertConfig or GPT2Config keys)
    tokenizer: str  # a Hub id, or a folder relative to the model folder
    weights_file: str
    duration: int  # seconds: shorter clips are repeated to it, longer ones cropped (msclap's `duration`)
    text_len: int  # tokens: shorter texts are padded to it (msclap cuts none)
    mel_sampling_rate: int  # the rate the mel filter bank is built for (2023: HTSAT's own 32 kHz, msclap's quirk)
    fmax: int
    out_emb: int  # the audio encoder's embedding width
    sampling_rate: int = 44100
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: int = 50
    d_proj: int = 1024
    classes_num: int = 527
    cnn14_channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024, 2048])
    htsat_embed_dim: int = 96
    htsat_depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    htsat_num_heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    htsat_window_size: int = 8
    htsat_spec_size: int = 256
    htsat_patch_size: int = 4
    model_type: str = "msclap"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MsClapConfig:
        known = {item.name for item in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})

    @classmethod
    def for_version(cls, version: str, **changes) -> MsClapConfig:
        return cls(**{**VERSIONS[version], **changes})

    @property
    def clip_samples(self) -> int:
        return self.duration * self.sampling_rate


# msclap 1.3.4's configs/config_2022.yml and config_2023.yml as its code uses them. The 2023 audio encoder ignores
# the yml's audio settings (HTSATWrapper builds HTSAT from models/config.py): its mel filter bank is built for
# 32 kHz and fmax 14000 although the audio arrives at 44.1 kHz (the yml's fmax 8000 is unused). The text models are
# bert-base-uncased's and gpt2's Hub configs (transformers' BertConfig and GPT2Config defaults).
VERSIONS = {
    "2022": dict(version="2022", audio_encoder="Cnn14", text_model="bert", tokenizer="bert-base-uncased",
                 text_config=dict(model_type="bert"), weights_file="CLAP_weights_2022.pth", duration=5,
                 text_len=100, mel_sampling_rate=44100, fmax=14000, out_emb=2048),
    "2023": dict(version="2023", audio_encoder="HTSAT", text_model="gpt2", tokenizer="gpt2",
                 text_config=dict(model_type="gpt2"), weights_file="CLAP_weights_2023.pth", duration=7,
                 text_len=77, mel_sampling_rate=32000, fmax=14000, out_emb=768),
}
