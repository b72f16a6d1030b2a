"""Load a CLAP-style model and its processor by hub id or local directory; pick device and precision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from zsa_eval.errors import UserError
from zsa_eval.hub import cache_only_unless_reachable

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model with `get_text_features`/`get_audio_features`, its processor, and where it runs."""

    name: str
    name_or_path: str
    model: torch.nn.Module
    processor: object
    device: torch.device
    dtype: torch.dtype

    @property
    def feature_extractor(self):
        return self.processor.feature_extractor

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)


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
    """The dtype of a precision the schema allows (zsa_eval/config.py), if the device supports it."""
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision=fp16 needs a CUDA device: use precision=fp32 (or bf16) on CPU")
    return DTYPES[precision]


def ensure_random_model(name_or_path: str, random_init: str, seed: int) -> None:
    """Build the random-weight model at `name_or_path` once, if it is not there yet."""
    from zsa_eval.random_models import build_random_clap

    if not (Path(name_or_path) / "config.json").is_file():
        build_random_clap(random_init, Path(name_or_path), seed)


def looks_like_path(name_or_path: str) -> bool:
    """A local path rather than a Hub id ("org/name"): absolute, relative to `.` or `~`, or deeper than one slash."""
    return name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path


def explain_load_failure(name_or_path: str, error: Exception) -> UserError:
    if looks_like_path(name_or_path) and not Path(name_or_path).expanduser().exists():
        return UserError(f"model directory {name_or_path!r} does not exist: set model.name_or_path to a directory "
                         "written by save_pretrained, or to a Hugging Face Hub id such as laion/clap-htsat-fused")
    if Path(name_or_path).expanduser().exists():
        return UserError(
            f"cannot read model directory {name_or_path!r} ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "point model.name_or_path at a directory written by save_pretrained (config.json, weights, processor files)"
        )
    return UserError(
        f"cannot load model {name_or_path!r}: the Hugging Face Hub is unreachable or has no such model, "
        "and it is not in the local cache; download it where the Hub is reachable (hf download "
        f"{name_or_path}) or set model.name_or_path=/path/to/saved/model"
    )


def load_model(
    name: str,
    name_or_path: str,
    device: torch.device,
    precision: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    random_init: str | None = None,
    random_init_seed: int = 0,
) -> LoadedModel:
    """Load processor and model (eval mode) on `device` in `precision`."""
    from transformers import AutoModel, AutoProcessor
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    dtype = resolve_dtype(precision, device)
    if random_init:
        ensure_random_model(name_or_path, random_init, random_init_seed)
    options = {"revision": revision, "trust_remote_code": trust_remote_code}
    try:
        with cache_only_unless_reachable() as online:
            processor = AutoProcessor.from_pretrained(name_or_path, local_files_only=not online, **options)
            model = AutoModel.from_pretrained(name_or_path, local_files_only=not online, **options)
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise explain_load_failure(name_or_path, error) from error
    if not all(hasattr(model, method) for method in ("get_text_features", "get_audio_features")):
        raise UserError(
            f"model {name_or_path!r} ({type(model).__name__}) is not a CLAP-style audio-text model; "
            "choose a model with get_text_features and get_audio_features (model=clap, ...)"
        )
    model = model.to(device=device, dtype=dtype).eval()
    return LoadedModel(name, name_or_path, model, processor, device, dtype)
