"""Long recordings (zsa_eval/long_audio.py, conf/long_audio/): how each policy splits a clip, that a pooled
embedding is the duration-weighted mean of its windows embedded one at a time, that `center` is deterministic, that
cache entries, run identities and metrics.json carry the policy, that batch size, workers, resume and torchrun do
not change results, that every task and frame-level PE-Audio work with windows, and that bad values are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import ClapModel

from conftest import compose_config, count_encoded_clips, noise, run_cli, run_cli_in_a_shared_fixture, tone
from zsa_eval.audio import load_clip
from zsa_eval.cache import EmbeddingCache, model_fingerprint
from zsa_eval.config import checked
from zsa_eval.engine import embed_clips, score_clips, text_embeddings
from zsa_eval.errors import UserError
from zsa_eval.long_audio import LongAudio, long_audio_policy, summary_note
from zsa_eval.models import load_model
from zsa_eval.random_models import build_random_pe
from zsa_eval.run import audio_cache, load_scorer

RATE = 48000
CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parent.parent


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.4 * np.sin(2 * np.pi * (200 + 900 * t) * t)).astype(np.float32)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> str:
    """35 s at 48 kHz in four distinct segments: a low tone, noise, a high tone (10 s each), a 5 s chirp."""
    path = tmp_path_factory.mktemp("long") / "four_segments.wav"
    sf.write(path, np.concatenate([tone(220.0, RATE, 10.0), noise(3, RATE, 10.0), tone(2500.0, RATE, 10.0),
                                   chirp(5.0)]), RATE, subtype="FLOAT")
    return str(path)


def policy(loaded, name: str = "windows", **settings) -> LongAudio:
    return long_audio_policy({"name": name, **settings}, loaded.family.window_seconds, loaded.sampling_rate,
                             loaded.name)


def embedded(loaded, paths: list[str], long_audio: LongAudio | None, batch_size: int = 4, num_workers: int = 0,
             seed: int = 0, featurizer: str = "workers") -> tuple[list[torch.Tensor], list[dict]]:
    """Each clip's audio embedding through the engine, and its windows' record, in clip order."""
    batches = list(embed_clips(loaded, paths, [Path(path).name for path in paths], batch_size, num_workers, seed,
                               False, None, featurizer, long_audio))
    rows = sorted((index, audio, windows) for batch in batches
                  for index, audio, windows in zip(batch.indices, batch.audio, batch.clip_windows))
    assert [index for index, _, _ in rows] == list(range(len(paths)))
    return [audio for _, audio, _ in rows], [windows for _, _, windows in rows]


def alone(loaded, waveform: np.ndarray, seed: int = 0) -> torch.Tensor:
    """The family's embedding of one waveform prepared and encoded on its own."""
    family = loaded.family
    return family.embed_audio(family.collate([family.preparer(CPU)(waveform, seed)]))[0]


def test_windows_cover_the_clip_and_the_last_one_may_be_short():
    windows = LongAudio("windows", 10, window=100, hop=100)
    split = windows.split(350)
    assert split.spans == ((0, 100), (100, 200), (200, 300), (300, 350)) and split.weights == [100, 100, 100, 50]
    assert (split.longer, split.capped, split.record()) == (True, False, {"windows": 4, "longer": True,
                                                                          "capped": False})
    assert windows.split(300).spans == ((0, 100), (100, 200), (200, 300))  # no empty window after the end
    assert LongAudio("windows", 10, 100, hop=50).split(350).spans[-2:] == ((200, 300), (250, 350))
    capped = LongAudio("windows", 10, 100, hop=100, max_windows=2).split(350)
    assert capped.spans == ((0, 100), (100, 200)) and capped.capped
    for name in ("windows", "center", "native"):  # a clip no longer than the window is heard whole
        assert LongAudio(name, 10, 100, 100).split(100).spans == ((0, 100),)
        assert not LongAudio(name, 10, 100, 100).split(100).longer
    assert LongAudio("center", 10, 100).split(351).spans == ((125, 225),)
    native = LongAudio("native", 10, 100).split(351)
    assert native.spans == ((0, 351),) and native.longer  # the family's preprocessing takes the whole clip


def test_metrics_count_the_records_and_the_summary_names_the_counts():
    long_audio = LongAudio("windows", 10, 100, 50, 3)
    records = [{"windows": 1, "longer": False, "capped": False}, {"windows": 3, "longer": True, "capped": True},
               {"windows": 2, "longer": True, "capped": False, "cached": True}]
    counts = long_audio.counts(records, "only the first 10 s heard")  # native's alone
    assert counts == {"policy": "windows", "window_s": 10.0, "hop_s": 5.0, "max_windows": 3, "n_clips_longer": 2,
                      "n_windows": 6, "n_windows_encoded": 4, "n_clips_capped": 1}
    assert summary_note(counts) == (" (long_audio=windows: 2 clips longer than the 10 s window, 4 windows encoded, "
                                    "1 cut to max_windows=3)")
    native = LongAudio("native", 10, 100)
    heard_whole = [{"windows": 1, "longer": longer, "capped": False} for longer in (False, True, True)]
    heard = "only the first 10 s heard"  # the family's words
    assert summary_note(native.counts(heard_whole[:1], heard)) == ""  # nothing long: the line is as before
    assert native.counts(heard_whole, heard)["long_clips_heard"] == heard
    assert summary_note(native.counts(heard_whole, heard)) == (" (long_audio=native: 2 clips longer than the 10 s "
                                                               "window, only the first 10 s heard)")
    earlier = {key: value for key, value in native.counts(heard_whole, heard).items() if key != "long_clips_heard"}
    assert summary_note(earlier).endswith("window, heard the model's own way)")  # a run from before the key
    assert native.identity() == {} and long_audio.identity() == {"long_audio": long_audio.settings()}


def test_a_window_or_hop_that_cannot_work_is_refused():
    for settings, message in [({"name": "windows", "hop_s": 12.0}, "long_audio.hop_s=12 is longer than the 10 s"),
                              ({"name": "center", "window_s": 11.0}, "long_audio.window_s=11 is longer than the 10 s"),
                              ({"name": "windows", "hop_s": 1e-9}, "shorter than one sample")]:
        with pytest.raises(UserError, match=message):
            long_audio_policy(settings, 10.0, RATE, "m")
    with pytest.raises(UserError, match="model m has no window of its own; set long_audio.window_s"):
        long_audio_policy({"name": "windows"}, None, RATE, "m")
    assert long_audio_policy({"name": "windows", "window_s": 4.0}, None, RATE, "m").window == 4 * RATE


@pytest.mark.slow
def test_a_35_s_clip_pools_its_four_windows_weighted_by_duration(tiny_model, long_clip):
    windows = policy(tiny_model)
    assert (windows.window, windows.hop) == (10 * RATE, 10 * RATE)
    (pooled,), (record,) = embedded(tiny_model, [long_clip], windows, batch_size=3)  # windows span two batches
    assert record == {"windows": 4, "longer": True, "capped": False}
    waveform = load_clip(long_clip, RATE)
    segments = [alone(tiny_model, waveform[start * RATE:(start + 10) * RATE]) for start in (0, 10, 20, 30)]
    normalized = torch.stack([segment / segment.norm() for segment in segments])
    mean = (torch.tensor([10.0, 10.0, 10.0, 5.0])[:, None] * normalized).sum(dim=0) / 35
    np.testing.assert_allclose(pooled.numpy(), (mean / mean.norm()).numpy(), atol=1e-5, rtol=0)
    distances = [float((pooled - segment).abs().max()) for segment in normalized]
    assert min(distances) > 1e-3  # the segments differ, and the pooled embedding is none of them
    (native,), (native_record,) = embedded(tiny_model, [long_clip], None)
    assert float((native - pooled).abs().max()) > 1e-3
    assert native_record == {"windows": 1, "longer": True, "capped": False}


@pytest.mark.slow
def test_center_hears_the_middle_window_whatever_the_seed(tiny_model, long_clip):
    center = policy(tiny_model, "center")
    (first,), (record,) = embedded(tiny_model, [long_clip], center, seed=0)
    (second,), _ = embedded(tiny_model, [long_clip], center, seed=5)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    waveform = load_clip(long_clip, RATE)
    start = (len(waveform) - 10 * RATE) // 2
    np.testing.assert_allclose(first.numpy(), alone(tiny_model, waveform[start:start + 10 * RATE]).numpy(),
                               atol=1e-5, rtol=0)
    assert record == {"windows": 1, "longer": True, "capped": False}
    (native_0,), _ = embedded(tiny_model, [long_clip], None, seed=0)
    (native_5,), _ = embedded(tiny_model, [long_clip], None, seed=5)
    assert float((native_0 - native_5).abs().max()) > 1e-4  # native's crops follow the seed; center's window not


@pytest.fixture(scope="module")
def mixed_clips(tmp_path_factory) -> list[str]:
    """Four clips of 5.5, 1, 4 and 7.25 s at 44.1 kHz (resampled): with 2 s windows 1.5 s apart, 13 windows."""
    folder = tmp_path_factory.mktemp("mixed")
    paths = []
    for number, (seconds, wave) in enumerate([(5.5, chirp), (1.0, lambda s: tone(500.0, 44100, s)),
                                              (4.0, lambda s: noise(5, 44100, s)), (7.25, chirp)]):
        paths.append(str(folder / f"{number}.wav"))
        sf.write(paths[-1], wave(seconds), 44100)
    return paths


@pytest.mark.slow
def test_batch_size_workers_and_featurizer_do_not_change_pooled_embeddings(tiny_model, mixed_clips):
    windows = policy(tiny_model, window_s=2.0, hop_s=1.5)
    reference, records = embedded(tiny_model, mixed_clips, windows, batch_size=1)
    assert [record["windows"] for record in records] == [4, 1, 3, 5]
    for batch_size, num_workers, featurizer in ((3, 2, "workers"), (16, 0, "device")):
        audio, again = embedded(tiny_model, mixed_clips, windows, batch_size, num_workers, featurizer=featurizer)
        assert again == records
        np.testing.assert_allclose(torch.stack(audio).numpy(), torch.stack(reference).numpy(), atol=1e-5, rtol=0)


def test_a_long_clips_windows_are_prepared_a_chunk_at_a_time(tiny_model, long_clip, monkeypatch):
    """The inputs held at once do not grow with the clip: its windows are prepared `batch_size` at a time, each
    chunk encoded before the next is prepared (one-window clips are prepared in the DataLoader, as before)."""
    family = tiny_model.family
    events = []
    preparer, embed = family.preparer, family.embed_audio

    def counting_preparer(device):
        prepare = preparer(device)
        return lambda waveform, seed: events.append("prepare") or prepare(waveform, seed)

    monkeypatch.setattr(family, "preparer", counting_preparer)
    monkeypatch.setattr(family, "embed_audio", lambda inputs: events.append(len(inputs["is_longer"])) or embed(inputs))
    (pooled,), (record,) = embedded(tiny_model, [long_clip], policy(tiny_model, window_s=2.0), batch_size=3)
    assert record["windows"] == 18
    assert events == (["prepare"] * 3 + [3]) * 6
    monkeypatch.setattr(family, "preparer", preparer)
    monkeypatch.setattr(family, "embed_audio", embed)
    np.testing.assert_allclose(pooled.numpy(), embedded(tiny_model, [long_clip], policy(tiny_model, window_s=2.0),
                                                        batch_size=18)[0][0].numpy(), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def pe_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pe_models")
    return {layout: build_random_pe("tiny", layout, root / layout) for layout in ("pe_audio_video", "pe_audio_frame")}


@pytest.mark.slow
def test_a_frame_level_pe_model_hears_every_window_frame_by_frame(pe_dirs, tmp_path):
    loaded = load_model("pe_frame", str(pe_dirs["pe_audio_frame"]), CPU, "fp32", max_seconds=1,
                        frame_pooling="max")
    path = str(tmp_path / "clip.wav")
    sf.write(path, np.concatenate([tone(300.0, RATE, 1.0), noise(2, RATE, 1.0), chirp(0.5)]), RATE,
             subtype="FLOAT")
    windows = policy(loaded)
    assert windows.window == RATE  # the family's window: model.max_seconds
    (frames,), (record,) = embedded(loaded, [path], windows, batch_size=2)
    waveform = load_clip(path, RATE)
    expected = torch.cat([alone(loaded, waveform[start:stop]) for start, stop in ((0, RATE), (RATE, 2 * RATE),
                                                                                   (2 * RATE, len(waveform)))])
    assert frames.shape[0] == 25 + 25 + 13 and record["windows"] == 3  # 40 ms frames, the last one padded
    np.testing.assert_allclose(frames.numpy(), expected.numpy(), atol=1e-5, rtol=0)
    labels, prompts = ["low hum", "rain"], ["This is a sound of {}."]
    (batch,) = score_clips(loaded, [path], ["clip"], labels, prompts, "embed", 2, 0, 0, False, long_audio=windows)
    with torch.inference_mode():
        classifier = text_embeddings(loaded, labels, prompts)
        frame_logits = (expected @ classifier.T * loaded.model.text_audio_logit_scale
                        + loaded.model.text_audio_logit_bias)
    np.testing.assert_allclose(batch.logits[0], frame_logits.max(dim=0).values.numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_a_pe_clip_logit_is_the_duration_weighted_mean_of_its_windows_logits(pe_dirs, tmp_path):
    loaded = load_model("pe", str(pe_dirs["pe_audio_video"]), CPU, "fp32", max_seconds=30)
    path = str(tmp_path / "clip.wav")
    sf.write(path, np.concatenate([noise(4, RATE, 0.8), tone(900.0, RATE, 0.5)]), RATE, subtype="FLOAT")
    windows = policy(loaded, window_s=0.5)
    labels, prompts = ["low hum", "rain", "dog"], ["This is a sound of {}."]
    (batch,) = score_clips(loaded, [path], ["clip"], labels, prompts, "embed", 4, 0, 0, False, long_audio=windows)
    waveform = load_clip(path, RATE)
    spans = [(0, RATE // 2), (RATE // 2, RATE), (RATE, len(waveform))]
    with torch.inference_mode():
        classifier = text_embeddings(loaded, labels, prompts)
        window_logits = torch.cat([loaded.family.logits([alone(loaded, waveform[start:stop])], classifier)
                                   for start, stop in spans])
    weights = torch.tensor([stop - start for start, stop in spans], dtype=torch.float32)
    expected = (weights[:, None] * window_logits).sum(dim=0) / weights.sum()
    np.testing.assert_allclose(batch.logits[0], expected.numpy(), atol=1e-4, rtol=0)
    assert float((window_logits[0] - window_logits[2]).abs().max()) > 1e-3  # the windows are heard apart


@pytest.mark.slow
def test_cache_entries_differ_by_policy(tiny_model_dir, tmp_path):
    settings = {"native": [], "windows": ["long_audio=windows"],
                "windows hop 5": ["long_audio=windows", "long_audio.hop_s=5"],
                "windows max 2": ["long_audio=windows", "long_audio.max_windows=2"],
                "center": ["long_audio=center"], "center 4 s": ["long_audio=center", "long_audio.window_s=4"]}
    folders = {}
    for name, overrides in settings.items():
        cfg = checked(compose_config("model=tiny_random", f"model.name_or_path={tiny_model_dir}",
                                     f"cache_dir={tmp_path}", *overrides))
        loaded = load_scorer(cfg, CPU)
        long_audio = long_audio_policy(cfg.long_audio, loaded.family.window_seconds, loaded.sampling_rate,
                                       cfg.model.name)
        folders[name] = audio_cache(cfg, loaded, long_audio).folder
    assert len(set(folders.values())) == len(settings)
    plain = model_fingerprint(loaded.family.cache_identity())
    assert folders["native"] == EmbeddingCache(tmp_path / "audio_embeddings", plain).folder  # native adds nothing


def write_long_folder(root: Path) -> Path:
    """An audiofolder of 4 clips (0.5, 1.5, 2.6 and 3.2 s) with a metadata.csv holding a label, a label set and a
    caption per clip: with 1 s windows and max_windows=3, 1 + 2 + 3 + 3 windows, 3 clips longer, 1 cut."""
    root.mkdir()
    rows = []
    for number, (seconds, label) in enumerate([(0.5, "hum"), (1.5, "hiss"), (2.6, "hum"), (3.2, "hiss")]):
        wave = tone(200.0 * (number + 1), RATE, seconds) if label == "hum" else noise(number, RATE, seconds)
        sf.write(root / f"clip{number}.wav", wave, RATE)
        rows.append({"file_name": f"clip{number}.wav", "label": label, "labels": f"{label}+sound",
                     "caption": f"a {label} number {number}"})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


WINDOWS = ["long_audio=windows", "long_audio.window_s=1", "long_audio.max_windows=3"]
EXPECTED_COUNTS = {"policy": "windows", "window_s": 1.0, "hop_s": 1.0, "max_windows": 3, "n_clips_longer": 3,
                   "n_windows": 9, "n_windows_encoded": 9, "n_clips_capped": 1}
TASKS = {"classification": ["dataset=audiofolder"],
         "multilabel": ["dataset=audiofolder", "dataset.task=multilabel", "dataset.label_column=labels",
                        "dataset.label_delimiter=+"],
         "retrieval": ["dataset=captions_folder"]}


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_every_task_gets_the_pooled_embeddings_and_counts_the_windows(task, tiny_model, tiny_model_dir, tmp_path,
                                                                       monkeypatch, capsys):
    folder = write_long_folder(tmp_path / "sounds")
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(monkeypatch, capsys, *TASKS[task], f"dataset.path={folder}", "model=tiny_random",
                                   *WINDOWS, "save_embeddings=true", "cache=false", "batch_size=2",
                                   f"output_dir={out}", f"results_dir={tmp_path}")
    assert code == 0, stderr
    assert "(long_audio=windows: 3 clips longer than the 1 s window, 9 windows encoded, 1 cut to max_windows=3)" \
        in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["long_audio"] == EXPECTED_COUNTS
    assert metrics["identity"]["long_audio"] == {key: EXPECTED_COUNTS[key]
                                                 for key in ("policy", "window_s", "hop_s", "max_windows")}
    items = pd.read_csv(out / "embeddings" / "audio_items.csv")["item_id"].tolist()
    paths = [str(folder / item) for item in items]
    expected, records = embedded(tiny_model, paths, policy(tiny_model, window_s=1.0, max_windows=3))
    np.testing.assert_allclose(np.load(out / "embeddings" / "audio.npy"), torch.stack(expected).numpy(), atol=1e-5,
                               rtol=0)
    assert sorted(record["windows"] for record in records) == [1, 2, 3, 3]


@pytest.mark.slow
def test_a_rerun_takes_the_pooled_embeddings_from_the_cache_and_still_counts_the_windows(tiny_model_dir, tmp_path,
                                                                                        monkeypatch, capsys):
    folder = write_long_folder(tmp_path / "sounds")
    common = ["dataset=audiofolder", f"dataset.path={folder}", "model=tiny_random",
              f"model.name_or_path={tiny_model_dir}", f"cache_dir={tmp_path / 'cache'}", f"results_dir={tmp_path}"]
    runs = {}
    for name, overrides in [("windows", WINDOWS), ("again", WINDOWS), ("native", [])]:
        code, _, stderr = run_cli(monkeypatch, capsys, *common, *overrides, f"output_dir={tmp_path / name}")
        assert code == 0, stderr
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert (runs["windows"]["cache_hits"], runs["again"]["cache_hits"], runs["native"]["cache_hits"]) == (0, 4, 0)
    assert runs["again"]["long_audio"] == EXPECTED_COUNTS | {"n_windows_encoded": 0}
    predictions = [(tmp_path / name / "predictions.csv").read_bytes() for name in ("windows", "again")]
    assert predictions[0] == predictions[1]
    assert runs["native"]["long_audio"]["n_clips_longer"] == 0  # no clip is longer than CLAP's own 10 s
    board = pd.read_csv(tmp_path / "leaderboard.csv")  # the two policies are two rows, told apart
    assert sorted(board["engine"]) == ["embed", "embed, long_audio=windows window_s=1 hop_s=1 max_windows=3"]


@pytest.mark.slow
def test_an_interrupted_windows_run_resumes_with_the_same_results_and_counts(tiny_model_dir, tmp_path, monkeypatch):
    from zsa_eval.run import run

    folder = write_long_folder(tmp_path / "sounds")
    out = tmp_path / "run"
    overrides = ["dataset=audiofolder", f"dataset.path={folder}", "model=tiny_random", *WINDOWS, "cache=false",
                 "batch_size=2", f"output_dir={out}", f"results_dir={tmp_path}"]
    complete = run(compose_config(*overrides))
    predictions = (out / "predictions.csv").read_bytes()
    lines = (out / "progress.jsonl").read_text().splitlines(keepends=True)
    (out / "progress.jsonl").write_text("".join(lines[:2]))  # the first batch (clips of 1 and 2 windows) was logged
    (out / "metrics.json").unlink()
    encoded = count_encoded_clips(monkeypatch, ClapModel)
    resumed = run(compose_config(*overrides, "resume=true"))
    assert sum(encoded) == 3 + 3  # only the unfinished clips' windows
    assert resumed["long_audio"] == complete["long_audio"] == EXPECTED_COUNTS
    assert (out / "predictions.csv").read_bytes() == predictions


@pytest.mark.slow
def test_torchrun_shards_the_clips_and_counts_every_window_once(tiny_model_dir, tmp_path):
    folder = write_long_folder(tmp_path / "sounds")
    common = ["dataset=audiofolder", f"dataset.path={folder}", "model=tiny_random", *WINDOWS, "cache=false",
              "batch_size=2", f"results_dir={tmp_path}", "progress=false"]
    code, _, stderr = run_cli_in_a_shared_fixture(*common, f"output_dir={tmp_path / 'single'}")  # the reference
    assert code == 0, stderr
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "zsa_eval", *common, f"output_dir={tmp_path / 'double'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert double.returncode == 0, double.stderr
    metrics = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("single", "double")}
    assert metrics["double"]["processes"] == 2
    assert metrics["double"]["long_audio"] == metrics["single"]["long_audio"] == EXPECTED_COUNTS
    scores = [pd.read_parquet(tmp_path / name / "scores.parquet") for name in ("single", "double")]
    np.testing.assert_allclose(scores[1].filter(like="logit:").to_numpy(), scores[0].filter(like="logit:").to_numpy(),
                               atol=1e-5, rtol=0)


CONFIG_MISTAKES = [
    (["long_audio=windows", "long_audio.hop_s=0"], "long_audio.hop_s=0 is not valid: long_audio.hop_s takes a number "
     "above 0, or null"),
    (["long_audio=windows", "long_audio.hop_s=-2.5"], "long_audio.hop_s=-2.5 is not valid"),
    (["long_audio=sliding"], "unknown long_audio 'sliding': choose one of center, native, windows"),
    (["long_audio.name=sliding"], "long_audio.name=sliding is not valid: long_audio.name takes one of native, "
     "windows, center"),
    (["long_audio.hop_s=5"], "long_audio.hop_s is a setting of long_audio=windows: choose that policy"),
    (["+long_audio.hop_s=5"], "long_audio.hop_s is a setting of long_audio=windows: choose that policy"),
    (["long_audio=center", "long_audio.max_windows=4"], "long_audio.max_windows is a setting of long_audio=windows"),
    (["long_audio=windows", "long_audio.max_windows=0"], "long_audio.max_windows=0 is not valid"),
    (["long_audio=center", "engine=pipeline"], "long_audio=center needs engine=embed"),
    (["long_audio=windows", "long_audio.hop_s=15"], "long_audio.hop_s=15 is longer than the 10 s window: the audio "
     "between windows would go unheard; use long_audio.hop_s=10 or less"),
    (["long_audio=center", "long_audio.window_s=30"], "long_audio.window_s=30 is longer than the 10 s model "
     "tiny_random hears at once"),
    (["long_audio=windows", "long_audio.window_s=0.001"], "long_audio.window_s=0.001 is shorter than one 0.02133 s "
     "frame of model tiny_random's features; use long_audio.window_s=0.02133 or more"),
    (["long_audio=windows", "long_audio.hop_s=0.01"], "long_audio.hop_s=0.01 is shorter than one 0.02133 s frame"),
]


@pytest.mark.parametrize("overrides, message", CONFIG_MISTAKES)
def test_bad_long_audio_settings_are_one_line_and_exit_2(overrides, message, audiofolder, tiny_model_dir, tmp_path,
                                                         monkeypatch, capsys):
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={audiofolder}",
                                   "model=tiny_random", *overrides, f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("zsa-eval: error: ") and message in stderr, stderr
    assert not (tmp_path / "run").exists()
