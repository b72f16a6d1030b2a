"""MS-CLAP (Microsoft's CLAP, 2022 and 2023) as the `msclap` 1.3.4 package runs it, without that package: its .pth
weights (`microsoft/msclap`: CLAP_weights_2022.pth, CLAP_weights_2023.pth) load into networks written from its
code (zsa_eval/families/msclap_networks.py).

- Audio: msclap resamples each file to 44.1 kHz (torchaudio; here the engine's soxr), then repeats a clip shorter
  than `duration` (5 s for 2022, 7 s for 2023) until it fills it, and crops a longer one at a random start drawn with
  Python's `random.randrange(length - duration samples)`: here from a `random.Random` seeded per clip, so a clip
  gets the same crop in every run and batch.
- Text: msclap's token ids (2022: BERT; 2023: GPT-2, each text followed by " <|endoftext|>", the pad token '!'),
  none cut but at the model's positions; msclap pads each text to `text_len` (100, 77), a batch here is padded to its
  longest text (padding changes no embedding).
- Similarity: both embeddings normalized, cosine times exp(logit_scale), softmax over the candidate labels
  (msclap's compute_similarity, then the softmax of its zero-shot example).

A checkpoint is named by a Hub repo (or a local folder) and `model.weights_file`, by a path to the .pth itself
(`model=auto` reads the version from its weights' names), or is a folder zsa-eval wrote (config.json with
model_type msclap beside the weights file: the random-weight twins; a .pth in such a folder takes its config). A
weight the model needs and the file lacks is an error (msclap would keep an untrained value); only the log-mel front
end's kernels may be missing (they are computed from the settings, as torchlibrosa computes them). Weights the model
does not use are ignored, as msclap ignores them."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from zsa_eval.errors import UserError
from zsa_eval.hub import looks_like_path
from zsa_eval.laion_checkpoint import is_laion_checkpoint
from zsa_eval.families import ContrastiveFamily, Inputs, ModelSpec
from zsa_eval.families.msclap_audio import FRONT_END
from zsa_eval.families.msclap_config import VERSIONS, MsClapConfig
from zsa_eval.families.msclap_networks import MsClapModel

ENCODER_NAMES = {  # a weight only each encoder has -> what it tells about the checkpoint
    "audio_encoder.base.conv_block1.conv1.weight": "Cnn14",
    "audio_encoder.base.htsat.patch_embed.proj.weight": "HTSAT",
    "caption_encoder.base.encoder.layer.0.attention.self.query.weight": "bert",
    "caption_encoder.base.h.0.attn.c_attn.weight": "gpt2",
}
END_OF_TEXT = " <|endoftext|>"  # what msclap appends to each text for GPT-2
GPT2_PAD = "!"  # the pad token msclap gives GPT-2's tokenizer


@dataclass(frozen=True)
class ClipPreparation:
    """What the family does to a clip before its encoder (the feature extractor's place: part of the cache key)."""

    sampling_rate: int
    duration_s: int
    short_clips: str = "repeated to duration_s, then cut to it"
    long_clips: str = "cropped at random.Random(seed).randrange(samples - duration samples)"

    def to_dict(self) -> dict:
        return asdict(self)


def msclap_clip(waveform: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """msclap's load_audio_into_tensor on a decoded clip: a clip no longer than `samples` repeated ceil(samples /
    length) times and cut to `samples`, a longer one cropped at randrange(length - samples) (the last possible start
    is never drawn), drawn here from Python's random seeded with `seed`."""
    length = waveform.shape[0]
    if samples >= length:
        return np.tile(waveform, -(-samples // length))[:samples]
    start = random.Random(seed).randrange(length - samples)
    return waveform[start:start + samples]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The weights of an msclap checkpoint (`{"model": state dict}`), read as tensors only (no pickled code runs)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for files it cannot read
        raise UserError(f"cannot read {str(path)!r} as an MS-CLAP weights file ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''}); point model.name_or_path (and "
                        "model.weights_file) at CLAP_weights_2022.pth or CLAP_weights_2023.pth") from error
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{str(path)!r} is not an MS-CLAP weights file: msclap's files hold their weights under "
                        "'model'; point model.name_or_path at CLAP_weights_2022.pth or CLAP_weights_2023.pth")
    return state


def checkpoint_version(state: dict, source: str) -> str:
    """2022 (CNN14 and BERT) or 2023 (HTSAT and GPT-2), read from the weights' names."""
    found = {kind for name, kind in ENCODER_NAMES.items() if name in state}
    for version, spec in VERSIONS.items():
        if {spec["audio_encoder"], spec["text_model"]} == found:
            return version
    raise UserError(f"{source} is not an MS-CLAP checkpoint zsa-eval knows: its weights name "
                    f"{' and '.join(sorted(found)) or 'neither'} of msclap's encoders (2022: Cnn14 and bert, 2023: "
                    "HTSAT and gpt2); point model.name_or_path at CLAP_weights_2022.pth or CLAP_weights_2023.pth")


def snapshot_commit(path: Path) -> str | None:
    """The Hub commit of a file in the Hugging Face cache (.../snapshots/<commit>/<file>), else None."""
    return path.parent.name if path.parent.parent.name == "snapshots" else None


def resolve_weights_file(name_or_path: str, weights_file: str | None, options: dict) -> Path:
    """The .pth file: `weights_file` in a local folder or a Hub repo (downloaded, or read from the Hub cache), or
    `name_or_path` itself."""
    local = Path(name_or_path).expanduser()
    if not weights_file:
        if local.is_file():
            return local
        raise UserError(f"MS-CLAP weights file {name_or_path!r} does not exist: set model.name_or_path to a .pth "
                        "file, or to a Hub repo or folder and model.weights_file to the file in it (e.g. "
                        "model.name_or_path=microsoft/msclap model.weights_file=CLAP_weights_2023.pth)")
    if local.is_dir() or looks_like_path(name_or_path):
        if not (local / weights_file).is_file():
            raise UserError(f"MS-CLAP weights file {str(local / weights_file)!r} does not exist: point "
                            "model.name_or_path at the folder that holds model.weights_file")
        return local / weights_file
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(name_or_path, weights_file, revision=options.get("revision"),
                                    local_files_only=options.get("local_files_only", False)))
    except (OSError, ValueError, EntryNotFoundError) as error:  # the hub client's: not found, offline, not cached
        raise UserError(f"cannot load {weights_file} of {name_or_path!r}: the Hugging Face Hub is unreachable or has "
                        f"no such file, and it is not in the local cache ({type(error).__name__}); download it where "
                        f"the Hub is reachable (hf download {name_or_path} {weights_file}) or set "
                        "model.name_or_path=/path/to/the/file.pth") from error


def model_config(name_or_path: str, weights_file: str | None) -> tuple[MsClapConfig | None, Path | None]:
    """The config.json of a model folder zsa-eval wrote (named, or holding the named .pth) and the folder, else
    (None, None)."""
    folder = Path(name_or_path).expanduser()
    if folder.is_file():
        folder, weights_file = folder.parent, folder.name
    values = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if values.get("model_type") != MsClapConfig.model_type:
        return None, None
    config = MsClapConfig.from_dict(values)
    if weights_file:
        config.weights_file = weights_file
    return config, folder


def load_weights(model: MsClapModel, state: dict, source: str) -> None:
    """The checkpoint's weights into `model`: every weight the model uses must be there (the front end's kernels
    may be computed instead), with its shape; weights it does not use are left aside, as msclap leaves them."""
    own = model.state_dict()
    for name, tensor in own.items():
        if name in state and tuple(state[name].shape) != tuple(tensor.shape):
            raise UserError(f"{source}: weight {name} has shape {tuple(state[name].shape)}, MS-CLAP "
                            f"{model.config.version} needs {tuple(tensor.shape)}: a bare weights file must be one of "
                            "Microsoft's own; a model of other sizes needs the config.json that zsa-eval writes "
                            "beside its weights")
    optional = {f"audio_encoder.base.{name}" for name in FRONT_END} \
        | {f"audio_encoder.base.htsat.{name}" for name in FRONT_END}
    missing = sorted(name for name in own if name not in state and name not in optional
                     and not name.endswith("num_batches_tracked"))
    if missing:
        raise UserError(f"{source} lacks {len(missing)} of MS-CLAP {model.config.version}'s weights (e.g. "
                        f"{missing[0]}), which msclap would leave untrained; point model.name_or_path at a complete "
                        "CLAP_weights_2022.pth or CLAP_weights_2023.pth")
    model.load_state_dict({name: state[name] for name in own if name in state}, strict=False)


def load_tokenizer(config: MsClapConfig, folder: Path | None, options: dict):
    """The text model's tokenizer (bert-base-uncased's or gpt2's from the Hub, or the one in a model folder); GPT-2's
    with msclap's pad token."""
    from transformers import AutoTokenizer

    location = str(folder / config.tokenizer) if folder is not None else config.tokenizer
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=options.get("local_files_only", False))
    if config.text_model == "gpt2":
        tokenizer.add_special_tokens({"pad_token": GPT2_PAD})
    return tokenizer


class MsClapFamily(ContrastiveFamily):
    name = "msclap"
    model_types = ("msclap",)
    pipeline_supported = False

    def __init__(self, model: MsClapModel, tokenizer, device: torch.device, dtype: torch.dtype):
        config = model.config
        super().__init__(device, dtype, model)
        self.feature_extractor, self.tokenizer = ClipPreparation(config.sampling_rate, config.duration), tokenizer
        self.config = config

    @classmethod
    def claims(cls, spec: ModelSpec) -> bool:
        """A bare weights file: named by model.weights_file, a `.pth`, or any other file but laion_clap's `.pt`."""
        name_or_path = spec.name_or_path or ""
        return bool(spec.settings.get("weights_file")) or name_or_path.endswith(".pth") \
            or (Path(name_or_path).expanduser().is_file() and not is_laion_checkpoint(name_or_path))

    @classmethod
    def load(cls, spec: ModelSpec) -> MsClapFamily:
        """The model (msclap has no processor) from zsa-eval's folder or a bare .pth file."""
        name_or_path, weights_file, options = spec.name_or_path, spec.settings.get("weights_file"), spec.hub_options()
        config, folder = model_config(name_or_path, weights_file)
        path = folder / config.weights_file if config is not None else \
            resolve_weights_file(name_or_path, weights_file, options)
        if config is not None and not path.is_file():
            raise UserError(f"MS-CLAP weights file {str(path)!r} does not exist: set model.weights_file to the .pth "
                            f"file in {str(folder)!r}")
        state = read_state_dict(path)
        version = checkpoint_version(state, repr(str(path)))
        if config is None:
            config = MsClapConfig.for_version(version, weights_file=path.name)
        elif config.version != version:
            raise UserError(f"{str(path)!r} holds MS-CLAP {version} weights, but {str(folder / 'config.json')!r} "
                            f"says {config.version}; point model.weights_file at the {config.version} weights")
        model = MsClapModel(config)
        load_weights(model, state, repr(str(path)))
        model.config._commit_hash = snapshot_commit(path)
        return cls(model.eval(), load_tokenizer(config, folder, options), spec.device, spec.dtype)

    def embedding_settings(self) -> dict:
        """Nothing beyond the config and weights (both in the weights fingerprint)."""
        return {}

    def settings(self) -> dict:
        return {"version": self.config.version, "weights_file": self.config.weights_file,
                "duration_s": self.config.duration, "text_len": self.config.text_len}

    @property
    def window_seconds(self) -> float:
        """msclap's `duration`: shorter clips are repeated to it, longer ones cropped (long_audio=native)."""
        return float(self.config.duration)

    @property
    def long_clips_heard(self) -> str:
        return f"each heard as one seeded {self.window_seconds:g} s crop"

    @property
    def frame_seconds(self) -> float:
        """One FFT window of the log-mel front end (1024 samples at 44.1 kHz: 23 ms)."""
        return self.config.window_size / self.config.sampling_rate

    def preparer(self, device: torch.device) -> Callable[[np.ndarray, int], Inputs]:
        """Each clip repeated or cropped to `duration` as msclap does (the crop seeded per clip); the log-mel is
        computed by the encoder (its kernels are weights of the checkpoint)."""
        samples = self.config.clip_samples

        def prepare(waveform: np.ndarray, seed: int) -> Inputs:
            clip = np.ascontiguousarray(msclap_clip(waveform, samples, seed), dtype=np.float32)
            return {"waveform": torch.from_numpy(clip).to(device)}
        return prepare

    def collate(self, prepared: Sequence[Inputs]) -> Inputs:
        return {"waveform": torch.stack([clip["waveform"] for clip in prepared])}

    def raw_audio_embeddings(self, inputs: Inputs) -> torch.Tensor:
        """(clips, d_proj) float32, unnormalized: what msclap's get_audio_embeddings returns."""
        with torch.inference_mode():
            return self.model.audio_embeddings(inputs["waveform"].to(self.device)).float()

    def tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """msclap's preprocess_text, its token ids: GPT-2 texts end in " <|endoftext|>", none is cut (but at the
        model's positions, where msclap fails). msclap pads each text to text_len (77 or 100 tokens); here a batch
        is padded to its longest text, with the same pad ids: padding changes no embedding (BERT masks it, GPT-2 is
        causal), and a text model's cost grows with the padded length (ESC-50's 50 prompts at gpt2's size: 9.5 s ->
        3.0 s on 2 CPU cores, the same embeddings)."""
        if self.config.text_model == "gpt2":
            texts = [text + END_OF_TEXT for text in texts]
        positions = self.model.caption_encoder.base.config.max_position_embeddings
        tokens = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=positions,
                                return_tensors="pt")
        keys = ("input_ids", "token_type_ids", "attention_mask") if self.config.text_model == "bert" \
            else ("input_ids", "attention_mask")
        return {key: tokens[key].to(self.device) for key in keys}

    def raw_text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """(texts, d_proj) float32, unnormalized: what msclap's get_text_embeddings returns."""
        with torch.inference_mode():
            return self.model.text_embeddings(self.tokens(texts)).float()

    def embed_audio(self, inputs: Inputs) -> list[torch.Tensor]:
        """Normalized audio embeddings."""
        return list(torch.nn.functional.normalize(self.raw_audio_embeddings(inputs), dim=-1))

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalized text embeddings."""
        return torch.nn.functional.normalize(self.raw_text_embeddings(texts), dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """exp(logit_scale), as msclap's compute_similarity."""
        return self.model.logit_scale.exp().float()
