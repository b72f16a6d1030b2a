import numpy as np
import pytest
import torch

from conftest import noise, reference_features, tone
from zsa_eval.audio import int16_round_trip, load_clip
from zsa_eval.cache import EmbeddingCache, model_fingerprint
from zsa_eval.clips import ClipDataset
from zsa_eval.engine import BatchScores, score_clips
from zsa_eval.families.clap import pooled
from zsa_eval.featurize import ClapFeaturizer
from zsa_eval.long_audio import LongAudio
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_clap

LABELS = ["dog", "chirping birds", "vacuum cleaner", "rain"]
PROMPT = ["This is a sound of {}."]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Ten clips of mixed rates, channels and lengths, including one longer than CLAP's 10 s window."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("clips")
    waves = [(tone(300.0 + 150 * i), 44100) for i in range(5)] + [(noise(i, 16000), 16000) for i in range(3)]
    waves += [(tone(880.0, 48000, channels=2), 48000), (noise(9, 22050, seconds=11.0), 22050)]
    paths = []
    for index, (wave, rate) in enumerate(waves):
        paths.append(str(folder / f"{index}.wav"))
        sf.write(paths[-1], wave, rate)
    return paths


def scores(model, clips, engine="embed", batch_size=4, num_workers=0, seed=0, prompts=PROMPT, cache=None,
           featurizer="auto") -> tuple[list[int], np.ndarray]:
    batches: list[BatchScores] = list(score_clips(model, clips, clips, LABELS, prompts, engine, batch_size,
                                                  num_workers, seed, False, cache, featurizer))
    indices = [index for batch in batches for index in batch.indices]
    return indices, np.concatenate([batch.probabilities for batch in batches])


def test_scores_differ_across_labels_and_clips(tiny_model, clips):
    _, probabilities = scores(tiny_model, clips)
    assert probabilities.shape == (len(clips), len(LABELS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert probabilities.std(axis=1).min() > 1e-4  # labels are told apart
    assert np.abs(probabilities[0] - probabilities[5]).max() > 1e-4  # a tone and noise score differently
    assert len({tuple(row.round(6)) for row in probabilities}) == len(clips)


@pytest.fixture(scope="module")
def transformers_fusion(tiny_model_dir):
    """The tiny (fused) model hearing short clips as transformers does: through the fusion branch."""
    return load_model("tiny_random", str(tiny_model_dir), torch.device("cpu"), "fp32",
                      short_clip_fusion="transformers")


def test_embed_and_pipeline_engines_agree(transformers_fusion, clips):
    embed_indices, embed = scores(transformers_fusion, clips, "embed", batch_size=3)
    pipeline_indices, pipeline = scores(transformers_fusion, clips, "pipeline", batch_size=3)
    assert embed_indices == pipeline_indices == list(range(len(clips)))
    np.testing.assert_allclose(embed, pipeline, atol=1e-5, rtol=0)
    assert (embed.argmax(axis=1) == pipeline.argmax(axis=1)).all()


def test_int16_round_trip_quantizes_each_clip_as_laion_clap_loads_it(tiny_model, tiny_model_dir, clips):
    """model.int16_roundtrip: the clip clipped to [-1, 1], truncated to int16 steps of 1/32767, then featurized; the
    setting is in the family's settings (identity) and its embedding settings (cache key)."""
    rounded = load_model("tiny_random", str(tiny_model_dir), CPU, "fp32", int16_roundtrip=True)
    waveform = 4 * load_clip(clips[0], tiny_model.sampling_rate)  # peaks past 1: clipped
    quantized = (np.clip(waveform, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32767
    assert np.abs(quantized - waveform).max() > 0.2 and np.abs(int16_round_trip(waveform) - quantized).max() == 0

    def embedded(loaded, samples):
        family = loaded.family
        return family.embed_audio(family.collate([family.preparer(CPU)(samples, 0)]))[0].numpy()

    np.testing.assert_array_equal(embedded(rounded, waveform), embedded(tiny_model, quantized))
    assert rounded.family.settings() == {"short_clip_fusion": "laion", "int16_roundtrip": True}
    assert tiny_model.family.embedding_settings() == {"short_clip_fusion": "laion"}


def test_laion_fusion_hears_short_clips_without_the_fusion_branch(tiny_model, transformers_fusion, clips):
    """A fused checkpoint's default (short_clip_fusion=laion, as laion_clap evaluates) runs a clip no longer than 10 s
    through the global view alone: the model's own forward with is_longer=False; the 11 s clip is fused as before."""
    laion, fused = scores(tiny_model, clips)[1], scores(transformers_fusion, clips)[1]
    assert tiny_model.family.short_clip_fusion == "laion" and transformers_fusion.family.short_clip_fusion == \
        "transformers"
    assert np.abs(laion[:-1] - fused[:-1]).max() > 1e-3  # another computation for the short clips ...
    np.testing.assert_allclose(laion[-1], fused[-1], atol=1e-6, rtol=0)  # ... the same for the long one
    extractor, model = tiny_model.feature_extractor, tiny_model.model
    waveform = load_clip(clips[0], tiny_model.sampling_rate)
    features = extractor([waveform], sampling_rate=tiny_model.sampling_rate, return_tensors="pt")
    with torch.inference_mode():
        audio = model.get_audio_features(input_features=features["input_features"],
                                         is_longer=torch.tensor([[False]]))
    own = tiny_model.family.embed_audio(tiny_model.family.collate([tiny_model.family.preparer(CPU)(waveform, 0)]))[0]
    np.testing.assert_allclose(own.numpy(), torch.nn.functional.normalize(pooled(audio), dim=-1)[0].numpy(),
                               atol=1e-6, rtol=0)


@pytest.mark.slow
def test_scores_do_not_depend_on_batch_size_or_workers(tiny_model, clips):
    _, reference = scores(tiny_model, clips, batch_size=1)
    for batch_size, num_workers in [(7, 0), (32, 0), (3, 2)]:
        _, batched = scores(tiny_model, clips, batch_size=batch_size, num_workers=num_workers)
        np.testing.assert_allclose(batched, reference, atol=1e-5, rtol=0)


def test_scores_do_not_depend_on_batch_neighbours(tiny_model, clips):
    _, reference = scores(tiny_model, clips, batch_size=len(clips))
    order = [9, 2, 7, 0, 4, 1, 8, 3, 6, 5]
    _, shuffled = scores(tiny_model, [clips[i] for i in order], batch_size=4)
    np.testing.assert_allclose(shuffled, reference[order], atol=1e-5, rtol=0)


def test_seed_moves_only_the_long_clip(tiny_model, clips):
    _, first = scores(tiny_model, clips, seed=0)
    _, second = scores(tiny_model, clips, seed=1)
    np.testing.assert_allclose(first[:9], second[:9], atol=1e-5, rtol=0)
    assert np.abs(first[9] - second[9]).max() > 1e-6


def test_short_clip_alone_is_marked_longer_and_long_crops_follow_the_seed(tiny_model):
    extractor = tiny_model.feature_extractor
    _, is_longer = reference_features(extractor, tone(440.0, 48000), seed=1)
    assert is_longer  # what the pipeline sees for a short clip on its own
    long_clip = noise(3, 48000, seconds=14.0)
    featurize = ClapFeaturizer(extractor, tiny_model.device)
    first, longer = featurize(long_clip, seed=5)
    again, _ = featurize(long_clip, seed=5)
    other, _ = featurize(long_clip, seed=6)
    first, again, other = first.numpy(), again.numpy(), other.numpy()
    assert longer and first.shape == (4, 1001, 64)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_bad_items_come_back_as_skips(tiny_model, clips, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not really")
    dataset = ClipDataset([clips[0], str(broken)], ["a", "b"], 48000, 0, LongAudio("native", 48000, 480000))
    assert "waveform" in dataset[0]
    assert dataset[1]["index"] == 1 and dataset[1]["error"][0] == "undecodable audio"
    batches = list(score_clips(tiny_model, [clips[0], str(broken)], ["a", "b"], LABELS, PROMPT, "embed", 2, 0, 0,
                               False))
    assert batches[0].indices == [0] and batches[0].skipped[0][:2] == (1, "undecodable audio")


def test_device_featurizer_gives_the_same_scores(tiny_model, clips):
    _, numpy_scores = scores(tiny_model, clips, featurizer="workers", num_workers=2)
    _, torch_scores = scores(tiny_model, clips, featurizer="device")
    np.testing.assert_allclose(torch_scores, numpy_scores, atol=1e-5, rtol=0)


def cache_for(model, root) -> EmbeddingCache:
    return EmbeddingCache(root, model_fingerprint(model.family.cache_identity()))


def test_cached_embeddings_skip_the_audio_encoder(tiny_model, clips, tmp_path, monkeypatch):
    cache = cache_for(tiny_model, tmp_path)
    _, first = scores(tiny_model, clips, cache=cache, num_workers=2)
    assert len(list(cache.folder.glob("*.npy"))) == len(clips)
    other_prompt = ["A recording of {}."]
    _, expected = scores(tiny_model, clips, prompts=other_prompt)

    def encoder_must_not_run(*args, **kwargs):
        raise AssertionError("audio encoder called on a cache hit")

    monkeypatch.setattr(tiny_model.model, "get_audio_features", encoder_must_not_run)
    _, rerun = scores(tiny_model, clips, prompts=other_prompt, cache=cache)
    _, same_prompt = scores(tiny_model, clips, cache=cache, featurizer="device")
    np.testing.assert_allclose(rerun, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(same_prompt, first, atol=1e-6, rtol=0)


def test_changed_file_or_model_never_reuses_a_stale_entry(tiny_model, tmp_path):
    import soundfile as sf

    path = str(tmp_path / "clip.wav")
    sf.write(path, tone(300.0), 44100)
    cache = cache_for(tiny_model, tmp_path / "cache")
    _, before = scores(tiny_model, [path], cache=cache)
    sf.write(path, noise(4), 44100)  # same path and name, new content
    _, after = scores(tiny_model, [path], cache=cache)
    _, uncached = scores(tiny_model, [path])
    np.testing.assert_allclose(after, uncached, atol=1e-6, rtol=0)
    assert np.abs(after - before).max() > 1e-4
    assert len(list(cache.folder.glob("*.npy"))) == 2

    other_model = load_model("other", str(build_random_clap("tiny", tmp_path / "other", seed=1)),
                             tiny_model.device, "fp32")
    assert cache_for(other_model, tmp_path / "cache").folder != cache.folder
    assert cache_for(tiny_model, tmp_path / "cache").folder == cache.folder
