"""Load a model of any family: the one `model.family` names (a registered entry point or package.module:Class), or
for a Hub id or local directory the one its config.json `model_type` (or a bare weights file) calls for; pick device
and precision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from zsa_eval.errors import UserError
from zsa_eval.families import ModelFamily, ModelSpec
from zsa_eval.families.contract import calling, checked_loaded
from zsa_eval.families.registry import family_class, family_for_checkpoint
from zsa_eval.hub import cache_only_unless_reachable, looks_like_path, offline_mode

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A loaded family (zsa_eval.families: how it embeds and scores) by the name the run gives it, where it runs."""

    name: str
    name_or_path: str | None
    device: torch.device
    dtype: torch.dtype
    family: ModelFamily

    @property
    def model(self) -> torch.nn.Module | None:
        return self.family.model

    @property
    def processor(self):
        """The checkpoint's transformers processor, for the families that have one."""
        return getattr(self.family, "processor", None)

    @property
    def feature_extractor(self):
        return getattr(self.family, "feature_extractor", None)

    @property
    def tokenizer(self):
        return getattr(self.family, "tokenizer", None)

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


def model_type_of(spec: ModelSpec) -> str | None:
    """The `model_type` in the checkpoint's config.json."""
    from transformers import PretrainedConfig

    model_type = PretrainedConfig.get_config_dict(spec.name_or_path, **spec.hub_options())[0].get("model_type")
    if model_type is None:
        raise OSError("no config.json with a model_type")
    return model_type


def check_scoring_mode(family: type[ModelFamily], name_or_path: str | None, scoring: str | None) -> None:
    """model.scoring=generate only for a scoring family (an embedding family writes no answer)."""
    if scoring == "generate" and family.kind != "scoring":
        raise UserError(f"model.scoring=generate needs an audio language model, and {name_or_path!r} is a "
                        f"{family.name} model, which writes no answer; drop model.scoring=generate")


def check_named_family(chosen: type[ModelFamily], family: str, spec: ModelSpec) -> None:
    """model.family naming one of zsa-eval's families for a checkpoint of another model_type: refused, before that
    family tries to read it."""
    if not chosen.model_types or chosen.claims(spec):
        return
    try:
        model_type = model_type_of(spec)
    except (OSError, ValueError, json.JSONDecodeError):
        return  # no config.json to read: the family's load says what it misses
    if model_type not in chosen.model_types:
        raise UserError(f"model.family={family} loads {', '.join(chosen.model_types)} checkpoints, and "
                        f"{spec.name_or_path!r} is a {model_type} checkpoint (its config.json model_type): drop "
                        "model.family (model=auto picks the family by the checkpoint)")


def load_family(spec: ModelSpec, family: str | None) -> ModelFamily:
    """The family `family` names (else the checkpoint's), loaded as `spec` says. zsa-eval's own families explain a
    checkpoint that does not load; another family's exception is reported as that family's."""
    try:
        chosen = family_class(family) if family else family_for_checkpoint(spec, lambda _: model_type_of(spec))
        check_scoring_mode(chosen, spec.name_or_path, spec.settings.get("scoring"))
        if chosen.__module__.startswith("zsa_eval."):
            if not spec.name_or_path:
                raise UserError(f"model.family={family} loads a checkpoint: set model.name_or_path=HUB_ID_OR_PATH")
            if family:
                check_named_family(chosen, family, spec)
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # its weight-loading bar
            return checked_loaded(chosen, chosen.load(spec))
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise explain_load_failure(spec.name_or_path, error) from error
    with calling(chosen, "load"):
        return checked_loaded(chosen, chosen.load(spec))


def load_model(
    name: str,
    name_or_path: str | None,
    device: torch.device,
    precision: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    random_init: str | None = None,
    random_init_seed: int = 0,
    family: str | None = None,
    options: dict | None = None,
    fingerprint: str | None = None,
    **settings,
) -> LoadedModel:
    """Load the model (eval mode) on `device` in `precision` through its family: `family` (model.family) names one,
    else the checkpoint's config.json does (model=auto). `options` are the family's own keys (model.options),
    `fingerprint` the user's name for the weights; `settings` zsa-eval's other model keys, which the built-in
    families read (max_seconds, scoring, short_clip_fusion, ...: conf/model/auto.yaml) and others ignore."""
    if not name_or_path and not family:
        raise UserError(f"model {name} has no model.name_or_path: set model.name_or_path=HUB_ID_OR_DIRECTORY "
                        "(e.g. model=auto model.name_or_path=facebook/pe-av-small model.name=pe_av_small)")
    dtype = resolve_dtype(precision, device)
    if random_init:
        ensure_random_model(name_or_path, random_init, random_init_seed)
    with cache_only_unless_reachable() as online:
        spec = ModelSpec(name, name_or_path, device, dtype, revision, trust_remote_code, online, settings,
                         dict(options or {}), fingerprint)
        loaded = load_family(spec, family)
    return LoadedModel(name, name_or_path, device, dtype, loaded)
