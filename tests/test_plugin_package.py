"""The example plugin (examples/plugin_family) as a user installs it: its wheel and zsa-eval's, built from copies of
the sources, installed into a fresh virtualenv (its dependencies, torch and the rest, from this environment), and
run from another directory by entry point and by dotted path, zero-shot, as a linear probe and in windows, from the
command line and through zsa_eval.evaluate. Its scores equal the same weights wrapped in this process."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import plugin_families  # noqa: F401  (puts the example package on sys.path: the in-process side)
from toy_family import ToyClapFamily, random_toy_clap

import zsa_eval

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SOURCES = {"zsa_eval": REPO, "toy_family": REPO / "examples" / "plugin_family"}
LEFT_OUT = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", "results", ".venv", "venv",
                                  "mutants", "outputs", "multirun")
SEED = 2


def built_wheel(source: Path, into: Path) -> Path:
    """The wheel of a copy of `source` (so the checkout gets no build output)."""
    copy = into / "src" / source.name
    shutil.copytree(source, copy, ignore=LEFT_OUT)
    before = set(into.glob("*.whl"))
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]  # else from PyPI
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(into), str(copy)],
                   check=True, capture_output=True)
    (wheel,) = set(into.glob("*.whl")) - before
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtualenv holding the two wheels; this environment's site-packages behind its own (a .pth file), for the
    dependencies."""
    root = tmp_path_factory.mktemp("plugin_package")
    wheels = [built_wheel(source, root) for source in SOURCES.values()]
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    outer = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "outer_environment.pth").write_text("\n".join(outer) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", *map(str, wheels)], check=True,
                   capture_output=True)
    return venv


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """Another directory, with its own cache and results."""
    return tmp_path_factory.mktemp("elsewhere")


def in_venv(venv: Path, elsewhere: Path, *command: str) -> str:
    """`command` (zsa-eval or python, from the venv) run in `elsewhere`; its stdout, or the failure shown."""
    environment = {**os.environ, "ZSA_EVAL_CACHE": str(elsewhere / "cache"),
                   "ZSA_EVAL_RESULTS": str(elsewhere / "results")}
    environment.pop("PYTHONPATH", None)
    done = subprocess.run([str(venv / "bin" / command[0]), *command[1:]], cwd=elsewhere, env=environment,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_scores(run_dir: Path) -> np.ndarray:
    table = pd.read_parquet(run_dir / "scores.parquet")
    return table[[column for column in table if column.startswith("prob:")]].to_numpy()


def cli_run(venv: Path, elsewhere: Path, name: str, family: str, *arguments: str) -> dict:
    """A run of the installed CLI with the toy family (`family`: its entry point or dotted path); its metrics."""
    out = elsewhere / "runs" / name
    in_venv(venv, elsewhere, "zsa-eval", "dataset=synthetic", "model=plugin", f"model.family={family}",
            f"model.name={name}", f"+model.options.seed={SEED}", "progress=false", "cache=false", f"output_dir={out}",
            *arguments)
    return json.loads((out / "metrics.json").read_text())


def test_the_wheels_are_what_runs_and_the_family_is_listed(venv, elsewhere):
    where = in_venv(venv, elsewhere, "python", "-c", "import toy_family, zsa_eval; print(zsa_eval.__file__); "
                                                     "print(toy_family.__file__)").split()
    assert all(path.startswith(str(venv)) for path in where), where
    families = in_venv(venv, elsewhere, "zsa-eval", "--version").splitlines()[1]
    assert "toy_clap (zsa-eval-toy-family 0.1.0)" in families and "toy_encoder (zsa-eval-toy-family 0.1.0)" in families
    assert "clap (zsa-eval 0.1.0)" in families


def test_the_installed_plugin_runs_every_way_and_equals_the_weights_wrapped_here(venv, elsewhere, tmp_path):
    by_entry = cli_run(venv, elsewhere, "entry", "toy_clap")
    by_path = cli_run(venv, elsewhere, "path", "toy_family:ToyClapFamily")
    assert by_entry["n_evaluated"] == by_path["n_evaluated"] == 40 and by_entry["family"] == "toy_clap"
    entry_dir, path_dir = Path(by_entry["output_dir"]), Path(by_path["output_dir"])
    assert np.array_equal(run_scores(entry_dir), run_scores(path_dir))

    script = ("import sys, zsa_eval; result = zsa_eval.evaluate('synthetic', 'plugin', ['model.family=toy_clap', "
              f"'model.name=api', '+model.options.seed={SEED}', 'progress=false', 'cache=false', "
              f"'output_dir={elsewhere / 'runs' / 'api'}']); print(result.run_dir)")
    api_dir = Path(in_venv(venv, elsewhere, "python", "-c", script).strip())
    assert np.array_equal(run_scores(api_dir), run_scores(entry_dir))

    here = zsa_eval.evaluate("synthetic", ToyClapFamily(random_toy_clap(SEED), torch.device("cpu"), torch.float32),
                             ["progress=false", "cache=false", f"output_dir={tmp_path / 'here'}"])
    assert here.identity["weight_fingerprint"] == by_entry["identity"]["weight_fingerprint"]
    assert np.abs(run_scores(here.run_dir) - run_scores(entry_dir)).max() <= 1e-6
    assert here.predictions["item_id"].tolist() == pd.read_csv(entry_dir / "predictions.csv")["item_id"].tolist()


def test_the_installed_plugin_runs_a_probe_and_windows(venv, elsewhere):
    probe = cli_run(venv, elsewhere, "probe", "toy_encoder", "protocol=linear_probe")
    assert probe["family"] == "toy_encoder" and probe["n_evaluated"] == 40 and probe["accuracy"] > 0.5
    windows = cli_run(venv, elsewhere, "windows", "toy_clap", "long_audio=windows", "+model.options.window_seconds=0.25")
    assert windows["long_audio"]["policy"] == "windows"
    assert windows["long_audio"]["n_clips_longer"] == 40 and windows["long_audio"]["n_windows_encoded"] > 40
