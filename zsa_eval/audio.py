"""Decode, down-mix, resample and validate one clip: pure functions on bytes, paths and arrays."""

from __future__ import annotations

import io
import re

import numpy as np
import soundfile as sf
import soxr

from zsa_eval.errors import BadAudio

AudioSource = str | bytes

MISSING_FILE = "missing file"
UNREADABLE_FILE = "unreadable file"
UNDECODABLE_AUDIO = "undecodable audio"
EMPTY_AUDIO = "empty audio"
NON_FINITE_AUDIO = "non-finite samples"


def check_readable(source: AudioSource) -> None:
    """A clip given as a file path must exist and be readable (a clip given as bytes is)."""
    if isinstance(source, bytes):
        return
    try:
        with open(source, "rb"):
            pass
    except FileNotFoundError as error:
        raise BadAudio(MISSING_FILE, f"{source} does not exist") from error
    except OSError as error:
        raise BadAudio(UNREADABLE_FILE, f"cannot read {source}: {error.strerror or error}") from error


def decode(source: AudioSource) -> tuple[np.ndarray, int]:
    """Any audio FFmpeg reads, as float32 (frames, channels) and its sample rate: soundfile first (WAV, FLAC,
    OGG Vorbis, MP3, AIFF, CAF, ...: fast, no FFmpeg), then FFmpeg through torchcodec (AAC/m4a, webm, wma, mka,
    ac3, FLAC-in-Ogg, ...). A clip both refuse is `undecodable audio` with both reasons."""
    try:
        return decode_with_soundfile(source)
    except BadAudio as soundfile_refusal:
        try:
            return decode_with_ffmpeg(source)
        except BadAudio as ffmpeg_refusal:
            raise BadAudio(UNDECODABLE_AUDIO, f"cannot decode audio: soundfile: {soundfile_refusal.detail}; "
                                              f"FFmpeg: {ffmpeg_refusal.detail}") from None


def decode_with_soundfile(source: AudioSource) -> tuple[np.ndarray, int]:
    try:
        samples, sample_rate = sf.read(
            io.BytesIO(source) if isinstance(source, bytes) else source, dtype="float32", always_2d=True
        )
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as error:
        reason = getattr(error, "error_string", None) or str(error)  # libsndfile's words, not the buffer's repr
        raise BadAudio(UNDECODABLE_AUDIO, reason) from error
    return samples, sample_rate


def decode_with_ffmpeg(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with FFmpeg (torchcodec), at its own sample rate and channel count."""
    try:
        from torchcodec.decoders import AudioDecoder

        decoded = AudioDecoder(source).get_all_samples()
    except Exception as error:  # torchcodec raises RuntimeError/ValueError/ImportError/OSError variously
        raise BadAudio(UNDECODABLE_AUDIO, first_line(error)) from error
    return decoded.data.numpy().T.astype(np.float32, copy=False), int(decoded.sample_rate)


def first_line(error: Exception) -> str:
    """An error's first line without torchcodec's C++ source location ("Decoder, /src/x.cpp:80, ...")."""
    lines = str(error).strip().splitlines()
    return re.sub(r"^.*\.cpp:\d+, ", "", lines[0]) if lines else type(error).__name__


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array into one channel (a single channel as it is, no copy)."""
    if samples.ndim == 2 and samples.shape[1] == 1:
        return samples[:, 0].astype(np.float32, copy=False)
    return samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32, copy=False)


def resample(samples: np.ndarray, source_rate: int, target_rate: int, librosa_length: bool = False) -> np.ndarray:
    """Resample a mono signal with soxr's high-quality filter (a no-op when the rates match). `librosa_length`: to
    the length librosa.load gives (ceil(n * target/source) in floating point, zero-padded: 240,001 samples for 5 s
    at 44.1 kHz) instead of soxr's exact one."""
    if source_rate == target_rate:
        return samples
    resampled = soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    if not librosa_length:
        return resampled
    length = int(np.ceil(len(samples) * (float(target_rate) / source_rate)))
    return np.pad(resampled, (0, max(0, length - len(resampled))))[:length]


def check_waveform(samples: np.ndarray) -> np.ndarray:
    """Refuse clips a model cannot score: empty or holding NaN/inf samples."""
    if samples.size == 0:
        raise BadAudio(EMPTY_AUDIO, "the file holds no samples")
    if not np.isfinite(samples).all():
        raise BadAudio(NON_FINITE_AUDIO, "the audio holds NaN or infinite samples")
    return samples


def load_clip(source: AudioSource, target_rate: int, librosa_length: bool = False) -> np.ndarray:
    """Decode a clip (bytes, or a file the decoder reads itself: its bytes are never all held besides) and return it
    mono, at `target_rate`, as float32 (`librosa_length`: see resample); the decoded channels are let go before the
    resampled copy is made, so a long clip costs about its decoded and its resampled samples at once."""
    check_readable(source)
    samples, source_rate = decode(source)
    samples = check_waveform(to_mono(samples))  # (frames, channels) let go, unless it is this one's own base
    return resample(samples, source_rate, target_rate, librosa_length)


def int16_round_trip(samples: np.ndarray) -> np.ndarray:
    """Samples quantized as laion_clap's file loader quantizes them: clipped to [-1, 1], scaled by 32767 and truncated
    to int16, scaled back (float32)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / np.float32(32767.0)
