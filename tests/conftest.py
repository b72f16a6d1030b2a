"""Shared fixtures: an offline cache, a tiny random CLAP, synthesized audio in the layouts users have."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from threadpoolctl import threadpool_limits

from zsa_eval.__main__ import CONFIG_DIR, main
from zsa_eval.hub import OFFLINE_VARIABLES
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_clap, build_random_model


@pytest.fixture(scope="session", autouse=True)
def offline_cache(tmp_path_factory) -> Path:
    """Point zsa-eval's caches and results, and the datasets library's cache, at a temporary folder."""
    cache = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("ZSA_EVAL_CACHE", str(cache))
    patch.setenv("HF_DATASETS_CACHE", str(cache / "hf_datasets"))
    patch.setenv("ZSA_EVAL_RESULTS", str(cache / "results"))
    yield cache
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def one_compute_thread():
    """One compute thread (torch, OpenMP, BLAS) here and in the processes tests start. The tiny models' small
    operations gain nothing from a second thread, and on a busy machine threads that wait on each other make runs
    many times slower (the tiny PE-Audio's forward over nine short clips: 0.1 s on one thread, 14 s on two)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("OMP_NUM_THREADS", "1")  # read by torch, OpenMP and OpenBLAS in a new process
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)
    patch.undo()


@pytest.fixture
def hub_unreachable(monkeypatch, tmp_path) -> None:
    """A machine without the Hugging Face Hub, modelled on any machine: offline mode set in the environment and
    in the settings the hub clients read at import, an empty HF_HOME, and any socket connection is a failure."""
    import datasets
    from huggingface_hub import constants

    for variable in OFFLINE_VARIABLES:
        monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty_hf_home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise AssertionError(f"a test modelling an unreachable Hub tried the network: {args}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)


def unset_offline_variables(monkeypatch, kept: str | None = None) -> None:
    """Unset the offline variables that hub_unreachable sets, except `kept` (huggingface_hub's constant stays)."""
    for variable in OFFLINE_VARIABLES:
        if variable != kept:
            monkeypatch.delenv(variable)


@pytest.fixture(scope="session")
def tiny_model_dir(offline_cache) -> Path:
    """The tiny random model, where model=tiny_random looks for it."""
    return build_random_clap("tiny", offline_cache / "models" / "tiny_random-seed0")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    return load_model("tiny_random", str(tiny_model_dir), torch.device("cpu"), "fp32")


ALM_MODEL_TYPES = ("qwen2_audio", "audioflamingo3", "qwen2_5_omni",  # each has a twin, random_init <type>_tiny
                   "phi4_multimodal")
HAS_MISTRAL_COMMON = importlib.util.find_spec("mistral_common") is not None
NEEDS_MISTRAL_COMMON = pytest.mark.skipif(not HAS_MISTRAL_COMMON, reason="Voxtral's tokenizer is mistral-common's "
                                          "(pip install 'mistral-common[audio]'; not a dependency of zsa-eval)")
SCORING_TWINS = [*ALM_MODEL_TYPES, pytest.param("voxtral", marks=NEEDS_MISTRAL_COMMON)]  # every scoring twin


@pytest.fixture(scope="session")
def tiny_alm_dirs(offline_cache) -> dict[str, Path]:
    """The tiny random audio language models by model type, where model=<type>_tiny_random looks for them (Voxtral's
    where mistral-common is installed)."""
    model_types = ALM_MODEL_TYPES + (("voxtral",) if HAS_MISTRAL_COMMON else ())
    return {model_type: build_random_model(f"{model_type}_tiny", offline_cache / "models" /
                                           f"{model_type}_tiny_random-seed0") for model_type in model_types}


def reference_features(feature_extractor, waveform: np.ndarray, seed: int) -> tuple[np.ndarray, bool]:
    """transformers' ClapFeatureExtractor on a batch of one clip, crops seeded as zsa-eval seeds them."""
    np.random.seed(seed)
    features = feature_extractor([waveform], sampling_rate=feature_extractor.sampling_rate, return_tensors="np")
    return features["input_features"][0].astype(np.float32), bool(features["is_longer"][0][0])


def tone(frequency: float, sample_rate: int = 44100, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    wave = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def noise(seed: int, sample_rate: int = 44100, seconds: float = 1.0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(sample_rate * seconds))).astype(np.float32)


CLASS_SOUNDS = {"chirping_birds": 3000.0, "dog": 300.0, "vacuum_cleaner": None}


def class_clip(category: str, take: int) -> np.ndarray:
    frequency = CLASS_SOUNDS[category]
    return noise(take) if frequency is None else tone(frequency * (1 + 0.05 * take))


@pytest.fixture(scope="session")
def esc50_folder(tmp_path_factory) -> Path:
    """An ESC-50-layout folder: 3 classes x 4 clips at 44.1 kHz, folds 1-2, esc10 on two classes. Shared by every
    test: one that changes the folder takes `writable_esc50_folder`."""
    root = tmp_path_factory.mktemp("esc50") / "ESC-50"
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = []
    for target, category in enumerate(CLASS_SOUNDS):
        for take in range(4):
            fold = take % 2 + 1
            filename = f"{fold}-{target}{take:03d}-A-{target}.wav"
            sf.write(root / "audio" / filename, class_clip(category, take), 44100)
            rows.append({"filename": filename, "fold": fold, "target": target, "category": category,
                         "esc10": category != "vacuum_cleaner", "src_file": f"{target}{take:03d}", "take": "A"})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


@pytest.fixture
def writable_esc50_folder(esc50_folder, tmp_path) -> Path:
    """A copy of `esc50_folder` for a test that adds, removes or changes files in it."""
    return shutil.copytree(esc50_folder, tmp_path / "ESC-50")


@pytest.fixture(scope="session")
def audiofolder(tmp_path_factory) -> Path:
    """A Hugging Face audiofolder: one subfolder per class. Shared by every test: none may change it."""
    root = tmp_path_factory.mktemp("audiofolder") / "sounds"
    for category in CLASS_SOUNDS:
        (root / category).mkdir(parents=True)
        for take in range(3):
            sf.write(root / category / f"{take}.wav", class_clip(category, take), 22050 if take else 44100)
    return root


@pytest.fixture
def writable_audiofolder(audiofolder, tmp_path) -> Path:
    """A copy of `audiofolder` for a test that adds, removes or changes files in it."""
    return shutil.copytree(audiofolder, tmp_path / "sounds")


def compose_config(*overrides: str):
    """The run config as `python -m zsa_eval OVERRIDES` would compose it."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose(config_name="config", overrides=["progress=false", *overrides])


def exit_code_of_cli(monkeypatch, arguments: tuple[str, ...]) -> int:
    """Run the command-line entry point in-process; return its exit code."""
    monkeypatch.setattr(sys, "argv", ["zsa-eval", *arguments, "progress=false"])
    try:
        main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


def run_cli(monkeypatch, capsys, *arguments: str) -> tuple[int, str, str]:
    """Run the command-line entry point in-process; return (exit code, stdout, stderr)."""
    code = exit_code_of_cli(monkeypatch, arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_cli_in_a_shared_fixture(*arguments: str) -> tuple[int, str, str]:
    """`run_cli` for a module- or session-scoped fixture, which cannot use the per-test monkeypatch and capsys."""
    with (pytest.MonkeyPatch.context() as monkeypatch, contextlib.redirect_stdout(io.StringIO()) as stdout,
          contextlib.redirect_stderr(io.StringIO()) as stderr):
        code = exit_code_of_cli(monkeypatch, arguments)
    return code, stdout.getvalue(), stderr.getvalue()


def count_encoded_clips(monkeypatch, owner) -> list[int]:
    """Wrap the audio encoder of `owner` (a loaded model's module, or a model class for every instance); the
    returned list gets each encoder call's number of clips."""
    calls: list[int] = []
    encode = owner.get_audio_features

    def counting(*args, **kwargs):
        calls.append(len(kwargs["input_features"]))
        return encode(*args, **kwargs)

    monkeypatch.setattr(owner, "get_audio_features", counting)
    return calls


# MAEB's other task kinds (tests/test_maeb_tasks.py, tests/test_maeb_compare.py): local pairs and rerank folders
MAEB_RATE = 16000


def write_tones(root, names: list[str], frequency_of) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        sf.write(root / name, tone(frequency_of(name), MAEB_RATE, seconds=0.3), MAEB_RATE)


@pytest.fixture
def pairs_folder(tmp_path):
    """8 clips of 4 pitches; every pair of them, a match when the pitch is the same (4 matches of 28), and a
    README."""
    root = tmp_path / "pairs"
    names = [f"c{index}.wav" for index in range(8)]
    write_tones(root, names, lambda name: 200.0 * (1 + int(name[1]) % 4) * (1 + 0.01 * int(name[1])))
    rows = [{"audio1": names[a], "audio2": names[b], "label": int(a % 4 == b % 4)}
            for a in range(8) for b in range(a + 1, 8)]
    pd.DataFrame(rows).to_csv(root / "pairs.csv", index=False)
    (root / "README.txt").write_text("pairs")
    return root


@pytest.fixture
def rerank_folder(tmp_path):
    """12 documents of 3 pitches, 3 queries each of one pitch: positives the documents of its pitch; the first
    ranks every document, the others all twelve as listed candidates."""
    root = tmp_path / "rerank"
    documents = [f"d{index}.wav" for index in range(12)]
    write_tones(root, documents, lambda name: 300.0 * (1 + int(name[1:-4]) % 3) * (1 + 0.01 * int(name[1:-4])))
    write_tones(root, [f"q{query}.wav" for query in range(3)], lambda name: 300.0 * (1 + int(name[1])) * 1.005)
    rows = [{"query": f"q{query}.wav", "positives": "|".join(documents[query::3]),
             "candidates": "" if query == 0 else "|".join(documents)} for query in range(3)]
    pd.DataFrame(rows).to_csv(root / "queries.csv", index=False)
    return root
