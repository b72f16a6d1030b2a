"""The typed schema (zsa_eval/config/), --help, --version, packaging and users' own config directories."""

import io
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from conftest import compose_config, run_cli, tone
from zsa_eval.config import schema as config
from zsa_eval.config import RunConfig, checked
from zsa_eval.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def schema_paths(schema=RunConfig, prefix: str = "") -> list[str]:
    """Every top-level key path the schema declares (gate.* spelled out), the groups left out."""
    paths = []
    for item in fields(schema):
        if item.name in config.GROUPS:
            continue
        if item.default_factory is not None and hasattr(item.default_factory, "__dataclass_fields__"):
            paths += schema_paths(item.default_factory, f"{prefix}{item.name}.")
        else:
            paths.append(prefix + item.name)
    return paths


def test_schema_and_config_yaml_hold_the_same_keys():
    composed = OmegaConf.to_container(compose_config())
    in_yaml = [f"gate.{name}" for name in composed["gate"]] + [name for name in composed
                                                              if name not in (*config.GROUPS, "gate")]
    assert sorted(in_yaml) == sorted(schema_paths())
    assert {"limit_mode", "save_embeddings", "verbose"} <= set(in_yaml)


@pytest.mark.slow
def test_help_lists_every_key_with_its_default_and_meaning(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "--help")
    assert code == 0
    assert stdout.startswith("zsa-eval: how well does zero-shot audio classifier")
    datasets = sorted(path.stem for path in (REPO / "conf" / "dataset").glob("*.yaml"))
    assert f"dataset: {', '.join(datasets)}" in stdout
    assert {"esc50", "us8k", "gtzan", "speech_commands", "ravdess", "crema_d", "vocalsound", "nsynth",
            "vggsound"} <= set(datasets)
    suites = sorted(path.stem for path in (REPO / "conf" / "suite").glob("*.yaml"))
    assert f"suite: {', '.join(suites)}" in stdout and {"zeroshot", "retrieval"} <= set(suites)
    models = sorted(path.stem for path in (REPO / "conf" / "model").glob("*.yaml"))
    assert f"model: {', '.join(models)}" in stdout
    assert "template: auto, ensemble, mill, plain, sound_of" in stdout
    defaults = compose_config()
    for path in schema_paths():
        default = OmegaConf.to_container(defaults, resolve=False)
        for part in path.split("."):
            default = default[part]
        shown = {None: "null", True: "true", False: "false"}.get(default, default) if not isinstance(
            default, (int, float)) or isinstance(default, bool) else default
        match = re.search(rf"^  {re.escape(path)}={re.escape(str(shown))}\s+(\S.*)$", stdout, re.MULTILINE)
        assert match, f"{path} is missing from --help (or has no meaning)"
    assert re.search(r"^  batch_size=16\s+clips per batch", stdout, re.MULTILINE)
    assert re.search(r"^  gate.min_accuracy=null\s+exit 3 when accuracy is below this", stdout, re.MULTILINE)
    assert "dataset=esc50, its keys" in stdout and "dataset.hub_id=ashraq/esc50" in stdout


def test_help_follows_the_chosen_group_options(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "--help", "dataset=audiofolder", "batch_size=4")
    assert code == 0 and "dataset=audiofolder, its keys" in stdout
    assert re.search(r"^  dataset.path=null\s+required: dataset.path=", stdout, re.MULTILINE)
    assert re.search(r"^  batch_size=4\s", stdout, re.MULTILINE)


def loaded_after(arguments: str) -> tuple[str, list[str]]:
    """Run the entry point in a fresh process; its output and which heavy libraries it imported."""
    script = ("import sys, runpy\n"
              f"sys.argv = ['zsa-eval', {arguments}]\n"
              "try:\n    runpy.run_module('zsa_eval', run_name='__main__')\nexcept SystemExit:\n    pass\n"
              "heavy = ('torch', 'transformers', 'sklearn', 'matplotlib', 'datasets', 'pandas')\n"
              "print([name for name in heavy if name in sys.modules])")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=REPO).stdout.strip().splitlines()
    return "\n".join(output[:-1]), eval(output[-1])


def test_version_names_the_versions_without_loading_the_libraries():
    from importlib import metadata

    output, heavy = loaded_after("'--version'")
    versions, families = output.splitlines()
    assert versions == (f"zsa-eval 0.1.0 (torch {metadata.version('torch')}, transformers "
                        f"{metadata.version('transformers')}, hydra-core {metadata.version('hydra-core')}, "
                        f"Python {sys.version.split()[0]})")
    assert families == ("model families: audioflamingo3 (zsa-eval 0.1.0), clap (zsa-eval 0.1.0), gemma3n "
                        "(zsa-eval 0.1.0), msclap (zsa-eval 0.1.0), mteb (zsa-eval 0.1.0), pe_audio (zsa-eval 0.1.0), "
                        "phi4_multimodal (zsa-eval 0.1.0), qwen2_5_omni (zsa-eval 0.1.0), qwen2_audio "
                        "(zsa-eval 0.1.0), voxtral (zsa-eval 0.1.0)")
    assert heavy == []


@pytest.mark.slow
def test_help_loads_no_heavy_library():
    output, heavy = loaded_after("'--help'")
    assert "== Keys" in output and heavy == []


def checked_config(*overrides: str):
    return checked(compose_config("dataset=synthetic", "model=tiny_random", *overrides))


def test_checked_takes_single_values_for_lists_and_keeps_the_rest():
    cfg = checked_config("dataset.folds=1", "dataset.classes=dog", "template.prompts='a {}'", "seed=7")
    assert cfg.dataset.folds == [1] and cfg.dataset.classes == ["dog"] and cfg.template.prompts == ["a {}"]
    assert cfg.seed == 7 and cfg.gate.max_drop == 0.0 and cfg.num_workers == "auto"
    assert cfg.dataset._target_ == "zsa_eval.data.load_synthetic"
    assert "follow_symlinks" not in cfg.dataset  # loaders' own defaults apply to keys a file leaves out


def test_a_model_file_without_target_gets_the_standard_loader():
    values = OmegaConf.to_container(compose_config("dataset=synthetic", "model=tiny_random"))
    del values["model"]["_target_"]
    assert checked(OmegaConf.create(values)).model._target_ == "zsa_eval.models.load_model"


@pytest.mark.parametrize("edit, message", [
    (lambda cfg: cfg["dataset"].pop("_target_"), "dataset=synthetic has no _target_: add `_target_:` naming its "
                                                 "loader"),
    (lambda cfg: cfg["dataset"].update(_target_="my.loader"), "has an unknown _target_ my.loader"),
    (lambda cfg: cfg["model"].pop("name_or_path"), "model=tiny_random has no name_or_path: add `name_or_path: ...`"),
    (lambda cfg: cfg.update(template="plain"), "template=plain is not a config of the template group"),
    (lambda cfg: cfg["dataset"].update(follow_symlinks=True),
     "unknown key dataset.follow_symlinks: dataset=synthetic takes _target_, name, label_column"),
    (lambda cfg: cfg.update(dataset={"_target_": "zsa_eval.data.load_audiofolder", "name": "mine", "path": "/data",
                                     "label_column": "label", "follow_symlinks": "yes please"}),
     "dataset.follow_symlinks=yes please is not valid: dataset.follow_symlinks takes true or false"),
    (lambda cfg: cfg.update(dataset={"_target_": "zsa_eval.data.load_audiofolder", "name": "mine", "path": "/data",
                                     "label_column": "label", "extensions": {"wav": 1}}),
     "is not valid: dataset.extensions takes one or a list of strings, or null"),
    (lambda cfg: cfg["model"].update(trust_remote_code=None),
     "model.trust_remote_code=null is not valid: model.trust_remote_code takes true or false"),
    (lambda cfg: cfg.update(limit=True), "limit=true is not valid: limit takes a whole number of at least 1, or null"),
])
def test_checked_names_the_key_the_value_and_what_is_allowed(edit, message):
    values = OmegaConf.to_container(compose_config("dataset=synthetic", "model=tiny_random"), resolve=True)
    edit(values)
    with pytest.raises(UserError) as raised:
        checked(OmegaConf.create(values))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_schema_knows_every_random_model_kind():
    from zsa_eval.random_models import RANDOM_MODELS

    assert set(config.RANDOM_MODEL_KINDS) == set(RANDOM_MODELS)


def test_packages_in_pyproject_are_every_package_folder():
    """The wheel lists its packages by name (conf/ is mapped in); a new zsa_eval/ subpackage must be added."""
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(path.parent.relative_to(REPO).parts) for path in (REPO / "zsa_eval").rglob("__init__.py")}
    assert set(settings["packages"]) == folders | {"zsa_eval.conf"}
    assert settings["package-dir"] == {"zsa_eval.conf": "conf"}


def write_user_config(root: Path, sounds: Path, model_dir: Path) -> Path:
    """The README's worked example: a dataset built on audiofolder, a model file without _target_."""
    (root / "dataset").mkdir(parents=True)
    (root / "model").mkdir()
    (root / "dataset" / "my_sounds.yaml").write_text(
        f"defaults:\n  - audiofolder\n  - _self_\nname: my_sounds\npath: {sounds}\n")
    (root / "model" / "my_clap.yaml").write_text(f"name: my_clap\nname_or_path: {model_dir}\n")
    return root


@pytest.mark.parametrize("how", ["--config-dir", "hydra.searchpath"])
def test_users_own_config_dir(monkeypatch, capsys, tiny_model_dir, audiofolder, tmp_path, how):
    conf = write_user_config(tmp_path / "my_conf", audiofolder, tiny_model_dir)
    where = ["--config-dir", str(conf)] if how == "--config-dir" else [f"hydra.searchpath=[file://{conf}]"]
    code, stdout, stderr = run_cli(monkeypatch, capsys, *where, "dataset=my_sounds", "model=my_clap",
                                   f"output_dir={tmp_path / 'run'}")
    assert code == 0, stderr
    assert stdout.startswith("my_sounds | my_clap | auto: accuracy ")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_items"] == 9 and metrics["config"]["model"]["_target_"] == "zsa_eval.models.load_model"
    assert metrics["config"]["dataset"]["_target_"] == "zsa_eval.data.load_audiofolder"


def write_hub_parquet(root: Path) -> Path:
    """A Hub-style dataset in a local folder (data/train-*.parquet, ESC-50's columns, WAV bytes), which
    `datasets.load_dataset` reads the way it reads a downloaded Hub dataset."""
    rows = []
    for index in range(4):
        buffer = io.BytesIO()
        sf.write(buffer, tone(200.0 * (index + 1), seconds=0.3), 44100, format="WAV")
        rows.append({"audio": {"bytes": buffer.getvalue(), "path": f"{index}.wav"}, "filename": f"{index}.wav",
                     "category": ["dog", "cat"][index % 2], "fold": 1, "esc10": True, "src_file": 100 + index})
    (root / "data").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(root / "data" / "train-00000-of-00001.parquet")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("progress", ["true", "false"])
def test_libraries_progress_bars_follow_progress(tiny_model_dir, tmp_path, progress):
    """`datasets` draws "Generating train split" when it builds a Hub dataset: only with progress=true. A fresh
    process, as a user runs it (the libraries read their switches when first imported)."""
    hub_copy = write_hub_parquet(tmp_path / "hub_copy")
    completed = subprocess.run([sys.executable, "-m", "zsa_eval", "dataset=esc50", f"dataset.hub_id={hub_copy}",
                                "model=tiny_random", f"output_dir={tmp_path / 'run'}", f"progress={progress}"],
                               capture_output=True, text=True, cwd=REPO)
    assert completed.returncode == 0, completed.stderr
    assert ("Generating train split" in completed.stderr) == (progress == "true"), completed.stderr
    assert ("embed tiny_random: 100%" in completed.stderr) == (progress == "true")
