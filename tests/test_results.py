"""What a run writes about itself: selection apart from errors, stratified limits, full scores, embeddings,
provenance and identity, cache hits apart from encoder speed."""

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from conftest import compose_config, tone
from zsa_eval.data import stratified_positions
from zsa_eval.errors import UserError
from zsa_eval.random_models import build_random_clap
from zsa_eval.run import run

SYNTHETIC_CLASSES = ["clicks", "high_beep", "low_hum", "rising_chirp", "white_noise"]


@pytest.mark.parametrize("limit", [1, 3, 5, 7, 10, 23])
def test_stratified_limit_gives_each_class_its_share(limit):
    sizes = {"a": 40, "b": 40, "c": 20, "d": 10}
    labels = pd.Series([label for label, size in sizes.items() for _ in range(size)])
    positions = stratified_positions(labels, limit, seed=3)
    assert len(positions) == len(set(positions)) == limit and positions == sorted(positions)
    counts = labels.iloc[positions].value_counts()
    for label, size in sizes.items():  # systematic sampling: within one item of the proportional share
        assert abs(counts.get(label, 0) - limit * size / len(labels)) < 1
    assert stratified_positions(labels, limit, seed=3) == positions


def test_stratified_limit_below_the_class_count_picks_seeded_classes():
    labels = pd.Series([f"class{index // 40:02d}" for index in range(2000)])  # ESC-50's shape: sorted by class
    picks = {seed: labels.iloc[stratified_positions(labels, 16, seed)] for seed in range(3)}
    assert all(picked.nunique() == 16 for picked in picks.values())  # limit=16 of the first rows: one class
    assert picks[0].tolist() != picks[1].tolist()


@pytest.mark.slow
def test_limit_modes_end_to_end(tiny_model_dir, tmp_path):
    stratified = run(compose_config("dataset=synthetic", "model=tiny_random", "limit=10",
                                    f"output_dir={tmp_path / 'stratified'}"))
    first = run(compose_config("dataset=synthetic", "model=tiny_random", "limit=10", "limit_mode=first",
                               f"output_dir={tmp_path / 'first'}"))
    labels = {name: pd.read_csv(tmp_path / name / "predictions.csv")["true_label"] for name in ("stratified", "first")}
    assert labels["stratified"].value_counts().to_dict() == {name: 2 for name in SYNTHETIC_CLASSES}
    assert labels["first"].nunique() < 5
    assert stratified["identity"]["selection"]["limit_mode"] == "stratified"
    assert stratified["identity_hash"] != first["identity_hash"]
    bad = compose_config("dataset=synthetic", "model=tiny_random", "limit=3", "limit_mode=random",
                         f"output_dir={tmp_path / 'bad'}")
    with pytest.raises(UserError, match="limit_mode=random is not valid: limit_mode takes one of stratified, first"):
        run(bad)


def test_class_selection_is_no_error_and_empty_classes_warn(tiny_model_dir, tmp_path, capsys):
    metrics = run(compose_config("dataset=synthetic", "model=tiny_random", "dataset.classes=[low_hum,clicks,thunder]",
                                 f"output_dir={tmp_path / 'run'}"))
    assert (metrics["n_items"], metrics["n_evaluated"], metrics["n_skipped"], metrics["n_excluded"]) == (16, 16, 0, 24)
    assert metrics["status"] == "complete" and metrics["classes_without_items"] == ["thunder"]
    excluded = pd.read_csv(tmp_path / "run" / "excluded.csv")
    assert list(excluded.columns) == ["item_id", "path", "label"] and len(excluded) == 24
    assert set(excluded["label"]) == {"high_beep", "rising_chirp", "white_noise"}
    assert pd.read_csv(tmp_path / "run" / "errors.csv").empty
    warning = capsys.readouterr().err.strip()
    assert warning == ("zsa-eval: warning: 1 of the 3 candidate classes has no clips in this selection ('thunder'): "
                       "they stay candidates but have no recall (metrics.json: classes_without_items)")



def test_a_limit_at_or_above_the_item_count_is_no_selection(tiny_model_dir, tmp_path):
    """limit=40 or limit=1000 on 40 clips evaluates every clip: the unlimited run's identity (one leaderboard row)."""
    hashes = {}
    for limit in ("null", "40", "1000", "39"):
        metrics = run(compose_config("dataset=synthetic", "model=tiny_random", f"limit={limit}",
                                     f"output_dir={tmp_path / limit}"))
        hashes[limit] = metrics["identity_hash"]
        assert metrics["identity"]["selection"]["limit"] == (39 if limit == "39" else None)
    assert hashes["40"] == hashes["1000"] == hashes["null"] != hashes["39"]


def test_classes_matching_no_item_are_named_and_leave_no_run_directory(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UserError) as refused:
        run(compose_config("dataset=synthetic", "model=tiny_random", "dataset.classes=[nothing,else]",
                           f"output_dir={out}"))
    assert str(refused.value) == ("none of the 40 items of dataset synthetic carries a class of dataset.classes="
                                  "[nothing,else]; the classes present are: clicks, high_beep, low_hum, rising_chirp, "
                                  "white_noise")
    with pytest.raises(UserError) as refused:  # one such class: said the same way (not "a single class")
        run(compose_config("dataset=synthetic", "model=tiny_random", "dataset.classes=[cat]", f"output_dir={out}"))
    assert str(refused.value).startswith("none of the 40 items of dataset synthetic carries a class of "
                                         "dataset.classes=[cat]; the classes present are: clicks,")
    assert not out.exists()


def test_a_single_label_folder_of_joined_names_warns(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "data"  # the run directory is outside the dataset's folder
    folder.mkdir()
    for index, name in enumerate(["talk.wav", "song.wav", "bell.wav"]):
        sf.write(folder / name, tone(300.0 * (index + 1), seconds=0.2), 16000)
    (folder / "metadata.csv").write_text('file_name,label\ntalk.wav,"speech,human voice"\nsong.wav,music\n'
                                         'bell.wav,"speech,human voice"\n')
    metrics = run(compose_config("dataset=audiofolder", f"dataset.path={folder}", "model=tiny_random",
                                 f"output_dir={tmp_path / 'run'}"))
    assert metrics["labels"] == ["music", "speech,human voice"]
    assert capsys.readouterr().err.strip() == (
        "zsa-eval: warning: class names such as 'speech,human voice' look like several labels joined by ',': if items "
        "carry several labels, set dataset.task=multilabel 'dataset.label_delimiter=\",\"'")


@pytest.mark.slow
def test_scores_parquet_holds_every_probability_and_logit(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    metrics = run(compose_config("dataset=synthetic", "model=tiny_random", "cache=false", f"output_dir={out}"))
    scores = pd.read_parquet(out / "scores.parquet")
    classes = metrics["labels"]
    assert list(scores.columns) == ["item_id", "true_label", *(f"prob:{c}" for c in classes),
                                    *(f"logit:{c}" for c in classes)]
    probabilities = scores[[f"prob:{c}" for c in classes]].to_numpy()
    logits = scores[[f"logit:{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probabilities, torch.softmax(torch.tensor(logits), dim=1).numpy(), atol=1e-6)
    predictions = pd.read_csv(out / "predictions.csv")
    assert scores["item_id"].tolist() == predictions["item_id"].tolist()
    assert (np.asarray(classes)[probabilities.argmax(axis=1)] == predictions["predicted_label"]).all()


@pytest.mark.slow
def test_save_embeddings_writes_the_vectors_the_scores_come_from(tiny_model, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    metrics = run(compose_config("dataset=synthetic", "model=tiny_random", "save_embeddings=true",
                                 f"output_dir={out}"))
    audio = np.load(out / "embeddings" / "audio.npy", allow_pickle=False)
    text = np.load(out / "embeddings" / "text.npy", allow_pickle=False)
    items = pd.read_csv(out / "embeddings" / "audio_items.csv")
    labels = pd.read_csv(out / "embeddings" / "text_labels.csv")
    assert audio.shape[0] == len(items) == metrics["n_evaluated"] and text.shape[0] == len(labels) == 5
    assert labels["class_name"].tolist() == metrics["labels"]
    assert labels["candidate_label"].tolist() == metrics["candidate_labels"]
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
    scale = tiny_model.model.logit_scale_a.exp().item()
    scores = pd.read_parquet(out / "scores.parquet")
    assert items["item_id"].tolist() == scores["item_id"].tolist()
    logits = scores[[f"logit:{c}" for c in metrics["labels"]]].to_numpy()
    np.testing.assert_allclose(audio @ text.T * scale, logits, atol=1e-4)
    assert sorted(path.name for path in (out / "embeddings").iterdir()) == [
        "audio.npy", "audio_items.csv", "text.npy", "text_labels.csv"]  # the per-batch parts are gone
    refinished = run(compose_config("dataset=synthetic", "model=tiny_random", "save_embeddings=true",
                                    f"output_dir={out}", "resume=true"))
    assert refinished["resumed_items"] == 0 and refinished["cache_hits"] == metrics["n_evaluated"]
    np.testing.assert_array_equal(np.load(out / "embeddings" / "audio.npy", allow_pickle=False), audio)


@pytest.mark.slow
def test_cache_hits_are_counted_apart_from_encoder_speed(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSA_EVAL_CACHE", str(tmp_path / "cache"))
    build_random_clap("tiny", tmp_path / "cache" / "models" / "tiny_random-seed0")
    common = ["dataset=synthetic", "model=tiny_random", "dataset.clips_per_class=2"]
    cold = run(compose_config(*common, f"output_dir={tmp_path / 'cold'}"))
    warm = run(compose_config(*common, "template=plain", f"output_dir={tmp_path / 'warm'}"))
    assert cold["cache_hits"] == 0 and cold["encoded_clips_per_s"] > 0
    assert warm["cache_hits"] == 10 and warm["encoded_clips_per_s"] is None


@pytest.mark.slow
def test_identity_tells_apart_prompts_weights_and_data_paths(tiny_model_dir, esc50_folder, tmp_path):
    other_weights = build_random_clap("tiny", tmp_path / "other", seed=1)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(esc50_folder), str(copy)], check=True)
    common = ["dataset=esc50_folder", "model=tiny_random"]
    runs = {
        "base": [f"dataset.path={esc50_folder}"],
        "prompts": [f"dataset.path={esc50_folder}", "template.prompts=['A {} sound.']"],
        "weights": [f"dataset.path={esc50_folder}", f"model.name_or_path={other_weights}"],
        "data path": [f"dataset.path={copy}"],
    }
    metrics = {name: run(compose_config(*common, *extra, f"output_dir={tmp_path / name.replace(' ', '_')}"))
               for name, extra in runs.items()}
    assert len({m["identity_hash"] for m in metrics.values()}) == 4
    assert metrics["prompts"]["prompts_hash"] != metrics["base"]["prompts_hash"]
    assert metrics["prompts"]["template"] == metrics["base"]["template"] == "auto"
    assert metrics["weights"]["identity"]["weight_fingerprint"] != metrics["base"]["identity"]["weight_fingerprint"]
    assert metrics["data path"]["identity"]["dataset_source"] == str(copy)
    # the same data at another path: another identity, but the same evaluated items
    assert (metrics["data path"]["identity"]["items_fingerprint"] ==
            metrics["base"]["identity"]["items_fingerprint"])
    assert (metrics["data path"]["provenance"]["files_fingerprint"] !=
            metrics["base"]["provenance"]["files_fingerprint"])


@pytest.mark.slow
def test_runs_over_other_clips_of_one_folder_are_other_rows(tiny_model_dir, tmp_path):
    from zsa_eval.report.leaderboard import write_leaderboard

    folder = tmp_path / "sounds"
    for category in ("dog", "rain"):
        (folder / category).mkdir(parents=True)
        for take, suffix in enumerate(["wav", "wav", "flac"]):
            sf.write(folder / category / f"{take}.{suffix}", tone(200.0 * (take + 1), seconds=0.3), 16000)
    results = tmp_path / "results"
    common = ["dataset=audiofolder", f"dataset.path={folder}", "model=tiny_random", f"results_dir={results}"]
    every = run(compose_config(*common, f"output_dir={results / 'every'}"))
    wav = run(compose_config(*common, "dataset.extensions=[wav]", f"output_dir={results / 'wav'}"))
    assert (every["n_items"], wav["n_items"]) == (6, 4)
    assert every["identity"]["items_fingerprint"] != wav["identity"]["items_fingerprint"]
    assert every["identity_hash"] != wav["identity_hash"]
    board = write_leaderboard(results).set_index("run_dir")
    assert len(board) == 2
    assert board.loc["every", "selection"] == f"all, items #{every['identity']['items_fingerprint'][:6]}"
    assert board.loc["wav", "selection"] == f"all, items #{wav['identity']['items_fingerprint'][:6]}"


def test_provenance_names_software_machine_and_data(tiny_model_dir, tmp_path):
    metrics = run(compose_config("dataset=synthetic", "model=tiny_random", f"output_dir={tmp_path / 'run'}"))
    provenance = metrics["provenance"]
    assert provenance["python"] == sys.version.split()[0]
    assert provenance["device_name"] and provenance["platform"]
    assert provenance["versions"]["torch"] == torch.__version__
    commit = provenance["zsa_eval_commit"]
    assert commit is None or len(commit.removesuffix("-dirty")) == 40  # None when run from a wheel
    assert len(metrics["identity"]["items_fingerprint"]) == len(provenance["files_fingerprint"]) == 16
    assert metrics["identity"]["model_revision"] is None  # a local directory has no Hub revision
    assert metrics["n_classes"] == 5 and metrics["chance_accuracy"] == pytest.approx(0.2)


def test_default_output_dirs_of_runs_started_together_never_collide(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSA_EVAL_RESULTS", str(tmp_path / "results"))
    first, second = (compose_config("dataset=synthetic", "model=tiny_random").output_dir for _ in range(2))
    assert first != second  # sub-second stamps: results/synthetic/tiny_random/auto/YYYYmmdd-HHMMSS-ffffff
    assert re.fullmatch(r".*/synthetic/tiny_random/auto/\d{8}-\d{6}-\d{6}", first)


def test_a_hub_style_model_name_is_one_folder_of_the_default_output_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSA_EVAL_RESULTS", str(tmp_path / "results"))
    output_dir = compose_config("dataset=synthetic", "model=tiny_random",
                                "model.name=laion/clap-htsat-unfused").output_dir
    assert re.fullmatch(r".*/results/synthetic/laion__clap-htsat-unfused/auto/\d{8}-\d{6}-\d{6}", output_dir)


CLASSIFICATION_SUMMARY = {
    "task": "classification", "dataset": "esc50", "model": "clap", "template": "auto", "accuracy": 0.9,
    "accuracy_ci95": [0.85, 0.95], "top_k": 5, "top_k_accuracy": 0.99, "balanced_accuracy": 0.89, "macro_f1": 0.88,
    "n_classes": 50, "n_evaluated": 400, "n_items": 400, "n_skipped": 0, "n_excluded": 0, "scoring_s": 4.0,
    "encoded_clips_per_s": 100.0, "cache_hits": 0, "output_dir": "results/run"}


def test_the_summary_line_shows_top_k_only_below_the_class_count():
    from zsa_eval.run import format_summary

    assert format_summary(CLASSIFICATION_SUMMARY, 12.0) == (
        "esc50 | clap | auto: accuracy 0.9000 [0.8500, 0.9500] (top-5 0.9900, balanced 0.8900, macro F1 0.8800) on "
        "400 of 400 clips in 12.0 s (4.0 s scoring, 100.0 clips/s encoded, 0 from the cache) -> results/run")
    resumed = format_summary(CLASSIFICATION_SUMMARY | {"resumed_items": 150, "n_items": 1, "n_evaluated": 1}, 12.0)
    assert resumed.endswith("on 1 of 1 clip in 12.0 s (4.0 s scoring, 100.0 clips/s encoded, 0 from the cache, 150 "
                            "restored from the earlier run) -> results/run")
    five = CLASSIFICATION_SUMMARY | {"n_classes": 5, "top_k_accuracy": 1.0}
    assert "(balanced 0.8900, macro F1 0.8800)" in format_summary(five, 12.0) and "top-" not in format_summary(five, 1)


def test_class_names_that_differ_only_in_case_are_named():
    from zsa_eval.tasks.labels import case_twins_warning

    assert case_twins_warning(["Noise", "noise", "dog", "Dog", "cat"]) == [
        "2 sets of class names differ only in case ('Noise' and 'noise'; 'dog' and 'Dog'): they are separate classes; "
        "rename them to one in the data (or dataset.label_names) if they are one"]
    assert case_twins_warning(["dog", "cat"]) == []


@pytest.mark.parametrize(("name_or_path", "name"), [
    ("/models/my_clap/", "my_clap"), ("laion/clap-htsat-fused", "clap-htsat-fused"),
    ("/models/CLAP_weights_2023.pth", "CLAP_weights_2023"), ("lukewys/laion_clap/630k-best.pt", "630k-best"),
    ("/models/my_clap/weights/..", "my_clap")])
def test_model_auto_names_its_runs_after_the_checkpoint(tmp_path, monkeypatch, name_or_path, name):
    """Runs of two checkpoints under model=auto land in two folders and two leaderboard rows, not both in `auto`."""
    monkeypatch.setenv("ZSA_EVAL_RESULTS", str(tmp_path / "results"))
    cfg = compose_config("dataset=synthetic", "model=auto", f"model.name_or_path={name_or_path}")
    assert cfg.model.name == name and f"/synthetic/{name}/auto/" in cfg.output_dir
    assert compose_config("dataset=synthetic", "model=auto", f"model.name_or_path={name_or_path}",
                          "model.name=mine").model.name == "mine"


def test_model_auto_on_the_current_folder_is_named_after_it(tmp_path, monkeypatch):
    (tmp_path / "my_model").mkdir()
    monkeypatch.chdir(tmp_path / "my_model")
    assert compose_config("dataset=synthetic", "model=auto", "model.name_or_path=.").model.name == "my_model"
