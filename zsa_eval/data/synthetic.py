"""The synthetic loader: a small synthesized dataset in the ESC-50 folder layout (distinct, reproducible sounds,
made offline), written once and loaded like a real ESC-50 folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from zsa_eval.data.esc50 import load_esc50_folder
from zsa_eval.data.items import AudioDataset

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
    """Write the dataset at `root` unless the same one is already there; return `root`."""
    params = {"clips_per_class": clips_per_class, "sample_rate": sample_rate, "duration_s": duration_s,
              "categories": list(SOUNDS)}
    stamp = root / "meta" / "synthetic.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root.parent))
    (staging / "audio").mkdir()
    (staging / "meta").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for target, category in enumerate(SOUNDS):
        for take in range(clips_per_class):
            fold = take % N_FOLDS + 1
            filename = f"{fold}-{target:02d}{take:03d}-A-{target}.wav"
            sf.write(staging / "audio" / filename, synthesize(category, sample_rate, duration_s, rng), sample_rate)
            rows.append({"filename": filename, "fold": fold, "target": target, "category": category,
                         "esc10": True, "src_file": f"{target:02d}{take:03d}", "take": "A"})
    pd.DataFrame(rows).to_csv(staging / "meta" / "esc50.csv", index=False)
    (staging / "meta" / "synthetic.json").write_text(json.dumps(params))
    if root.exists():
        shutil.rmtree(root)
    os.replace(staging, root)
    return root


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
