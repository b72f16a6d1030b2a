"""Text-audio retrieval: the metrics on a hand-worked example (ties, the AP@10 cut, intervals), captions grouped by
clip from a local folder and from Hub-shaped parquet (Clotho: a list per clip; AudioCaps: a row per caption), and a
Clotho-shaped folder (5 captions per clip, one bad file) run end to end with both families, checked against the
models' own forward and a brute-force count of the definitions; resume; the leaderboard beside classification."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from transformers import ClapModel, PeAudioFeatureExtractor

from conftest import compose_config, count_encoded_clips, reference_features, run_cli, tone
from zsa_eval.config import checked
from zsa_eval.clips import clip_seed
from zsa_eval.errors import RunInterrupted, UserError
from zsa_eval.stats import bootstrap_indices, percentile_interval
from zsa_eval.tasks.retrieval import (
    rank_queries,
    ranks_table,
    recall_curve,
    retrieval_metrics,
    retrieval_summary,
    retrieve,
)
from zsa_eval.run import build, run

RATE = 48000
CLIPS = 4
CAPTIONS_PER_CLIP = 5
WORDS = ["dog", "rain", "engine", "bird", "water", "door", "wind", "bell"]

# Hand-worked example: 3 clips x 5 captions (c0, c1 describe clip 0; c2, c3 clip 1; c4 clip 2).
SIMILARITY = np.array([[0.9, 0.2, 0.5, 0.1, 0.5],
                       [0.3, 0.8, 0.7, 0.4, 0.0],
                       [0.3, 0.1, 0.6, 0.9, 0.2]], dtype=np.float32)
CAPTION_CLIPS = np.array([0, 0, 1, 1, 2])


def test_hand_worked_ranks_and_metrics():
    """Text to audio (a column each, clips ranked, ties to the lower clip index):
    c0 [.9 .3 .3] -> clip0 1st; c1 [.2 .8 .1] -> clip0 2nd; c2 [.5 .7 .6] -> clip1 1st; c3 [.1 .4 .9] -> clip1 2nd;
    c4 [.5 .0 .2] -> clip2 2nd.  Best ranks 1 2 1 2 2: R@1 2/5, R@5 = R@10 = 1, mAP@10 (1 + 1/2 + 1 + 1/2 + 1/2) / 5
    = 0.7, median rank 2, mean rank 8/5.
    Audio to text (a row each, captions ranked, ties to the lower caption index):
    clip0 [.9 .2 .5 .1 .5] -> order c0 c2 c4 c1 c3 (c2 and c4 tie): its c0, c1 rank 1, 4: AP (1/1 + 2/4) / 2 = 0.75;
    clip1 [.3 .8 .7 .4 .0] -> c1 c2 c3 c0 c4: its c2, c3 rank 2, 3: AP (1/2 + 2/3) / 2 = 7/12;
    clip2 [.3 .1 .6 .9 .2] -> c3 c2 c0 c4 c1: its c4 ranks 4: AP 1/4.
    Best ranks 1 2 4: R@1 1/3, R@5 = R@10 = 1, mAP@10 (3/4 + 7/12 + 1/4) / 3 = 19/36, median 2, mean 7/3."""
    retrieval = retrieve(SIMILARITY, CAPTION_CLIPS)
    assert retrieval.t2a.best_ranks.tolist() == [1, 2, 1, 2, 2]
    assert [ranks.tolist() for ranks in retrieval.a2t.relevant_ranks] == [[1, 4], [2, 3], [4]]
    assert retrieval.a2t.top.tolist() == [[0, 2, 4, 1, 3], [1, 2, 3, 0, 4], [3, 2, 0, 4, 1]]
    assert retrieval.t2a.top.tolist() == [[0, 1, 2], [1, 0, 2], [1, 2, 0], [2, 1, 0], [0, 2, 1]]
    metrics = retrieval_metrics(retrieval)
    expected = {"t2a_recall_at_1": 0.4, "t2a_recall_at_5": 1.0, "t2a_recall_at_10": 1.0, "t2a_map_at_10": 0.7,
                "t2a_median_rank": 2.0, "t2a_mean_rank": 1.6, "t2a_n_queries": 5,
                "a2t_recall_at_1": 1 / 3, "a2t_recall_at_5": 1.0, "a2t_recall_at_10": 1.0, "a2t_map_at_10": 19 / 36,
                "a2t_median_rank": 2.0, "a2t_mean_rank": 7 / 3, "a2t_n_queries": 3}
    assert {key: metrics[key] for key in expected} == pytest.approx(expected)


def test_recall_cuts_and_ap_at_10_sort_ranks_and_ignore_those_beyond_10():
    """12 candidates; relevant 0 and 1 with candidate 1 ranked 1st and candidate 0 6th: AP@10 = (1/1 + 2/6) / 2
    (ranks sorted first, as laion_clap's docstring and Mei et al. say; laion_clap's code, which keeps caption order,
    would give (1/6 + 2/1) / 2). Relevant 2, 5, 8 ranked 3, 7, 11: best 3, AP@10 = (1/3 + 2/7) / 3 (rank 11 is beyond
    10 but still counts in the denominator)."""
    scores = np.zeros((2, 12), dtype=np.float32)
    scores[0] = [7, 12, 11, 10, 9, 8, 6, 5, 4, 3, 2, 1]  # candidate 1 first, candidate 0 sixth
    scores[1, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]] = [12, 11, 10, 9, 8, 6, 7, 5, 2, 4, 3, 1]
    queries = rank_queries(scores, [[0, 1], [2, 5, 8]])
    assert [ranks.tolist() for ranks in queries.relevant_ranks] == [[1, 6], [3, 7, 11]]
    assert queries.average_precision == pytest.approx([(1 + 2 / 6) / 2, (1 / 3 + 2 / 7) / 3])
    assert queries.best_ranks.tolist() == [1, 3]


def test_equal_scores_rank_in_candidate_order():
    """All scores equal: candidate j ranks j + 1 for every query."""
    queries = rank_queries(np.ones((3, 6), dtype=np.float32), [[5], [0], [2, 4]])
    assert [ranks.tolist() for ranks in queries.relevant_ranks] == [[6], [1], [3, 5]]
    assert queries.top.tolist() == [[0, 1, 2, 3, 4]] * 3


def test_intervals_are_the_percentiles_of_metrics_recomputed_on_resampled_queries():
    """Brute force: each resample's queries taken by hand from the same indices, the metric recomputed from them."""
    rng = np.random.default_rng(3)
    similarity = rng.normal(size=(7, 21)).astype(np.float32)
    caption_clips = np.repeat(np.arange(7), 3)
    metrics = retrieval_metrics(retrieve(similarity, caption_clips), resamples=200, seed=5)
    retrieval = retrieve(similarity, caption_clips)
    best = retrieval.t2a.best_ranks
    indices = bootstrap_indices(len(best), 200, 5)
    recall_5 = [np.mean([best[i] <= 5 for i in row]) for row in indices]
    median = [np.floor(np.median([best[i] for i in row])) for row in indices]
    assert metrics["t2a_recall_at_5_ci95"] == pytest.approx(percentile_interval(np.array(recall_5)))
    assert metrics["t2a_median_rank_ci95"] == pytest.approx(percentile_interval(np.array(median)))
    for name in ("recall_at_1", "recall_at_10", "map_at_10", "mean_rank"):
        for direction in ("t2a", "a2t"):
            low, high = metrics[f"{direction}_{name}_ci95"]
            assert low <= metrics[f"{direction}_{name}"] <= high


def caption_of(clip: int, number: int) -> str:
    return f"a {WORDS[clip]} and a {WORDS[(clip + number + 1) % len(WORDS)]} heard {number} times"


@pytest.fixture
def clotho_folder(tmp_path):
    """A Clotho-shaped captions folder: 4 clips (48 kHz) x 5 captions in metadata.csv, one row per caption, plus
    a corrupt clip with its own 5 captions and a README the listing ignores."""
    root = tmp_path / "captioned"
    root.mkdir()
    rows = []
    for clip in range(CLIPS):
        sf.write(root / f"clip{clip}.wav", tone(250.0 * (clip + 1), RATE, seconds=0.4 + 0.1 * clip), RATE)
        rows += [{"file_name": f"clip{clip}.wav", "caption": caption_of(clip, n)} for n in range(CAPTIONS_PER_CLIP)]
    (root / "broken.wav").write_bytes(b"RIFF not really")
    rows += [{"file_name": "broken.wav", "caption": f"nothing {n}"} for n in range(CAPTIONS_PER_CLIP)]
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    (root / "README.txt").write_text("captions for the test")
    return root


def reference_logits(cfg, folder) -> np.ndarray:
    """The model's own forward (transformers) over every clip alone and all captions together: (clips, captions)
    logits, CLAP's logits_per_audio or PE-Audio's logits_audio_text."""
    model_cfg = checked(cfg).model
    loaded = build(model_cfg, device=torch.device("cpu"), precision="fp32")
    captions = [caption_of(clip, n) for clip in range(CLIPS) for n in range(CAPTIONS_PER_CLIP)]
    tokens = loaded.tokenizer(captions, padding=True, return_tensors="pt")
    rows = []
    with torch.no_grad():
        for clip in range(CLIPS):
            waveform, _ = sf.read(folder / f"clip{clip}.wav", dtype="float32")
            if loaded.family.name == "clap":
                features, is_longer = reference_features(loaded.feature_extractor, waveform,
                                                         clip_seed(0, f"clip{clip}.wav"))
                if loaded.family.short_clip_fusion == "laion":  # laion_clap's evaluation fuses no clip of <= 10 s
                    is_longer = is_longer and len(waveform) > loaded.feature_extractor.nb_max_samples
                output = loaded.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                      input_features=torch.from_numpy(features)[None],
                                      is_longer=torch.tensor([[is_longer]]))
                rows.append(output.logits_per_audio[0])
            else:
                inputs = PeAudioFeatureExtractor()(waveform, sampling_rate=RATE, return_tensors="pt")
                rows.append(loaded.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                                         **inputs).logits_audio_text[0])
    return torch.stack(rows).numpy()


def brute_force_metrics(similarity: np.ndarray, caption_clips: np.ndarray) -> dict:
    """The documented definitions counted one query at a time: rank = 1 + candidates scored higher + candidates
    scored equal and listed earlier."""
    def rank(scores: np.ndarray, target: int) -> int:
        return 1 + sum(score > scores[target] or (score == scores[target] and index < target)
                       for index, score in enumerate(scores))

    t2a = [rank(similarity[:, caption], clip) for caption, clip in enumerate(caption_clips)]
    a2t_ranks = [sorted(rank(similarity[clip], caption) for caption in np.flatnonzero(caption_clips == clip))
                 for clip in range(similarity.shape[0])]
    a2t_ap = [sum(number / r for number, r in enumerate(ranks, 1) if r <= 10) / len(ranks) for ranks in a2t_ranks]
    expected = {}
    for direction, best, ap in (("t2a", t2a, [1 / r if r <= 10 else 0.0 for r in t2a]),
                                ("a2t", [ranks[0] for ranks in a2t_ranks], a2t_ap)):
        expected |= {f"{direction}_recall_at_{k}": np.mean([r <= k for r in best]) for k in (1, 5, 10)}
        expected |= {f"{direction}_map_at_10": np.mean(ap), f"{direction}_median_rank": np.floor(np.median(best)),
                     f"{direction}_mean_rank": np.mean(best)}
    return expected


@pytest.mark.parametrize("model", ["tiny_random", "pe_tiny_random"])
def test_clotho_shaped_folder_runs_end_to_end(model, tiny_model_dir, clotho_folder, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    arguments = ["dataset=captions_folder", f"dataset.path={clotho_folder}", f"model={model}",
                 f"results_dir={results}", f"output_dir={results / 'run'}", "batch_size=3", "max_skip_fraction=0.5"]
    code, stdout, stderr = run_cli(monkeypatch, capsys, *arguments)
    assert code == 0, stderr
    assert stdout.startswith(f"captions_folder | {model} | retrieval: T2A R@1 ")
    assert "on 4 of 5 clips (20 captions), 1 skipped" in stdout
    run_dir = results / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    reference = reference_logits(compose_config(*arguments), clotho_folder)
    expected = brute_force_metrics(reference, np.repeat(np.arange(CLIPS), CAPTIONS_PER_CLIP))
    assert {key: metrics[key] for key in expected} == pytest.approx(expected)
    assert metrics["task"] == "retrieval" and metrics["status"] == "complete"
    assert (metrics["n_items"], metrics["n_evaluated"], metrics["n_skipped"]) == (5, 4, 1)
    assert (metrics["n_captions"], metrics["n_captions_evaluated"], metrics["n_captions_skipped"]) == (25, 20, 5)
    assert (metrics["t2a_n_queries"], metrics["a2t_n_queries"]) == (20, 4)
    assert metrics["identity"]["task"] == "retrieval" and "template" not in metrics["identity"]
    errors = pd.read_csv(run_dir / "errors.csv")
    assert errors[["item_id", "reason"]].values.tolist() == [["broken.wav", "undecodable audio"]]
    assert pd.read_csv(run_dir / "ignored_files.csv")["path"].tolist() == ["README.txt", "metadata.csv"]
    ranks = pd.read_csv(run_dir / "ranks.csv", keep_default_na=False)
    assert ranks["direction"].value_counts().to_dict() == {"text_to_audio": 20, "audio_to_text": 4}
    t2a = ranks[ranks["direction"] == "text_to_audio"]
    assert t2a["query"].tolist() == [caption_of(clip, n) for clip in range(CLIPS) for n in range(CAPTIONS_PER_CLIP)]
    assert t2a["query_id"].iloc[6] == "clip1.wav#1"
    expected_top = [f"clip{clip}.wav" for clip in np.argsort(-reference[:, 6], kind="stable")]
    assert t2a.iloc[6][["top1", "top2", "top3", "top4"]].tolist() == expected_top
    a2t = ranks[ranks["direction"] == "audio_to_text"]
    assert a2t["rank"].mean() == pytest.approx(metrics["a2t_mean_rank"])
    board = pd.read_csv(results / "leaderboard.csv")
    assert board[["task", "t2a_recall_at_1", "a2t_map_at_10"]].values.tolist() == [
        ["retrieval", metrics["t2a_recall_at_1"], metrics["a2t_map_at_10"]]]
    markdown = (results / "leaderboard.md").read_text()
    assert "| T2A R@1 [95% CI]" in markdown and "accuracy" not in markdown and "template" not in markdown
    assert not (results / "leaderboard_heatmap.png").exists()  # no classification row to draw
    assert (run_dir / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_an_interrupted_retrieval_run_resumes_with_the_same_results(tiny_model_dir, clotho_folder, tmp_path,
                                                                    monkeypatch):
    out = tmp_path / "run"
    overrides = ["dataset=captions_folder", f"dataset.path={clotho_folder}", "model=tiny_random", "cache=false",
                 "batch_size=2", f"output_dir={out}", "max_skip_fraction=0.5"]
    complete = run(compose_config(*overrides, f"output_dir={tmp_path / 'uninterrupted'}"))
    ranks = (tmp_path / "uninterrupted" / "ranks.csv").read_bytes()
    assert not (tmp_path / "uninterrupted" / "embeddings").exists()  # a finished run keeps no per-batch parts
    encode, calls = ClapModel.get_audio_features, []

    def interrupted_in_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return encode(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(ClapModel, "get_audio_features", interrupted_in_the_second_batch)
        with pytest.raises(RunInterrupted):
            run(compose_config(*overrides))
    log = out / "progress.jsonl"
    log.write_text(log.read_text() + '{"index": 2, "item_id": "cl')  # and a line torn by a kill
    encoded = count_encoded_clips(monkeypatch, ClapModel)
    resumed = run(compose_config(*overrides, "resume=true"))
    assert sum(encoded) == 2  # clip2 and clip3 (broken.wav is skipped before the encoder)
    assert resumed["resumed_items"] == 2
    assert (out / "ranks.csv").read_bytes() == ranks
    assert {key: resumed[key] for key in complete if key.startswith(("t2a_", "a2t_"))} == {
        key: value for key, value in complete.items() if key.startswith(("t2a_", "a2t_"))}


def test_cached_audio_embeddings_are_shared_with_classification(tiny_model_dir, clotho_folder, tmp_path,
                                                                monkeypatch):
    """The audio embeddings of a retrieval run come from the classification cache when a run embedded the same
    clips under the same item ids (the cache key holds the clip's bytes and its crop seed, drawn from its id)."""
    cache = tmp_path / "cache"
    folder = tmp_path / "classes"
    folder.mkdir()
    for clip in range(CLIPS):
        (folder / f"clip{clip}.wav").write_bytes((clotho_folder / f"clip{clip}.wav").read_bytes())
    pd.DataFrame({"file_name": [f"clip{clip}.wav" for clip in range(CLIPS)],
                  "label": ["low", "low", "high", "high"]}).to_csv(folder / "metadata.csv", index=False)
    run(compose_config("dataset=audiofolder", f"dataset.path={folder}", "model=tiny_random", f"cache_dir={cache}",
                       f"output_dir={tmp_path / 'classify'}"))
    encoded = count_encoded_clips(monkeypatch, ClapModel)
    metrics = run(compose_config("dataset=captions_folder", f"dataset.path={clotho_folder}", "model=tiny_random",
                                 f"cache_dir={cache}", f"output_dir={tmp_path / 'retrieve'}", "max_skip_fraction=0.5"))
    assert encoded == [] and metrics["cache_hits"] == 4


def write_parquet(root, rows: list[dict]) -> None:
    (root / "data").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(root / "data" / "test-00000-of-00001.parquet")


def wav_bytes(clip: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(300.0 * (clip + 1), RATE, seconds=0.3), RATE, format="WAV")
    return buffer.getvalue()


def test_hub_shaped_clotho_runs_from_a_local_parquet_copy(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """mteb/Clotho's columns (index, audio, raw_text: a list of captions per clip), read as a Hub dataset is."""
    rows = [{"index": f"clotho_{clip}", "datasetname": "clotho", "audio": {"bytes": wav_bytes(clip), "path": None},
             "audio_len": 0.3, "text": ". ".join(caption_of(clip, n) for n in range(5)),
             "raw_text": [caption_of(clip, n) for n in range(5)]} for clip in range(3)]
    write_parquet(tmp_path / "clotho", rows)
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=clotho", f"dataset.hub_id={tmp_path / 'clotho'}",
                                   "model=tiny_random", f"output_dir={tmp_path / 'run'}")
    assert code == 0, stderr
    assert "on 3 of 3 clips (15 captions)" in stdout
    ranks = pd.read_csv(tmp_path / "run" / "ranks.csv", keep_default_na=False)
    assert ranks["query_id"].tolist()[:6] == [f"clotho_0#{n}" for n in range(5)] + ["clotho_1#0"]
    assert ranks["query_id"].tolist()[15:] == ["clotho_0", "clotho_1", "clotho_2"]


def test_hub_shaped_audiocaps_rows_are_grouped_into_clips(tmp_path):
    """jp1924/AudioCaps' shape: one row per caption; the rows of a youtube_id are one clip, captions in row order."""
    rows = [{"audiocap_id": 10 * clip + n, "youtube_id": f"yt{clip}", "start_time": 30,
             "audio": {"bytes": wav_bytes(clip), "path": None}, "caption": caption_of(clip, n)}
            for n in range(2) for clip in range(3)]  # rows interleaved: clip order is first appearance
    write_parquet(tmp_path / "audiocaps", rows)
    dataset = build(checked(compose_config("dataset=audiocaps", f"dataset.hub_id={tmp_path / 'audiocaps'}")).dataset)
    assert dataset.items["item_id"].tolist() == ["yt0", "yt1", "yt2"]
    assert dataset.items["captions"].tolist() == [[caption_of(clip, 0), caption_of(clip, 1)] for clip in range(3)]
    assert [dataset.clips[clip] for clip in range(3)] == [wav_bytes(clip) for clip in range(3)]


def test_captions_folder_groups_rows_by_file_and_drops_blank_captions(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    for name in ("b.wav", "a.wav", "unlisted.wav"):
        sf.write(root / name, tone(440.0), 44100)
    pd.DataFrame({"file_name": ["b.wav", "a.wav", "b.wav", "a.wav"],
                  "caption": ["a bark, twice", "", "a dog barks", "rain on a roof"]}).to_csv(root / "metadata.csv",
                                                                                           index=False)
    dataset = build(checked(compose_config("dataset=captions_folder", f"dataset.path={root}")).dataset)
    assert dataset.items["item_id"].tolist() == ["b.wav", "a.wav"]
    assert dataset.items["captions"].tolist() == [["a bark, twice", "a dog barks"], ["rain on a roof"]]
    assert dataset.ignored_files["path"].tolist() == ["metadata.csv", "unlisted.wav"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["dataset=captions_folder"], "dataset=captions_folder needs dataset.path"),
    (["dataset=captions_folder", "dataset.path={folder}", "dataset.caption_column=text"],
     "column 'text' not found; set dataset.caption_column to one of ['caption', 'file_name']"),
    (["dataset=captions_folder", "dataset.path={folder}", "engine=pipeline"],
     "is a retrieval dataset: it needs engine=embed"),
    (["dataset=captions_folder", "dataset.path={folder}", "gate.min_accuracy=0.5"],
     "gate.min_accuracy and gate.baseline bound a classification accuracy"),
    (["dataset=captions_folder", "dataset.path={folder}", "+dataset.folds=[1]"],
     "dataset.folds selects classes or folds, which a retrieval dataset (captions_folder) does not have"),
    (["dataset=captions_folder", "dataset.path={folder}", "dataset.classes=[a,b]"],  # not "add it with +..."
     "dataset.classes selects classes or folds, which a retrieval dataset (captions_folder) does not have; drop "
     "dataset.classes (use limit=N for fewer clips)"),
    (["dataset=audiofolder", "dataset.path={folder}", "dataset.task=retrieval"],
     "dataset=audiofolder has task retrieval but no caption_column"),
    (["dataset=esc50_folder", "dataset.path={folder}", "+dataset.task=retrieval", "+dataset.caption_column=c"],
     "task retrieval needs a Hub dataset or a local folder with a metadata.csv"),
    (["dataset=captions_folder", "dataset.path={folder}", "dataset.task=tagging"],
     "dataset.task=tagging is not valid: dataset.task takes one of classification, multilabel, retrieval"),
])
def test_retrieval_mistakes_are_one_line(arguments, message, clotho_folder, tiny_model_dir, tmp_path, monkeypatch,
                                         capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, *(argument.format(folder=clotho_folder) for argument in arguments),
                              "model=tiny_random", f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert message in stderr


@pytest.mark.slow
def test_leaderboard_holds_retrieval_rows_beside_classification_rows(tiny_model_dir, clotho_folder, tmp_path):
    results = tmp_path / "results"
    run(compose_config("dataset=synthetic", "model=tiny_random", "limit=6", f"results_dir={results}"))
    retrieval = run(compose_config("dataset=captions_folder", f"dataset.path={clotho_folder}", "model=tiny_random",
                                   f"results_dir={results}", "max_skip_fraction=0.5"))
    board = pd.read_csv(results / "leaderboard.csv", keep_default_na=False)
    assert board["task"].tolist() == ["retrieval", "classification"]  # grouped by dataset: captions_folder first
    row = board.iloc[0]
    assert row["accuracy"] == "" and float(row["t2a_recall_at_1"]) == pytest.approx(retrieval["t2a_recall_at_1"])
    assert board.iloc[1]["t2a_recall_at_1"] == "" and board.iloc[1]["accuracy"] != ""
    markdown = (results / "leaderboard.md").read_text()
    assert "| T2A R@1 [95% CI]" in markdown and "A2T mAP@10 [95% CI]" in markdown
    assert (results / "leaderboard_heatmap.png").is_file()


def test_ranks_table_of_the_hand_worked_example():
    retrieval = retrieve(SIMILARITY, CAPTION_CLIPS)
    clips = pd.DataFrame({"item_id": ["k0", "k1", "k2"]})
    captions = pd.DataFrame({"caption_id": [f"k{clip}#{n}" for clip, n in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]],
                             "caption": ["c0", "c1", "c2", "c3", "c4"]})
    table = ranks_table(retrieval, clips, captions)
    assert table["direction"].tolist() == ["text_to_audio"] * 5 + ["audio_to_text"] * 3
    assert table["query_id"].tolist() == [*captions["caption_id"], "k0", "k1", "k2"]
    assert table["query"].tolist() == ["c0", "c1", "c2", "c3", "c4", "k0", "k1", "k2"]
    assert table["rank"].tolist() == [1, 2, 1, 2, 2, 1, 2, 4]
    assert table["relevant_ranks"].tolist() == ["1", "2", "1", "2", "2", "1;4", "2;3", "4"]
    assert table["ap_at_10"].tolist() == pytest.approx([1, 0.5, 1, 0.5, 0.5, 0.75, 7 / 12, 0.25])
    assert table.loc[0, ["top1", "top2", "top3"]].tolist() == ["k0", "k1", "k2"]
    assert table.loc[7, ["top1", "top2", "top3", "top4", "top5"]].tolist() == ["c3", "c2", "c0", "c4", "c1"]
    assert recall_curve(retrieval.a2t.best_ranks, 5).tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1, 1])


def test_a_clip_without_captions_is_no_audio_to_text_query():
    # 3 clips, captions of clips 0 and 2 only: clip 1 is a candidate for text to audio, no query the other way
    similarity = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], dtype=np.float32)
    retrieval = retrieve(similarity, np.array([0, 2]))
    assert retrieval.a2t_clips.tolist() == [0, 2]
    assert [ranks.tolist() for ranks in retrieval.a2t.relevant_ranks] == [[1], [1]]
    assert retrieval.t2a.best_ranks.tolist() == [1, 1]


def test_many_equal_scores_rank_in_candidate_order():
    scores = np.random.default_rng(0).integers(0, 2, (1, 200)).astype(np.float32)  # ties a quicksort would reorder
    ones = np.flatnonzero(scores[0] == 1)
    queries = rank_queries(scores, [[int(ones[-1])]])
    assert queries.top[0].tolist() == ones[:5].tolist()
    assert queries.best_ranks.tolist() == [len(ones)]


def test_scores_apart_by_float_noise_are_ties_and_ranks_do_not_depend_on_it():
    """Two byte-identical clips embedded in different batches score 2.4e-7 apart: they tie, in candidate order,
    whichever of them the noise lifts."""
    base = np.array([[0.50, 0.30, 0.50, 0.10]], dtype=np.float64)
    for noise in (2.4e-7, -2.4e-7):
        noisy = base + np.array([[0.0, 0.0, noise, 0.0]])
        queries = rank_queries(noisy, [[2]])
        assert queries.best_ranks.tolist() == [2] and queries.top[0].tolist() == [0, 2, 1, 3]
    # the tolerance is a share of the query's largest |score|: 1e-5 x 30 at logit scale 30
    large = np.array([[30.0, 30.0 + 2e-4, 29.0]])
    assert rank_queries(large, [[1]]).best_ranks.tolist() == [2]  # 2e-4 < 3e-4: tied, candidate 0 first
    apart = np.array([[30.0, 30.0 + 5e-4, 29.0]])
    assert rank_queries(apart, [[1]]).best_ranks.tolist() == [1]  # 5e-4: a real difference
    assert rank_queries(np.array([[0.5, 0.5 + 5e-6]]), [[1]]).best_ranks.tolist() == [2]  # at least 1e-5 absolute
    assert rank_queries(np.array([[0.5, 0.5 + 2e-5]]), [[1]]).best_ranks.tolist() == [1]


def test_intervals_are_reproducible_from_the_recorded_bootstrap():
    retrieval = retrieve(SIMILARITY, CAPTION_CLIPS)
    metrics = retrieval_metrics(retrieval)
    assert metrics["bootstrap"] == {"resamples": 1000, "seed": 0, "level": 0.95, "over": "queries"}
    assert retrieval_metrics(retrieval) == metrics
    assert retrieval_metrics(retrieval, seed=0) == metrics != retrieval_metrics(retrieval, seed=1)


def test_summary_line_names_both_directions():
    metrics = {"dataset": "clotho", "model": "clap", "n_evaluated": 3, "n_items": 4, "n_captions_evaluated": 15,
               "n_skipped": 1, "scoring_s": 2.0, "cache_hits": 0, "output_dir": "out",
               **{f"{d}_{name}": value for d in ("t2a", "a2t") for name, value in
                  (("recall_at_1", 0.25), ("recall_at_5", 0.5), ("recall_at_10", 1.0), ("map_at_10", 0.4))},
               "t2a_recall_at_1_ci95": [0.1, 0.4], "a2t_recall_at_1_ci95": [0.0, 0.5]}
    assert retrieval_summary(metrics, 9.0) == (
        "clotho | clap | retrieval: T2A R@1 0.2500 [0.1000, 0.4000] R@5 0.5000 R@10 1.0000 mAP@10 0.4000; "
        "A2T R@1 0.2500 [0.0000, 0.5000] R@5 0.5000 R@10 1.0000 mAP@10 0.4000 on 3 of 4 clips (15 captions), "
        "1 skipped (see errors.csv) in 9.0 s (2.0 s scoring, nothing encoded, 0 from the cache) -> out")
    assert "mAP@10 0.4000 on 3 of 4 clips (15 captions) in 9.0 s" in retrieval_summary({**metrics, "n_skipped": 0}, 9.0)


@pytest.mark.slow
def test_compare_pairs_the_queries_of_two_retrieval_runs(tiny_model_dir, clotho_folder, tmp_path, capsys):
    """Two real runs (two models) on the same clips: each direction's metrics on the queries both ran, recomputed
    from their ranks.csv, with paired bootstrap intervals; the files compare writes."""
    from zsa_eval.report.__main__ import main as report_main
    from zsa_eval.report.compare import compare_runs

    common = ["dataset=captions_folder", f"dataset.path={clotho_folder}", "max_skip_fraction=0.5"]
    runs = {model: tmp_path / model for model in ("tiny_random", "pe_tiny_random")}
    for model, out in runs.items():
        run(compose_config(*common, f"model={model}", f"output_dir={out}"))
    comparison = compare_runs(runs["tiny_random"], runs["pe_tiny_random"], resamples=200, seed=1)
    ranks = {model: pd.read_csv(out / "ranks.csv") for model, out in runs.items()}
    n_t2a, n_a2t = (int((ranks["tiny_random"]["direction"] == d).sum()) for d in ("text_to_audio", "audio_to_text"))
    assert comparison.n_common == n_t2a + n_a2t and comparison.unit == f"queries ({n_t2a} captions, {n_a2t} clips)"
    deltas = comparison.metric_deltas.set_index("metric")
    for run_letter, model in (("a", "tiny_random"), ("b", "pe_tiny_random")):
        metrics = json.loads((runs[model] / "metrics.json").read_text())
        for name in ("t2a_recall_at_1", "t2a_recall_at_5", "a2t_map_at_10", "a2t_median_rank", "t2a_mean_rank"):
            assert deltas.loc[name, run_letter] == pytest.approx(metrics[name])  # every query is common
    t2a = {model: table[table["direction"] == "text_to_audio"].set_index("query_id")["rank"]
           for model, table in ranks.items()}
    assert deltas.loc["t2a_recall_at_1", "delta"] == pytest.approx(
        (t2a["pe_tiny_random"] == 1).mean() - (t2a["tiny_random"] == 1).mean())
    changes = comparison.rank_changes
    assert (changes["change"] == changes["rank_b"] - changes["rank_a"]).all()
    assert changes["change"].abs().is_monotonic_decreasing
    out = tmp_path / "comparison"
    assert report_main(["compare", str(runs["tiny_random"]), str(runs["pe_tiny_random"]), "--out", str(out)]) == 0
    assert f"Compared on the {n_t2a + n_a2t} queries ({n_t2a} captions, {n_a2t} clips) both runs evaluated" in \
        capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == ["compare.html", "compare.json", "compare.md",
                                                           "compare_recall_at_k.png", "rank_changes.csv"]


def test_compare_refuses_retrieval_runs_over_other_candidates(tmp_path):
    from zsa_eval.report.compare import compare_runs

    for name, clips in (("a", 4), ("b", 3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(
            {"task": "retrieval", "dataset": "clotho", "n_evaluated": clips, "n_captions_evaluated": 5 * clips}))
    with pytest.raises(UserError, match=r"the runs ranked other candidates \(n_evaluated 4 in .*, 3 in .*\); "
                                        "compare retrieval runs over the same clips"):
        compare_runs(tmp_path / "a", tmp_path / "b")
