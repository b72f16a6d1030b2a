"""The command line's config, composed by Hydra as the CLI and zsa_eval.evaluate compose it: the `run_stamp` and
`folder_name` resolvers of the default output_dir, `checkpoint_name` of model=auto's name, and each Hydra or
OmegaConf error made one line that names the fix."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from zsa_eval.config.checks import invalid, schema_field_at, unknown_key
from zsa_eval.config.schema import CONFIG_DIR


def in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_stamp(single_run_stamp: str) -> str:
    """The last part of a default output_dir, `${run_stamp:<single run's stamp>}` in conf/: in a sweep, the sweep
    directory's name (its timestamp) plus `-<job number>`, so that running the sweep again with the same
    hydra.sweep.dir finds each job's directory; else the given stamp (the time the run started)."""
    if not in_sweep():
        return single_run_stamp
    hydra_config = HydraConfig.get()
    return f"{Path(hydra_config.sweep.dir).resolve().name}-{hydra_config.job.num}"


OmegaConf.register_new_resolver("run_stamp", run_stamp, replace=True)


def folder_name(name: str) -> str:
    """A dataset or model name as one folder of the default output_dir, `${folder_name:...}` in conf/: a Hub-style
    "org/model" becomes "org__model" rather than two nested folders."""
    return str(name).replace("/", "__")


OmegaConf.register_new_resolver("folder_name", folder_name, replace=True)

WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")


def checkpoint_name(name_or_path: str | None) -> str:
    """model=auto's default model.name, `${checkpoint_name:${.name_or_path}}` in conf/: the checkpoint's last path
    part, a weights file's without its suffix (/models/my_clap: my_clap; laion/clap-htsat-fused: clap-htsat-fused;
    CLAP_weights_2023.pth: CLAP_weights_2023; ".": the current folder's name), so that runs of different checkpoints
    are told apart; auto without one."""
    if not name_or_path:
        return "auto"
    name = Path(os.path.abspath(str(name_or_path))).name  # "." and "..": the folders they stand for
    for suffix in WEIGHTS_SUFFIXES:
        name = name.removesuffix(suffix)
    return name or "auto"


OmegaConf.register_new_resolver("checkpoint_name", checkpoint_name, replace=True)


def mteb_task_kind(task_name: str | None) -> str:
    """dataset=mteb's `task`, `${mteb_task_kind:${.task_name}}` in conf/: the zsa-eval task of that mteb task."""
    from zsa_eval.data.mteb_tasks import task_kind

    return task_kind(task_name)


OmegaConf.register_new_resolver("mteb_task_kind", mteb_task_kind, replace=True, use_cache=True)


def override_key(argument: str) -> str:
    """The key a command-line override sets (`+model=x`, `~gate`, `hydra.sweep.dir=d`)."""
    return argument.split("=", 1)[0].lstrip("+~")


def quoted_override(override: str) -> str:
    """An override with its value (or each item of a list value) in double quotes, the whole in single quotes for
    the shell: `template.prompts=[A sound of {}]` -> `'template.prompts=["A sound of {}"]'`."""
    key, _, value = override.partition("=")
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        items = [item.strip().strip("'\"") for item in value[1:-1].split(",")]
        value = "[" + ",".join(f'"{item}"' for item in items) + "]"
    else:
        value = f'"{value.strip(chr(39) + chr(34))}"'
    return f"'{key}={value}'"


def chosen_dataset(arguments: list[str], failing_key: str) -> dict | None:
    """The dataset config the command line chose, composed without the override that failed; None when it cannot
    be composed (another config directory, a sweep, a second mistake)."""
    from hydra import compose, initialize_config_dir

    overrides = [argument for argument in arguments if "=" in argument and not argument.startswith("-")
                 and override_key(argument) != failing_key]
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
            return OmegaConf.to_container(compose(config_name="config", overrides=overrides).dataset)
    except (HydraException, OmegaConfBaseException, ValueError):
        return None


def one_line(error: Exception, arguments: list[str] | None = None) -> str:
    """A config error as one line that names the fix (`arguments`: the command line's, to read the chosen
    dataset)."""
    if isinstance(error, OverrideParseException) and "=" in error.override:
        return (f"cannot read the override {error.override!r} ({error.message.splitlines()[0]}): a value holding "
                f"braces, quotes or commas must be quoted, and the whole override quoted for the shell, e.g. "
                f"{quoted_override(error.override)}")
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, choice = error.missing_cfg_file.rpartition("/")
        return f"unknown {group} '{choice}': choose one of {', '.join(sorted(error.options))} (conf/{group}/)"
    cause = error.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
        dataset = chosen_dataset(arguments or [], cause.full_key) if cause.full_key.startswith("dataset.") else None
        return str(unknown_key(cause.full_key, dataset=dataset))
    if isinstance(cause, ValidationError) and schema_field_at(cause.full_key or ""):
        return str(invalid(cause.full_key, cause.value, schema_field_at(cause.full_key)))
    override = re.match(r"Could not override '([\w.]+)'", str(error))
    if override:
        return str(unknown_key(override[1]))
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(cause, OmegaConfBaseException) and str(cause).splitlines():
        lines.append(str(cause).splitlines()[0])
    return " ".join(lines)
