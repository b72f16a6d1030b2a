"""The audio-embedding cache reuses an entry only for identical inputs: model weights, precision, feature
extractor settings, crop seed and file content are all part of the key."""

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import count_encoded_clips, noise, tone
from zsa_eval.cache import EmbeddingCache, clip_key, model_fingerprint, weights_fingerprint
from zsa_eval.engine import score_clips
from zsa_eval.models import load_model

LABELS = ["dog", "chirping birds", "vacuum cleaner"]
PROMPTS = ["This is a sound of {}."]
RATE = 48000


@pytest.fixture(scope="module")
def clip_paths(tmp_path_factory) -> list[str]:
    """A 1 s tone and a 12 s noise clip: longer than CLAP's 10 s window, so its crops follow the seed."""
    folder = tmp_path_factory.mktemp("cache_clips")
    paths = [str(folder / "short.wav"), str(folder / "long.wav")]
    sf.write(paths[0], tone(440.0, RATE), RATE)
    sf.write(paths[1], noise(7, RATE, seconds=12.0), RATE)
    return paths


def fresh_model(model_dir, precision: str = "fp32"):
    """A model of its own (tests here change weights and settings in memory)."""
    return load_model("tiny_random", str(model_dir), torch.device("cpu"), precision)


def cache_for(loaded, root) -> EmbeddingCache:
    return EmbeddingCache(root, model_fingerprint(loaded.family.cache_identity()))


def scores(loaded, paths, seed: int = 0, cache: EmbeddingCache | None = None) -> np.ndarray:
    batches = list(score_clips(loaded, paths, paths, LABELS, PROMPTS, "embed", 2, 0, seed, False, cache))
    return np.concatenate([batch.probabilities for batch in batches])


def assert_cached_run_is_uncached_run(loaded, paths, root, monkeypatch, seed: int = 0) -> np.ndarray:
    """Scores through a cache already holding another setting's entries: every clip is encoded afresh and the
    scores are those of a run without any cache."""
    uncached = scores(loaded, paths, seed)
    encoded = count_encoded_clips(monkeypatch, loaded.model)
    cached = scores(loaded, paths, seed, cache_for(loaded, root))
    assert sum(encoded) == len(paths)
    np.testing.assert_allclose(cached, uncached, atol=1e-6, rtol=0)
    return uncached


def test_identical_inputs_always_reuse_the_entry(tiny_model_dir, clip_paths, tmp_path, monkeypatch):
    first_model, second_model = fresh_model(tiny_model_dir), fresh_model(tiny_model_dir)
    assert cache_for(second_model, tmp_path).folder == cache_for(first_model, tmp_path).folder
    first = scores(first_model, clip_paths, seed=3, cache=cache_for(first_model, tmp_path))
    assert len(list(cache_for(first_model, tmp_path).folder.glob("*.npy"))) == len(clip_paths)
    encoded = count_encoded_clips(monkeypatch, second_model.model)
    again = scores(second_model, clip_paths, seed=3, cache=cache_for(second_model, tmp_path))
    assert encoded == []
    np.testing.assert_allclose(again, first, atol=1e-6, rtol=0)


def test_same_config_with_other_weights_never_reuses(tiny_model_dir, clip_paths, tmp_path, monkeypatch):
    original, changed = fresh_model(tiny_model_dir), fresh_model(tiny_model_dir)
    with torch.no_grad():
        changed.model.audio_projection.linear2.weight[0] += 0.5  # one row of one tensor, config untouched
    assert changed.model.config.to_dict() == original.model.config.to_dict()
    assert weights_fingerprint(changed.model) != weights_fingerprint(original.model)
    assert cache_for(changed, tmp_path).folder != cache_for(original, tmp_path).folder
    short_clip = clip_paths[:1]
    before = scores(original, short_clip, cache=cache_for(original, tmp_path))
    after = assert_cached_run_is_uncached_run(changed, short_clip, tmp_path, monkeypatch)
    assert np.abs(after - before).max() > 1e-3


def test_another_seed_never_reuses_a_long_clips_crops(tiny_model, clip_paths, tmp_path, monkeypatch):
    seed0 = scores(tiny_model, clip_paths, seed=0, cache=cache_for(tiny_model, tmp_path))
    seed1 = assert_cached_run_is_uncached_run(tiny_model, clip_paths, tmp_path, monkeypatch, seed=1)
    assert np.abs(seed1[1] - seed0[1]).max() > 1e-6  # the long clip's crops moved with the seed
    assert clip_key(b"same bytes", 0) != clip_key(b"same bytes", 1)


def test_another_precision_never_reuses(tiny_model, tiny_model_dir, clip_paths, tmp_path, monkeypatch):
    short_clip = clip_paths[:1]
    scores(tiny_model, short_clip, cache=cache_for(tiny_model, tmp_path))
    bf16 = fresh_model(tiny_model_dir, "bf16")
    assert cache_for(bf16, tmp_path).folder != cache_for(tiny_model, tmp_path).folder
    assert_cached_run_is_uncached_run(bf16, short_clip, tmp_path, monkeypatch)


@pytest.mark.parametrize("setting, value", [("padding", "pad"), ("frequency_max", 12000)])
def test_another_feature_extractor_setting_never_reuses(tiny_model, tiny_model_dir, clip_paths, tmp_path,
                                                        monkeypatch, setting, value):
    short_clip = clip_paths[:1]
    default = scores(tiny_model, short_clip, cache=cache_for(tiny_model, tmp_path))
    changed = fresh_model(tiny_model_dir)
    setattr(changed.feature_extractor, setting, value)
    assert cache_for(changed, tmp_path).folder != cache_for(tiny_model, tmp_path).folder
    if setting == "padding":  # a 1 s clip repeated to 10 s, or padded with silence: other features
        after = assert_cached_run_is_uncached_run(changed, short_clip, tmp_path, monkeypatch)
        assert np.abs(after - default).max() > 1e-4


def test_a_changed_file_never_reuses(tiny_model, tmp_path, monkeypatch):
    path = str(tmp_path / "clip.wav")
    sf.write(path, tone(300.0), 44100)
    cache = cache_for(tiny_model, tmp_path / "cache")
    before = scores(tiny_model, [path], cache=cache)
    sf.write(path, noise(4), 44100)  # same path and name, new content
    uncached = scores(tiny_model, [path])
    encoded = count_encoded_clips(monkeypatch, tiny_model.model)
    after = scores(tiny_model, [path], cache=cache)
    assert encoded == [1]
    np.testing.assert_allclose(after, uncached, atol=1e-6, rtol=0)
    assert np.abs(after - before).max() > 1e-4
    assert len(list(cache.folder.glob("*.npy"))) == 2


def test_entries_are_plain_float32_npy_with_the_clip_length_and_unreadable_ones_are_misses(tmp_path):
    cache = EmbeddingCache(tmp_path, "fingerprint")
    assert cache.load("absent") is None
    cache.store("key", np.array([0.25, -1.5], dtype=np.float64), 48000)
    loaded = cache.load("key")
    assert loaded.embedding.dtype == np.float32 and loaded.embedding.tolist() == [0.25, -1.5]
    assert loaded.samples == 48000
    assert sorted(path.name for path in (tmp_path / "fingerprint").iterdir()) == ["key.json", "key.npy"]  # no .tmp
    for name in ("torn", "pickled", "no_length"):
        (tmp_path / "fingerprint" / f"{name}.json").write_text('{"samples": 1}')
    (tmp_path / "fingerprint" / "torn.npy").write_bytes(b"\x93NUMPY")
    assert cache.load("torn") is None
    np.save(tmp_path / "fingerprint" / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert cache.load("pickled") is None  # never unpickled
    np.save(tmp_path / "fingerprint" / "no_length.npy", np.zeros(2, np.float32))
    (tmp_path / "fingerprint" / "no_length.json").unlink()
    assert cache.load("no_length") is None  # an embedding without the clip's length is no entry


@pytest.mark.slow
def test_a_copied_checkpoint_has_the_same_fingerprint_and_reuses_the_cache(tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    from conftest import compose_config
    from zsa_eval.run import run

    copy = tmp_path / "copied model"
    shutil.copytree(tiny_model_dir, copy)
    original, copied = fresh_model(tiny_model_dir), fresh_model(copy)
    assert copied.family.weight_fingerprint == original.family.weight_fingerprint
    bf16 = fresh_model(tiny_model_dir, "bf16")
    assert bf16.family.weight_fingerprint == original.family.weight_fingerprint  # the weights as stored
    assert (model_fingerprint(bf16.family.cache_identity())
            != model_fingerprint(original.family.cache_identity()))  # ... but cached embeddings per precision
    monkeypatch.setenv("ZSA_EVAL_CACHE", str(tmp_path / "cache"))
    common = ["dataset=synthetic", "dataset.clips_per_class=2", "model=tiny_random"]
    first = run(compose_config(*common, f"model.name_or_path={tiny_model_dir}", f"output_dir={tmp_path / 'a'}"))
    again = run(compose_config(*common, f"model.name_or_path={copy}", f"output_dir={tmp_path / 'b'}"))
    assert again["identity"]["weight_fingerprint"] == first["identity"]["weight_fingerprint"]
    assert (first["cache_hits"], again["cache_hits"]) == (0, 10)
