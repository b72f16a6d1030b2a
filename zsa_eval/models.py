"""Load a model of any supported family by hub id or local directory (the family read from its config.json
`model_type`); pick device and precision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from zsa_eval.errors import UserError
from zsa_eval.families import ModelFamily
from zsa_eval.hub import cache_only_unless_reachable, offline_mode
from zsa_eval.laion_checkpoint import is_laion_checkpoint

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model, its processor, where it runs, and its family (zsa_eval.families): how it embeds and scores."""

    name: str
    name_or_path: str
    model: torch.nn.Module
    processor: object
    device: torch.device
    dtype: torch.dtype
    family: ModelFamily

    @property
    def feature_extractor(self):
        return self.family.feature_extractor

    @property
    def tokenizer(self):
        return self.family.tokenizer

    @property
    def sampling_rate(self) -> int:
        return self.family.sampling_rate


def resolve_device(device: str, local_rank: int | None = None) -> torch.device:
    """`auto` picks CUDA when present; an explicit CUDA device must exist. In a data-parallel run (`local_rank`
    set) `auto` and `cuda` mean this process's own GPU, cuda:LOCAL_RANK."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and local_rank is not None:
        device = f"cuda:{local_rank}"
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise UserError(f"device={device} is not a device: use auto, cpu, cuda or cuda:N") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={device} but CUDA is not available here: use device=cpu or device=auto")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device={device} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return resolved


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of a precision the schema allows (zsa_eval/config/), if the device supports it."""
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision=fp16 needs a CUDA device: use precision=fp32 (or bf16) on CPU")
    return DTYPES[precision]


def ensure_random_model(name_or_path: str, random_init: str, seed: int) -> None:
    """Build the random-weight model at `name_or_path` once, if it is not there yet."""
    from zsa_eval.random_models import build_random_model

    if not (Path(name_or_path) / "config.json").is_file():
        build_random_model(random_init, Path(name_or_path), seed)


def family_for(name_or_path: str, model_type: str | None, scoring: str | None = None) -> type[ModelFamily]:
    """The family that loads checkpoints of `model_type` (config.json), or one line naming the supported ones;
    model.scoring=generate only for a scoring family (an embedding family writes no answer)."""
    from zsa_eval.families.registry import FAMILIES  # the families' modules (transformers' audio code) load here

    if model_type not in FAMILIES:
        raise UserError(f"model {name_or_path!r} has model_type {model_type!r}, which zsa-eval cannot evaluate; "
                        f"supported model types: {', '.join(sorted(FAMILIES))} (CLAP, PE-Audio, MS-CLAP and audio "
                        "language model checkpoints)")
    family = FAMILIES[model_type]
    if scoring == "generate" and family.kind != "scoring":
        raise UserError(f"model.scoring=generate needs an audio language model, and {name_or_path!r} is a "
                        f"{family.name} model, which writes no answer; drop model.scoring=generate")
    return family


def weights_file_model_type(name_or_path: str, weights_file: str | None) -> str | None:
    """The model_type of a checkpoint that is a bare weights file, which has no config.json: MS-CLAP's .pth files,
    named by `model.weights_file` in a Hub repo or folder, or by a path to the file itself; LAION's laion_clap `.pt`
    files (a path, or OWNER/REPO/FILE.pt on the Hub: CLAP, converted on load)."""
    if is_laion_checkpoint(name_or_path):
        return "clap"
    if weights_file or name_or_path.endswith(".pth") or Path(name_or_path).expanduser().is_file():
        return "msclap"
    return None


def looks_like_path(name_or_path: str) -> bool:
    """A local path rather than a Hub id ("org/name"): absolute, relative to `.` or `~`, or deeper than one slash."""
    return name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path


def explain_load_failure(name_or_path: str, error: Exception) -> UserError:
    """One line for a model that did not load: a missing or unreadable directory, offline mode set, or the Hub
    unreachable (or without such a model)."""
    if looks_like_path(name_or_path) and not Path(name_or_path).expanduser().exists():
        return UserError(f"model directory {name_or_path!r} does not exist: set model.name_or_path to a directory "
                         "written by save_pretrained, or to a Hugging Face Hub id such as laion/clap-htsat-fused")
    if Path(name_or_path).expanduser().exists():
        return UserError(
            f"cannot read model directory {name_or_path!r} ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "point model.name_or_path at a directory written by save_pretrained (config.json, weights, processor files)"
        )
    offline = offline_mode()
    if offline:
        return UserError(f"cannot load model {name_or_path!r}: offline mode is set ({offline}) and it is not in the "
                         "local cache: unset offline mode to download it, or set "
                         "model.name_or_path=/path/to/saved/model")
    return UserError(
        f"cannot load model {name_or_path!r}: the Hugging Face Hub is unreachable or has no such model, "
        "and it is not in the local cache; download it where the Hub is reachable (hf download "
        f"{name_or_path}) or set model.name_or_path=/path/to/saved/model"
    )


def load_model(
    name: str,
    name_or_path: str | None,
    device: torch.device,
    precision: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    random_init: str | None = None,
    random_init_seed: int = 0,
    max_seconds: float | None = None,
    frame_pooling: str | None = None,
    scoring: str | None = None,
    max_new_tokens: int | None = None,
    label_batch_size: int | None = None,
    short_clip_fusion: str | None = None,
    int16_roundtrip: bool = False,
    weights_file: str | None = None,
    laion_loader_length: bool = False,
    tokenizer: str | None = None,
) -> LoadedModel:
    """Load processor and model (eval mode) on `device` in `precision`, through the family its config.json names.
    `max_seconds` and `frame_pooling` are PE-Audio settings (zsa_eval/families/pe_audio.py); `scoring`,
    `max_new_tokens` and `label_batch_size` audio language model settings (zsa_eval/families/alm.py);
    `short_clip_fusion`, `int16_roundtrip`, `laion_loader_length` and `tokenizer` (a laion_clap `.pt` file's text
    tokenizer) CLAP settings (zsa_eval/families/clap.py); `weights_file` an MS-CLAP setting
    (zsa_eval/families/msclap.py); other families ignore them. A laion_clap `.pt` file (a path, or OWNER/REPO/FILE.pt
    on the Hub) is a CLAP checkpoint, converted on load; an MS-CLAP `.pth` an MS-CLAP one."""
    from transformers import PretrainedConfig
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if not name_or_path:
        raise UserError(f"model {name} has no model.name_or_path: set model.name_or_path=HUB_ID_OR_DIRECTORY "
                        "(e.g. model=auto model.name_or_path=facebook/pe-av-small model.name=pe_av_small)")
    dtype = resolve_dtype(precision, device)
    if random_init:
        ensure_random_model(name_or_path, random_init, random_init_seed)
    options = {"revision": revision, "trust_remote_code": trust_remote_code}
    settings = {"max_seconds": max_seconds, "frame_pooling": frame_pooling, "scoring": scoring,
                "max_new_tokens": max_new_tokens, "label_batch_size": label_batch_size,
                "short_clip_fusion": short_clip_fusion, "int16_roundtrip": int16_roundtrip,
                "weights_file": weights_file, "laion_loader_length": laion_loader_length, "tokenizer": tokenizer}
    try:
        with cache_only_unless_reachable() as online:
            options["local_files_only"] = not online
            model_type = weights_file_model_type(name_or_path, weights_file) \
                or PretrainedConfig.get_config_dict(name_or_path, **options)[0].get("model_type")
            if model_type is None:
                raise OSError("no config.json with a model_type")
            family, processor = family_for(name_or_path, model_type, scoring).from_pretrained(
                name_or_path, options, device, dtype, settings)
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise explain_load_failure(name_or_path, error) from error
    return LoadedModel(name, name_or_path, family.model, processor, device, dtype, family)
