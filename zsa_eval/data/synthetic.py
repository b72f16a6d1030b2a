"""The synthetic loader: a small synthesized dataset in the ESC-50 folder layout (distinct, reproducible sounds,
made offline), written once and loaded like a real ESC-50 folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from zsa_eval.data.esc50 import load_esc50_folder
from zsa_eval.data.items import AudioDataset
from zsa_eval.staging import write_folder

N_FOLDS = 2


def low_hum(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(90, 130)
    return sum(np.sin(2 * np.pi * base * k * t) / k for k in (1, 2, 3))


def high_beep(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gate = (np.sin(2 * np.pi * rng.uniform(3, 6) * t) > 0).astype(float)
    return gate * np.sin(2 * np.pi * rng.uniform(2500, 3500) * t)


def white_noise(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(t.size)


def rising_chirp(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    start, stop = rng.uniform(150, 300), rng.uniform(6000, 9000)
    rate = np.log(stop / start) / t[-1]
    return np.sin(2 * np.pi * start * (np.exp(rate * t) - 1) / rate)


def clicks(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    signal = np.zeros(t.size)
    signal[:: int(t.size / rng.uniform(8, 16))] = 1.0
    return signal


SOUNDS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "low_hum": low_hum,
    "high_beep": high_beep,
    "white_noise": white_noise,
    "rising_chirp": rising_chirp,
    "clicks": clicks,
}


def synthesize(category: str, sample_rate: int, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """One clip of `category`, peak-normalized to 0.5, as float32."""
    t = np.arange(int(sample_rate * duration_s)) / sample_rate
    signal = SOUNDS[category](t, rng)
    return (0.5 * signal / max(np.abs(signal).max(), 1e-9)).astype(np.float32)


def write_synthetic_esc50(root: Path, clips_per_class: int, sample_rate: int, duration_s: float) -> Path:
    """Write the dataset at `root` unless the same one is already there; return `root`. A folder at `root` that
    zsa-eval did not write is refused, never replaced."""
    params = {"clips_per_class": clips_per_class, "sample_rate": sample_rate, "duration_s": duration_s,
              "categories": list(SOUNDS)}
    stamp = root / "meta" / "synthetic.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return root
    return write_folder(root, lambda staging: write_sounds(staging, params), "meta/synthetic.json",
                        f"dataset.path={root} holds files zsa-eval did not write, and dataset=synthetic writes its "
                        "sounds there, replacing what is in it: leave dataset.path at its default or name a new "
                        "folder; to evaluate the audio in that folder use dataset=audiofolder (class subfolders) or "
                        "dataset=esc50_folder")


def write_sounds(folder: Path, params: dict) -> None:
    """The synthesized clips (audio/), their ESC-50 metadata and the stamp of `params` (meta/) in `folder`."""
    (folder / "audio").mkdir()
    (folder / "meta").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for target, category in enumerate(SOUNDS):
        for take in range(params["clips_per_class"]):
            fold = take % N_FOLDS + 1
            filename = f"{fold}-{target:02d}{take:03d}-A-{target}.wav"
            clip = synthesize(category, params["sample_rate"], params["duration_s"], rng)
            sf.write(folder / "audio" / filename, clip, params["sample_rate"])
            rows.append({"filename": filename, "fold": fold, "target": target, "category": category,
                         "esc10": True, "src_file": f"{target:02d}{take:03d}", "take": "A"})
    pd.DataFrame(rows).to_csv(folder / "meta" / "esc50.csv", index=False)
    (folder / "meta" / "synthetic.json").write_text(json.dumps(params))


def load_synthetic(
    name: str,
    path: str,
    clips_per_class: int,
    sample_rate: int,
    duration_s: float,
    **selection,
) -> AudioDataset:
    """Synthesized sounds written once (ESC-50 folder layout) and loaded like a real ESC-50 folder."""
    folder = write_synthetic_esc50(Path(path), clips_per_class, sample_rate, duration_s)
    return load_esc50_folder(name, str(folder), **selection)
