"""What the MS-CLAP golden files (tests/golden/msclap/) are made from and how zsa-eval is compared with them, shared by
msclap_golden.py and tests/test_msclap_conformance.py: the clips (real recordings and synthesized ones, at msclap's
44.1 kHz), the prompts, the crops' seeds, the weights' seed, the golden file's arrays, and zsa-eval's outputs on the
same weights and inputs.

The clips are decoded with soundfile and resampled with soxr (quality HQ, as zsa-eval's engine does) here, once, and
handed to both sides at 44.1 kHz (msclap then resamples nothing), so that the comparison covers msclap's own steps:
repeat-padding or cropping, the encoders, the projections and the similarity."""

from __future__ import annotations

import base64
import hashlib
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

WEIGHTS_SEED = 2032
RATE = 44100
CASES = ("2022_tiny", "2023_tiny", "2022_full", "2023_full")  # <version>_<size> of zsa_eval.random_models' twins
FRONT_ENDS = {"tiny": ("perturbed", "absent"), "full": ("stored",)}  # the log-mel kernels in the file: see below
# A tiny case is run twice: with the log-mel kernels of the file perturbed (both sides must read them from the file)
# and with them left out (msclap computes them with torchlibrosa and librosa, zsa-eval with its own code). The full
# cases keep them as computed, as Microsoft's files presumably hold them.
KEPT_COLUMNS = {"tiny": None, "full": 64}  # embedding columns kept in a golden file (full: the first 64, and norms)
ALSA, FREEDESKTOP = Path("/usr/share/sounds/alsa"), Path("/usr/share/sounds/freedesktop/stereo")
SYSTEM_CLIPS = {  # name -> recordings played one after another (Debian's alsa-utils, sound-theme-freedesktop)
    "front_center_1.4s": [ALSA / "Front_Center.wav"],  # short for both versions: repeated
    "front_left_right_3s": [ALSA / "Front_Left.wav", ALSA / "Front_Right.wav"],
    "alarm_clock_6.1s": [FREEDESKTOP / "alarm-clock-elapsed.oga"],  # stereo: 2022 crops it, 2023 repeats it
    "alsa_voices_10s": [ALSA / name for name in ("Front_Center.wav", "Front_Left.wav", "Front_Right.wav",
                                                 "Noise.wav", "Rear_Center.wav", "Rear_Left.wav", "Rear_Right.wav")],
}
SYNTHESIZED = {"exactly_5s": 5 * RATE, "exactly_7s": 7 * RATE, "long_25s": 25 * RATE}  # each version's window, long
PROMPTS = [
    "this is the sound of dog",  # msclap's ESC-50 prompt form
    "This is a sound of chirping birds.",
    "A person saying yes!",  # '!' is GPT-2's id 0, which msclap does not count when it finds the last token
    "wow ! a dog",
    "rain",
    "A recording of rain and sea waves, then a clock tick, a church bell, a helicopter, a chainsaw, a car horn and "
    "an engine, a train passing a crowd, fireworks far away, glass breaking, a vacuum cleaner and a washing machine "
    "running together, keyboard typing and a mouse click, a door knock, footsteps, laughing and coughing in a room, "
    "crickets and frogs at night, a rooster at dawn, a cow, a pig, a hen, sheep, a crow and a cat",  # over text_len
]
MAX_ABS = 1e-4  # the largest difference between zsa-eval's outputs and msclap's the suite accepts


def crop_seed(name: str) -> int:
    """The seed of a clip's crop: Python's random is seeded with it before msclap embeds the clip, and zsa-eval's
    preparer gets it."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


def synthesized(name: str, length: int) -> np.ndarray:
    """Chirps, a tone and noise bursts under an envelope, float32 at 44.1 kHz."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    time = np.arange(length) / RATE
    sweep = np.sin(2 * np.pi * (150 * time + 300 * time ** 2 / time[-1]))
    tone = np.sin(2 * np.pi * rng.uniform(300, 3000) * time)
    bursts = rng.standard_normal(length) * (np.sin(2 * np.pi * 1.7 * time) > 0.5)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * time + rng.uniform(0, np.pi))
    return (0.4 * envelope * (0.6 * sweep + 0.3 * tone) + 0.15 * bursts).astype(np.float32)


def recording(paths: list[Path]) -> np.ndarray:
    """Recordings decoded (soundfile), each averaged to mono and resampled to 44.1 kHz (soxr HQ), joined."""
    parts = []
    for path in paths:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = samples.mean(axis=1, dtype=np.float32)
        parts.append(mono if rate == RATE else soxr.resample(mono, rate, RATE, quality="HQ").astype(np.float32))
    return np.concatenate(parts)


def clips() -> dict[str, np.ndarray]:
    """Every clip, float32 at 44.1 kHz mono."""
    return {name: recording(paths) for name, paths in SYSTEM_CLIPS.items()} | \
        {name: synthesized(name, length) for name, length in SYNTHESIZED.items()}


def clip_digest(waveform: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(waveform, dtype="<f4").tobytes()).hexdigest()


def weights_digest(state: dict) -> str:
    """SHA-256 of a state dict's floating tensors, name by name in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        if state[name].is_floating_point():
            digest.update(name.encode() + b"\0" + state[name].float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def encode_array(array: np.ndarray) -> str:
    """A float32 array as base64 of its little-endian bytes."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def decode_array(text: str, columns: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(-1, columns)


def kept(embeddings: np.ndarray, size: str) -> dict:
    """What a golden file keeps of raw embeddings: all of them (tiny), or their first columns and their norms."""
    columns = KEPT_COLUMNS[size] or embeddings.shape[1]
    return {"columns": columns, "values": encode_array(embeddings[:, :columns]),
            "norms": encode_array(np.linalg.norm(embeddings, axis=1)[None])}


def kept_values(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """The kept columns and the norms of a golden file's embeddings."""
    values = decode_array(entry["values"], entry["columns"])
    return values, decode_array(entry["norms"], len(values))[0]


def same_tokens(ours: list[list[int]], msclaps: list[list[int]]) -> bool:
    """zsa-eval's token ids (each text alone: unpadded) are msclap's, which pads each text to text_len with id 0
    ('!' for GPT-2, [PAD] in the twins' BERT vocabulary)."""
    return all(theirs == mine + [0] * (len(theirs) - len(mine)) for mine, theirs in zip(ours, msclaps, strict=True))


def zsa_eval_outputs(model_dir: Path, waveforms: dict[str, np.ndarray], prompts: list[str]) -> dict:
    """zsa-eval's outputs on a model folder: each clip prepared alone with its crop seed (the raw audio embeddings),
    the prompts' token ids and raw text embeddings, and the similarity (msclap's: cosine times exp(logit_scale))."""
    import torch

    from zsa_eval.models import load_model

    family = load_model("msclap_conformance", str(model_dir), torch.device("cpu"), "fp32").family
    prepare = family.preparer(torch.device("cpu"))
    audio = torch.cat([family.raw_audio_embeddings(family.collate([prepare(waveform, crop_seed(name))]))
                       for name, waveform in waveforms.items()])
    text = family.raw_text_embeddings(prompts)
    normalized = [torch.nn.functional.normalize(rows, dim=-1) for rows in (audio, text)]
    with torch.inference_mode():
        similarity = family.logits(list(normalized[0]), normalized[1])
    token_ids = [family.tokens([prompt])["input_ids"][0].tolist() for prompt in prompts]  # each alone: unpadded
    return {"audio": audio.numpy(), "text": text.numpy(), "token_ids": token_ids,
            "similarity": similarity.numpy()}
