"""The PE-Audio family: scores equal the model's own forward clip by clip, batch invariance, frame pooling, the
clip limit, loading by model_type, the transformers 5.24 bugs worked around, and runs through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import PeAudioFeatureExtractor, PeAudioModel, PeAudioVideoModel

from conftest import noise, run_cli, tone
from zsa_eval.audio import load_clip
from zsa_eval.cache import EmbeddingCache, model_fingerprint
from zsa_eval.engine import score_clips
from zsa_eval.errors import UserError
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_pe, train_tokenizer
from zsa_eval.random_models.pe import pe_audio_config, random_pe_audio

LABELS = ["dog", "chirping birds", "vacuum cleaner", "rain", "low hum"]
PROMPT = "This is a sound of {}."
RATE = 48000
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    """Nine clips of unequal lengths (0.1 s to 0.6 s), rates and kinds, so that batches are padded."""
    folder = tmp_path_factory.mktemp("pe_clips")
    waves = [(tone(200.0 * (i + 1), 44100, seconds=0.1 + 0.1 * i), 44100) for i in range(5)]
    waves += [(noise(i, 48000, seconds=0.15 + 0.2 * i), 48000) for i in range(3)] + [(noise(7, 16000, 0.45), 16000)]
    paths = []
    for index, (wave, rate) in enumerate(waves):
        paths.append(str(folder / f"{index}.wav"))
        sf.write(paths[-1], wave, rate)
    return paths


@pytest.fixture(scope="module")
def pe_dirs(tmp_path_factory) -> dict:
    """Tiny random PE-Audio checkpoints, one per layout, built here from a tiny config (no Hub)."""
    root = tmp_path_factory.mktemp("pe_models")
    return {layout: build_random_pe("tiny", layout, root / layout) for layout in
            ("pe_audio", "pe_audio_frame", "pe_audio_video")}


def load(directory, max_seconds: float = 30, frame_pooling: str | None = "max"):
    return load_model("pe", str(directory), CPU, "fp32", max_seconds=max_seconds, frame_pooling=frame_pooling)


def engine_scores(loaded, clips, batch_size: int, prompts=(PROMPT,), cache=None, featurizer="auto"):
    batches = list(score_clips(loaded, clips, clips, LABELS, list(prompts), "embed", batch_size, 0, 0, False, cache,
                               featurizer))
    assert [index for batch in batches for index in batch.indices] == list(range(len(clips)))
    return np.concatenate([batch.probabilities for batch in batches])


def reference_logits(model, clips, texts, waveforms=None, pool=None) -> torch.Tensor:
    """The model's own forward (transformers), each clip alone as PeAudioFeatureExtractor prepares it, the texts
    tokenized together: (clips, texts) logits; frame-level models' (texts, frames) logits go through `pool`."""
    extractor, tokenizer = PeAudioFeatureExtractor(), train_tokenizer()
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    waveforms = waveforms or [load_clip(path, RATE) for path in clips]
    rows = []
    with torch.no_grad():
        for waveform in waveforms:
            inputs = extractor(waveform, sampling_rate=RATE, return_tensors="pt")
            rows.append(model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                              **inputs).logits_audio_text[0])
    return torch.stack([pool(row) for row in rows] if pool else rows)


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.slow
def test_scores_equal_sigmoid_of_the_models_own_logits(pe_dirs, clips, batch_size):
    loaded = load(pe_dirs["pe_audio"])
    reference = reference_logits(PeAudioModel.from_pretrained(pe_dirs["pe_audio"]).eval(), clips,
                                 [PROMPT.format(label) for label in LABELS]).sigmoid().numpy()
    ours = engine_scores(loaded, clips, batch_size)
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)
    assert np.ptp(reference, axis=1).min() > 1e-2 and np.ptp(reference, axis=0).max() > 1e-3  # scores spread


def test_frame_level_scores_pool_the_models_frame_logits(pe_dirs, clips):
    from transformers import PeAudioFrameLevelModel

    model = PeAudioFrameLevelModel.from_pretrained(pe_dirs["pe_audio_frame"]).eval()
    texts = [PROMPT.format(label) for label in LABELS]
    pools = {"max": lambda frames: frames.amax(dim=-1), "mean": lambda frames: frames.mean(dim=-1)}
    for pooling, pool in pools.items():
        expected = reference_logits(model, clips, texts, pool=pool).sigmoid().numpy()
        loaded = load(pe_dirs["pe_audio_frame"], frame_pooling=pooling)
        for batch_size in (1, 7) if pooling == "max" else (7,):
            np.testing.assert_allclose(engine_scores(loaded, clips, batch_size), expected, atol=1e-5, rtol=0)


def test_pe_audio_video_checkpoint_loads_its_audio_branch(pe_dirs, clips):
    """A pe_audio_video checkpoint (facebook/pe-av-* layout: text_model.*, audio_model.*) loads into exactly the
    weights of the PeAudioModel it was written from; PeAudioVideoModel's forward without video is that model's."""
    tokenizer = train_tokenizer()
    source = random_pe_audio(pe_audio_config("tiny", tokenizer), frame_level=False, seed=0)
    loaded = load(pe_dirs["pe_audio_video"])
    assert type(loaded.model) is PeAudioModel
    expected, actual = source.state_dict(), loaded.model.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    reference = reference_logits(source, clips, [PROMPT.format(label) for label in LABELS]).sigmoid().numpy()
    np.testing.assert_allclose(engine_scores(loaded, clips, 4), reference, atol=1e-5, rtol=0)


def test_incomplete_pe_audio_video_checkpoint_is_refused(pe_dirs, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((pe_dirs["pe_audio_video"] / name).read_bytes())
    weights = load_file(pe_dirs["pe_audio_video"] / "model.safetensors")
    save_file({name: tensor for name, tensor in weights.items() if not name.startswith("audio_model.audio_head.")},
              broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError, match="lacks 3 audio-branch weights"):
        load(broken)


def checkpoint_with(source: Path, target: Path, change) -> Path:
    """A copy of the checkpoint at `source` whose weights are `change(weights)`."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    save_file(change(load_file(source / "model.safetensors")), target / "model.safetensors", metadata={"format": "pt"})
    return target


@pytest.mark.parametrize("bias", [0.0, -10.0])
def test_a_zero_logit_scale_is_refused_in_one_line(pe_dirs, monkeypatch, capsys, tmp_path, bias):
    """A scale of 0 gives every clip the bias as its logit for every label: one score, every metric at chance."""
    def zero_scale(weights):
        return {**weights, "text_audio_logit_scale": torch.zeros(1), "text_audio_logit_bias": torch.full((1,), bias)}

    checkpoint = checkpoint_with(pe_dirs["pe_audio"], tmp_path / "zero_scale", zero_scale)
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "dataset.clips_per_class=1", "model=auto",
                                   f"model.name_or_path={checkpoint}", "model.name=x", f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stdout == ""
    same_score = {0.0: "0.5", -10.0: "4.54e-05"}[bias]
    assert stderr == (f"zsa-eval: error: model '{checkpoint}' has text_audio_logit_scale=0 (text_audio_logit_bias="
                      f"{bias:g}): every logit would equal the bias, giving every clip the same score ({same_score}) "
                      "and every metric chance level; point model.name_or_path at a trained PE-Audio checkpoint\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("layout, prefix", [("pe_audio", ""), ("pe_audio_frame", ""),
                                            ("pe_audio_video", "audio_model.")])
def test_a_checkpoint_without_its_logit_scale_and_bias_is_refused(pe_dirs, tmp_path, layout, prefix):
    def without_logit_parameters(weights):
        return {name: tensor for name, tensor in weights.items()
                if name not in (f"{prefix}text_audio_logit_scale", f"{prefix}text_audio_logit_bias")}

    checkpoint = checkpoint_with(pe_dirs[layout], tmp_path / layout, without_logit_parameters)
    with pytest.raises(UserError) as error:
        load(checkpoint)
    assert str(error.value) == (f"model '{checkpoint}': the checkpoint lacks text_audio_logit_scale and "
                                "text_audio_logit_bias, which transformers would fill with untrained values (0 gives "
                                "every clip the same score); point model.name_or_path at a trained PE-Audio "
                                "checkpoint")


def test_scores_do_not_depend_on_batch_size_order_or_workers(pe_dirs, clips):
    loaded = load(pe_dirs["pe_audio"])
    reference = engine_scores(loaded, clips, 1)
    for batch_size in (4, 9):
        np.testing.assert_allclose(engine_scores(loaded, clips, batch_size), reference, atol=1e-5, rtol=0)
    order = [8, 2, 6, 0, 4, 1, 7, 3, 5]
    np.testing.assert_allclose(engine_scores(loaded, [clips[i] for i in order], 4), reference[order], atol=1e-5,
                               rtol=0)
    batches = score_clips(loaded, clips, clips, LABELS, [PROMPT], "embed", 3, 2, 0, False, None, "workers")
    with_workers = np.concatenate([batch.probabilities for batch in batches])
    np.testing.assert_allclose(with_workers, reference, atol=1e-5, rtol=0)


def test_transformers_batched_forward_leaks_padding_into_short_clips(pe_dirs, clips):
    """Why zsa-eval runs the codec per clip: in transformers 5.24 the batched forward of clips of unequal length
    moves the shorter clips' logits (the DAC convolutions see the zero padding). If this fails, upstream made the
    forward batch-invariant and the per-clip codec could go."""
    model = PeAudioModel.from_pretrained(pe_dirs["pe_audio"]).eval()
    texts = [PROMPT.format(label) for label in LABELS]
    alone = reference_logits(model, clips, texts)
    tokens = train_tokenizer()(texts, padding=True, return_tensors="pt")
    inputs = PeAudioFeatureExtractor()([load_clip(path, RATE) for path in clips], sampling_rate=RATE,
                                       return_tensors="pt")
    with torch.no_grad():
        batched = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                        **inputs).logits_audio_text
    assert (batched - alone).abs().max() > 1e-3


def test_transformers_text_embedding_methods_still_fail(pe_dirs):
    """transformers 5.24: PeAudioModel.get_text_audio_embeds reads hidden_states without asking for them, and
    PeAudioVideoModel.get_text_audio_embeds calls audio_model.get_text_embeds, which does not exist. zsa-eval
    computes the text embedding as the forward does. If a test here fails, upstream fixed the method."""
    model = PeAudioModel.from_pretrained(pe_dirs["pe_audio"]).eval()
    tokens = train_tokenizer()(["a dog"], return_tensors="pt")
    with pytest.raises(TypeError, match="not subscriptable"):
        model.get_text_audio_embeds(tokens["input_ids"], tokens["attention_mask"])
    audio_video = PeAudioVideoModel.__new__(PeAudioVideoModel)  # building one needs timm: only its method runs
    torch.nn.Module.__init__(audio_video)
    audio_video.audio_model = model
    with pytest.raises(AttributeError, match="get_text_embeds"):
        PeAudioVideoModel.get_text_audio_embeds(audio_video, tokens["input_ids"], tokens["attention_mask"])


def test_text_embeddings_are_the_forwards_and_ensembles_average_logits(pe_dirs, clips):
    loaded = load(pe_dirs["pe_audio"])
    model = PeAudioModel.from_pretrained(pe_dirs["pe_audio"]).eval()
    texts = [PROMPT.format(label) for label in LABELS]
    tokens = loaded.tokenizer(texts, padding=True, return_tensors="pt")
    inputs = loaded.feature_extractor(load_clip(clips[0], RATE), sampling_rate=RATE, return_tensors="pt")
    with torch.no_grad():
        forward = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], **inputs)
    torch.testing.assert_close(loaded.family.embed_texts(texts), forward.text_audio_embeds, atol=1e-5, rtol=0)
    prompts = [PROMPT, "{}"]
    logits = [reference_logits(model, clips, [prompt.format(label) for label in LABELS]) for prompt in prompts]
    expected = ((logits[0] + logits[1]) / 2).sigmoid().numpy()
    np.testing.assert_allclose(engine_scores(loaded, clips, 4, prompts), expected, atol=1e-5, rtol=0)


def test_clips_over_the_limit_keep_their_first_max_seconds(pe_dirs, tmp_path):
    long_clip = np.concatenate([tone(330.0, RATE, 0.5), noise(3, RATE, 1.0)])
    path = tmp_path / "long.wav"
    sf.write(path, long_clip, RATE)
    model = PeAudioModel.from_pretrained(pe_dirs["pe_audio"]).eval()
    texts = [PROMPT.format(label) for label in LABELS]
    decoded = load_clip(str(path), RATE)
    head = reference_logits(model, None, texts, [decoded[:RATE // 2]]).sigmoid().numpy()
    whole = reference_logits(model, None, texts, [decoded]).sigmoid().numpy()
    cut = engine_scores(load(pe_dirs["pe_audio"], max_seconds=0.5), [str(path)], 1)
    np.testing.assert_allclose(cut, head, atol=1e-5, rtol=0)
    assert np.abs(cut - whole).max() > 1e-4
    np.testing.assert_allclose(engine_scores(load(pe_dirs["pe_audio"]), [str(path)], 1), whole, atol=1e-5, rtol=0)


def test_settings_mistakes_are_one_line(pe_dirs):
    with pytest.raises(UserError, match="model.frame_pooling=median is not a frame pooling"):
        load(pe_dirs["pe_audio_frame"], frame_pooling="median")
    with pytest.raises(UserError, match=r"model.max_seconds=1000 is longer than .* \(399.96 s\)"):
        load(pe_dirs["pe_audio"], max_seconds=1000)
    with pytest.raises(UserError, match="model.max_seconds=None must be a positive number"):
        load(pe_dirs["pe_audio"], max_seconds=None)
    assert load(pe_dirs["pe_audio"], frame_pooling=None).family.frame_pooling is None  # clip-level: not used


def test_unsupported_model_type_names_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UserError) as error:
        load(tmp_path)
    assert str(error.value).count("\n") == 0
    assert "model_type 'bert'" in str(error.value)
    assert ("supported model types: audioflamingo3, clap, gemma3n, msclap, pe_audio, pe_audio_video, phi4_multimodal, "
            "qwen2_5_omni, qwen2_5_omni_thinker, qwen2_audio, voxtral") in str(error.value)


def test_cache_serves_frame_embeddings_to_either_pooling(pe_dirs, clips, tmp_path, monkeypatch):
    loaded = load(pe_dirs["pe_audio_frame"], frame_pooling="max")
    cache = EmbeddingCache(tmp_path, model_fingerprint(loaded.family.cache_identity()))
    first = engine_scores(loaded, clips, 4, cache=cache)
    stored = [np.load(path) for path in sorted(cache.folder.glob("*.npy"))]
    assert len(stored) == len(clips) and {entry.ndim for entry in stored} == {2}  # (frames, dim) per clip
    mean_loaded = load(pe_dirs["pe_audio_frame"], frame_pooling="mean")
    expected_mean = engine_scores(mean_loaded, clips, 4)

    def encoder_must_not_run(*args, **kwargs):
        raise AssertionError("audio encoder called on a cache hit")

    monkeypatch.setattr(mean_loaded.family, "embed_audio", encoder_must_not_run)
    monkeypatch.setattr(loaded.family, "embed_audio", encoder_must_not_run)
    np.testing.assert_allclose(engine_scores(mean_loaded, clips, 3, cache=cache), expected_mean, atol=1e-6, rtol=0)
    np.testing.assert_allclose(engine_scores(loaded, clips, 3, cache=cache), first, atol=1e-6, rtol=0)
    cut = load(pe_dirs["pe_audio_frame"], max_seconds=1)
    assert model_fingerprint(cut.family.cache_identity()) != \
        cache.folder.name


@pytest.mark.slow
def test_cli_runs_record_family_and_score_kind_and_reuse_the_cache(monkeypatch, capsys, tmp_path):
    common = ["dataset=synthetic", "dataset.clips_per_class=2", "model=pe_tiny_random"]
    code, _, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'first'}")
    assert code == 0, stderr
    code, out, stderr = run_cli(monkeypatch, capsys, *common, "template=plain", f"output_dir={tmp_path / 'second'}")
    assert code == 0, stderr
    assert "10 from the cache" in out
    metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert (metrics["family"], metrics["score_kind"]) == ("pe_audio", "sigmoid")
    assert metrics["identity"]["family"] == "pe_audio" and metrics["cache_hits"] == 10
    predictions = pd.read_csv(tmp_path / "second" / "predictions.csv")
    assert set(predictions["score_kind"]) == {"sigmoid"}
    scores = pd.read_parquet(tmp_path / "second" / "scores.parquet")
    sigmoid = scores[[f"sigmoid:{name}" for name in metrics["labels"]]].to_numpy()
    logits = scores[[f"logit:{name}" for name in metrics["labels"]]].to_numpy()
    np.testing.assert_allclose(sigmoid, 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert np.abs(sigmoid.sum(axis=1) - 1).max() > 1e-2  # not a softmax


def test_pipeline_engine_refuses_pe_audio_in_one_line(monkeypatch, capsys, tmp_path):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=pe_tiny_random", "engine=pipeline",
                              f"output_dir={tmp_path / 'run'}")
    assert code == 2
    assert stderr.strip().count("\n") == 0
    assert "engine=pipeline cannot run" in stderr and "pe_audio models" in stderr and "use engine=embed" in stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_auto_model_reads_the_family_from_the_checkpoint(monkeypatch, capsys, tmp_path, tiny_model_dir, pe_dirs):
    for name, directory, family in [("clap_auto", tiny_model_dir, "clap"),
                                    ("pe_auto", pe_dirs["pe_audio_frame"], "pe_audio")]:
        code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "dataset.clips_per_class=1", "model=auto",
                                  f"model.name_or_path={directory}", f"model.name={name}",
                                  f"output_dir={tmp_path / name}")
        assert code == 0, stderr
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["family"] == family
    assert metrics["identity"]["family_settings"] == {"max_seconds": 30.0, "frame_level": True,
                                                      "frame_pooling": "max"}
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=auto")
    assert code == 2 and stderr.strip().count("\n") == 0
    assert "model auto has no model.name_or_path: set model.name_or_path=" in stderr


@pytest.mark.slow
def test_one_sweep_puts_both_families_in_one_leaderboard(monkeypatch, capsys, tmp_path):
    results = tmp_path / "results"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "-m", "dataset=synthetic", "dataset.clips_per_class=1",
                                   "model=tiny_random,pe_tiny_random", f"results_dir={results}")
    assert code == 0, stderr
    board = pd.read_csv(results / "leaderboard.csv")
    assert sorted(board["model"]) == ["pe_tiny_random", "tiny_random"]
    assert board.set_index("model")["family"].to_dict() == {"pe_tiny_random": "pe_audio", "tiny_random": "clap"}
    assert "| family " in (results / "leaderboard.md").read_text()
    families = {json.loads((results / run_dir / "metrics.json").read_text())["score_kind"] for run_dir in
                board["run_dir"]}
    assert families == {"softmax", "sigmoid"}


@pytest.mark.slow
def test_interrupted_pe_audio_run_resumes_to_the_same_results(monkeypatch, capsys, tmp_path):
    from zsa_eval.families.pe_audio import PeAudioFamily

    common = ["dataset=synthetic", "dataset.clips_per_class=2", "model=pe_tiny_random", "batch_size=4", "cache=false"]
    assert run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'whole'}")[0] == 0
    embed_audio, calls = PeAudioFamily.embed_audio, []

    def interrupted_on_the_second_batch(self, inputs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return embed_audio(self, inputs)

    monkeypatch.setattr(PeAudioFamily, "embed_audio", interrupted_on_the_second_batch)
    code, _, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'cut'}")
    assert code == 130 and "interrupted after 4 of 10 items" in stderr
    monkeypatch.setattr(PeAudioFamily, "embed_audio", embed_audio)
    assert run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'cut'}", "resume=true")[0] == 0
    resumed = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert resumed["resumed_items"] == 4
    columns = ["item_id", "predicted_label", "score"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "cut" / "predictions.csv")[columns],
                                  pd.read_csv(tmp_path / "whole" / "predictions.csv")[columns], atol=1e-6)
