import subprocess

import numpy as np
import pytest
import soundfile as sf

from conftest import tone
from zsa_eval.audio import decode, load_clip, resample, to_mono
from zsa_eval.errors import BadAudio


def dominant_frequency(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / sample_rate)[spectrum.argmax()])


def test_44k1_tone_arrives_at_48k_with_its_frequency(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(1000.0, 44100, seconds=2.0), 44100)
    clip = load_clip(str(path), 48000)
    assert clip.dtype == np.float32
    assert abs(clip.size - 96000) <= 2
    assert dominant_frequency(clip, 48000) == pytest.approx(1000.0, abs=1.0)
    # Read as if it were 48 kHz (the common mistake), the same samples would claim ~1088 Hz.
    assert dominant_frequency(sf.read(path)[0], 48000) == pytest.approx(1000.0 * 48000 / 44100, abs=1.0)


def test_stereo_is_averaged_to_mono():
    stereo = np.stack([np.ones(4, np.float32), np.zeros(4, np.float32)], axis=1)
    assert to_mono(stereo).tolist() == [0.5] * 4


def test_resample_keeps_matching_rate_untouched():
    wave = tone(440.0, 48000)
    assert resample(wave, 48000, 48000) is wave
    assert resample(wave, 48000, 16000).size == 16000


def test_bytes_and_path_decode_alike(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, tone(500.0, 44100, channels=2), 44100)
    from_path, rate = decode(str(path))
    from_bytes, rate_bytes = decode(path.read_bytes())
    assert rate == rate_bytes == 44100
    assert from_path.shape == (44100, 2)
    np.testing.assert_array_equal(from_path, from_bytes)


@pytest.mark.parametrize("content", [b"", b"this is not audio at all"])
def test_undecodable_files_raise_bad_audio(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(BadAudio, match="undecodable audio: cannot decode"):
        load_clip(str(path), 48000)


def test_non_finite_and_empty_audio_are_refused(tmp_path):
    wave = tone(440.0)
    wave[10] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 44100, subtype="FLOAT")
    with pytest.raises(BadAudio, match="NaN"):
        load_clip(str(tmp_path / "nan.wav"), 48000)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 44100)
    with pytest.raises(BadAudio, match="empty"):
        load_clip(str(tmp_path / "empty.wav"), 48000)


def test_formats_soundfile_refuses_are_decoded_by_ffmpeg_from_bytes_and_paths(tmp_path):
    wav = tmp_path / "tone.wav"
    sf.write(wav, tone(1000.0, 44100, seconds=1.0, channels=2), 44100)
    m4a = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), str(m4a)], check=True)
    with pytest.raises(sf.LibsndfileError):
        sf.read(m4a)
    for source in (str(m4a), m4a.read_bytes()):  # a local file, and the encoded bytes a Hub dataset holds
        samples, rate = decode(source)
        assert rate == 44100 and samples.shape[1] == 2 and samples.dtype == np.float32
        assert dominant_frequency(load_clip(source, 48000), 48000) == pytest.approx(1000.0, abs=2.0)


def test_audio_both_decoders_refuse_names_both_reasons():
    with pytest.raises(BadAudio) as refusal:
        decode(b"plain text, not audio")
    assert refusal.value.reason == "undecodable audio"
    assert refusal.value.detail.startswith("cannot decode audio: soundfile: Format not recognised.; FFmpeg: ")
    assert ".cpp" not in refusal.value.detail
