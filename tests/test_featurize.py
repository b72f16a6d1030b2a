import numpy as np
import pytest
import torch
from transformers import ClapFeatureExtractor

from conftest import noise, reference_features, tone
from zsa_eval.featurize import ClapFeaturizer

RATE = 48000
MAX_SAMPLES = 10 * RATE
CLIPS = {
    "sine_1s": tone(440.0, RATE, 1.0),
    "noise_3s": noise(0, RATE, 3.0),
    "exactly_10s": noise(1, RATE, 10.0),
    "10s_plus_100": np.concatenate([noise(2, RATE, 10.0), noise(3, RATE, 1.0)[:100]]),  # fusion's corner case
    "noise_14s": noise(4, RATE, 14.0),
    "0.05s": tone(440.0, RATE, 0.05),
}
SHORT = ["sine_1s", "noise_3s", "0.05s"]
EXTRACTORS = {
    "fusion": {},
    "rand_trunc": {"truncation": "rand_trunc"},
    "fusion_repeat": {"padding": "repeat"},
    "fusion_pad": {"padding": "pad"},
    "rand_trunc_pad": {"truncation": "rand_trunc", "padding": "pad"},
}
CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))


@pytest.fixture(scope="module")
def extractors() -> dict[str, ClapFeatureExtractor]:
    return {name: ClapFeatureExtractor(**kwargs) for name, kwargs in EXTRACTORS.items()}


def torch_stft_on_cpu(extractor) -> ClapFeaturizer:
    """A CPU featurizer taking the torch.stft path that CUDA takes (CPU's default is the numpy FFT)."""
    featurizer = ClapFeaturizer(extractor, torch.device("cpu"))
    featurizer.log_mel = featurizer.log_mel_torch
    return featurizer


def assert_matches(extractor, waveform: np.ndarray, seed: int, device: str = "cpu",
                   featurizer: ClapFeaturizer | None = None) -> torch.Tensor:
    expected, expected_longer = reference_features(extractor, waveform, seed)
    features, longer = (featurizer or ClapFeaturizer(extractor, torch.device(device)))(waveform, seed)
    assert features.device.type == device and features.dtype == torch.float32
    assert features.shape == expected.shape
    assert longer == expected_longer
    np.testing.assert_allclose(features.cpu().numpy(), expected, rtol=0, atol=1e-4)
    return features


@pytest.mark.parametrize("clip", list(CLIPS))
@pytest.mark.parametrize("mode", ["fusion", "rand_trunc"])
def test_matches_extractor(extractors, mode, clip):
    features = assert_matches(extractors[mode], CLIPS[clip], seed=7)
    assert features.shape == ((4 if mode == "fusion" else 1), MAX_SAMPLES // 480 + 1, 64)


@pytest.mark.parametrize("clip", SHORT)
@pytest.mark.parametrize("mode", ["fusion_repeat", "fusion_pad", "rand_trunc_pad"])
def test_matches_extractor_padding(extractors, mode, clip):
    assert_matches(extractors[mode], CLIPS[clip], seed=7)


def test_corner_case_uses_the_whole_mel(extractors):
    features = assert_matches(extractors["fusion"], CLIPS["10s_plus_100"], seed=7)
    assert all(torch.equal(features[0], channel) for channel in features[1:])


@pytest.mark.parametrize("clip, fused", [("sine_1s", False), ("0.05s", False), ("exactly_10s", False),
                                         ("10s_plus_100", False), ("noise_14s", True)])
def test_laion_fusion_marks_only_clips_it_crops_as_longer(extractors, clip, fused):
    """short_clip_fusion=laion: the features are the extractor's, and only a clip cropped into fusion views is
    `is_longer` (laion_clap's evaluation marks neither a short clip nor one longer by less than a hop)."""
    features, longer = ClapFeaturizer(extractors["fusion"], torch.device("cpu"), "laion")(CLIPS[clip], 7)
    expected, _ = reference_features(extractors["fusion"], CLIPS[clip], 7)
    np.testing.assert_allclose(features.numpy(), expected, rtol=0, atol=1e-4)
    assert longer is fused


@pytest.mark.parametrize("mode", ["fusion", "rand_trunc"])
def test_random_crops_follow_the_seed(extractors, mode):
    featurizer = ClapFeaturizer(extractors[mode], torch.device("cpu"))
    first, _ = featurizer(CLIPS["noise_14s"], seed=1)
    assert torch.equal(first, featurizer(CLIPS["noise_14s"], seed=1)[0])
    assert not torch.allclose(first, featurizer(CLIPS["noise_14s"], seed=2)[0])
    assert_matches(extractors[mode], CLIPS["noise_14s"], seed=2)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_matches_extractor_on_device(extractors, device):
    assert_matches(extractors["fusion"], CLIPS["noise_14s"], seed=3, device=device)
    assert_matches(extractors["fusion"], CLIPS["sine_1s"], seed=3, device=device)
    assert_matches(extractors["rand_trunc"], CLIPS["noise_14s"], seed=3, device=device)
    features, _ = ClapFeaturizer(extractors["fusion"], torch.device(device))(torch.from_numpy(CLIPS["0.05s"]), 3)
    np.testing.assert_allclose(features.cpu().numpy(), reference_features(extractors["fusion"], CLIPS["0.05s"], 3)[0],
                               rtol=0, atol=1e-4)


@pytest.mark.parametrize("clip", list(CLIPS))
@pytest.mark.parametrize("mode", ["fusion", "rand_trunc"])
def test_torch_stft_path_on_cpu_matches_extractor(extractors, mode, clip):
    """The device path (torch.stft: centered, reflect-padded, periodic Hann, mel, dB) checked on CPU, where it
    would otherwise never run: long clips take fusion's random crops or rand_trunc's random window."""
    featurizer = torch_stft_on_cpu(extractors[mode])
    features = assert_matches(extractors[mode], CLIPS[clip], seed=11, featurizer=featurizer)
    assert features.shape == ((4 if mode == "fusion" else 1), MAX_SAMPLES // 480 + 1, 64)


@pytest.mark.parametrize("clip", SHORT)
@pytest.mark.parametrize("mode", ["fusion_repeat", "fusion_pad", "rand_trunc_pad"])
def test_torch_stft_path_on_cpu_matches_extractor_padding(extractors, mode, clip):
    assert_matches(extractors[mode], CLIPS[clip], seed=11, featurizer=torch_stft_on_cpu(extractors[mode]))
