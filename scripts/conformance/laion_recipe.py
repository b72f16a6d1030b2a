"""What the laion_clap golden files (tests/golden/laion_clap/) are made from, in numpy and soundfile alone, so that
laion_golden.py (in laion_clap's own virtualenv) and the test suite (in zsa-eval's) build the same things: the
random weights (each tensor from its name, shape and the seed), the synthesized clips, the real ones, the prompts,
the text tower's shape and the crops' seeds.

Nothing here imports laion_clap, zsa_eval, torch or transformers."""

from __future__ import annotations

import base64
import hashlib
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

WEIGHTS_SEED = 2031
# laion_clap builds RoBERTa from roberta-base's config; the golden models shrink its depth and vocabulary (the
# locally trained tokenizer's) so that the suite rebuilds them in a second. Width (768: laion_clap's text projection
# expects it), heads, positions and the rest are roberta-base's.
TEXT_TOWER = dict(num_hidden_layers=2, intermediate_size=1024)
CASES = {  # golden case -> laion_clap.CLAP_Module arguments
    "htsat_tiny": dict(amodel="HTSAT-tiny", enable_fusion=False),
    "htsat_tiny_fused": dict(amodel="HTSAT-tiny", enable_fusion=True),
    "htsat_base": dict(amodel="HTSAT-base", enable_fusion=False),
}
# Tensors no random value replaces: laion_clap computes them from its settings (STFT and mel filters, window
# masks, index tables) or counts with them; transformers computes its own.
KEPT = ("audio_branch.spectrogram_extractor.", "audio_branch.logmel_extractor.", ".attn_mask",
        ".relative_position_index", ".num_batches_tracked", "position_ids")

SYSTEM_CLIPS = {  # real recordings Debian ships (sound-theme-freedesktop), each with what it exercises
    "phone-outgoing-busy.oga": "/usr/share/sounds/freedesktop/stereo/phone-outgoing-busy.oga",  # 2.9 s, 8 kHz
    "service-login.oga": "/usr/share/sounds/freedesktop/stereo/service-login.oga",  # 2.2 s, 22.05 kHz stereo
    "alarm-clock-elapsed.oga": "/usr/share/sounds/freedesktop/stereo/alarm-clock-elapsed.oga",  # 6.1 s, 48 kHz
}
SYNTHESIZED = {  # name -> (sample rate, samples): WAV PCM-16 files made by synthesize()
    "esc50_like_5s_44k.wav": (44100, 220500),  # ESC-50's originals: 5 s at 44.1 kHz, peaks near full scale
    "exactly_10s_48k.wav": (48000, 480000),  # the window, exactly: no crop, no fusion
    "hop_short_of_10s_48k.wav": (48000, 480240),  # longer than the window by half a hop: laion's corner case
    "long_25s_44k.wav": (44100, 1102500),  # long: rand_trunc or fusion crops, seeded
}
DATA_CLIPS = {"chirp_3s_48k": 144000, "long_25s_48k": 1200000}  # arrays at 48 kHz: get_audio_embedding_from_data
PROMPTS = [
    "This is a sound of dog",
    "This is a sound of chirping birds.",
    "siren",
    "A recording of rain and sea waves, then a clock tick, a church bell, a helicopter, a chainsaw, a car horn and "
    "an engine, a train passing a crowd, fireworks far away, glass breaking, a vacuum cleaner and a washing machine "
    "running together, keyboard typing and a mouse click, a door knock, footsteps, laughing and coughing in a room",
]


def crop_seed(name: str) -> int:
    """The seed numpy's global RNG gets before a clip is embedded (both sides draw the clip's crops from it)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


def kept(key: str) -> bool:
    return any(part in key for part in KEPT)


def random_tensor(key: str, shape: tuple[int, ...], seed: int = WEIGHTS_SEED) -> np.ndarray:
    """The random float32 value of laion_clap tensor `key`: standard normal noise from (seed, CRC-32 of the key),
    scaled so that activations stay of order one (weights by 1/sqrt(fan-in); norm scales near 1; batch-norm
    statistics random too, variances positive)."""
    noise = np.random.default_rng([seed, zlib.crc32(key.encode())]).standard_normal(shape, dtype=np.float32)
    return np.asarray(scaled(key, noise), dtype=np.float32)


def scaled(key: str, noise: np.ndarray) -> np.ndarray:
    shape = noise.shape
    if key.endswith("running_var"):
        return np.exp(np.float32(0.3) * noise)
    if key.endswith("running_mean"):
        return np.float32(0.2) * noise
    if key.startswith("logit_scale"):
        return np.float32(np.log(1 / 0.07)) + np.float32(0.1) * noise
    if len(shape) >= 2:
        return noise / np.float32(np.sqrt(np.prod(shape[1:])))
    if key.endswith("bias"):
        return np.float32(0.1) * noise
    return np.float32(1) + np.float32(0.1) * noise


def random_state(layout: list[dict], seed: int = WEIGHTS_SEED) -> dict[str, np.ndarray]:
    """Every tensor of a layout (laion_clap's state dict: key, shape, dtype) as the golden files' weights: the
    random ones, and the kept ones as zeros of their dtype (no embedding reads them)."""
    return {entry["key"]: np.zeros(entry["shape"], dtype=entry["dtype"]) if kept(entry["key"])
            else random_tensor(entry["key"], tuple(entry["shape"]), seed) for entry in layout}


def checkpoint_state(state: dict) -> dict:
    """The state dict as laion_clap's released checkpoints hold it: trained under transformers < 4.31, they keep
    RoBERTa's position ids (laion_clap's load_ckpt deletes them), and `module.` before every key (a distributed run)."""
    position_ids = np.arange(514, dtype=np.int64)[None]
    return {f"module.{key}": value for key, value in state.items()} | {
        "module.text_branch.embeddings.position_ids": position_ids}


def weights_digest(state: dict[str, np.ndarray]) -> str:
    """SHA-256 of the random tensors (kept ones aside), key by key in sorted order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        if not kept(key):
            digest.update(key.encode() + b"\0" + np.ascontiguousarray(state[key], dtype=np.float32).tobytes())
    return digest.hexdigest()


def synthesized_samples(name: str, rate: int, length: int) -> np.ndarray:
    """A clip of chirps, tones and noise bursts under an envelope, as int16 (the file's exact samples)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    time = np.arange(length) / rate
    sweep = np.sin(2 * np.pi * (200 * time + 400 * time ** 2 / max(time[-1], 1e-9)))
    tone = np.sin(2 * np.pi * rng.uniform(300, 3000) * time)
    bursts = rng.standard_normal(length) * (np.sin(2 * np.pi * 1.3 * time) > 0.6)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * time + rng.uniform(0, np.pi))
    mixture = envelope * (0.55 * sweep + 0.3 * tone) + 0.25 * bursts
    mixture *= 0.999 / np.abs(mixture).max()  # peaks at full scale: the resampler overshoots past +-1
    return np.round(mixture * 32767).astype(np.int16)


def data_clip(name: str) -> np.ndarray:
    """An array given to laion_clap's get_audio_embedding_from_data (float32 at 48 kHz)."""
    return synthesized_samples(name, 48000, DATA_CLIPS[name]).astype(np.float32) / np.float32(32768)


def write_synthesized(folder: Path) -> dict[str, Path]:
    """The synthesized clips as WAV PCM-16 files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (rate, length) in SYNTHESIZED.items():
        paths[name] = folder / name
        sf.write(paths[name], synthesized_samples(name, rate, length), rate, subtype="PCM_16")
    return paths


def decoded_digest(path: Path) -> str:
    """SHA-256 of a file's samples as soundfile decodes them (float32, every channel), and its rate."""
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return hashlib.sha256(f"{rate}\0{samples.shape}\0".encode() + samples.tobytes()).hexdigest()


def encode_array(array: np.ndarray) -> str:
    """A float32 array as base64 of its little-endian bytes (the golden files' embeddings)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def decode_array(text: str, columns: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(-1, columns)
