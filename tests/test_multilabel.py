"""Multi-label tagging (task: multilabel): metrics against hand-worked cases and brute force, label sets, an
end-to-end run on a local copy of the fsd50k Hub schema for both families, the AP chart, and suite=zeroshot's
cross-dataset table."""

import io
import json
import warnings
from math import sqrt
from pathlib import Path
from statistics import NormalDist

import matplotlib.image
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score, roc_auc_score

from conftest import run_cli, tone
from test_config import write_hub_parquet
from test_sweeps import canonical_hash, fake_run
from zsa_eval.data import build_dataset, label_sets
from zsa_eval.errors import UserError
from zsa_eval.tasks.tagging import (
    d_prime,
    per_class_table,
    predictions_table,
    ranking_precisions,
    resample_counts,
    resampled_ap_auc,
    summary_metrics,
)
from zsa_eval.report.across_models import by_dataset
from zsa_eval.report.board import collect_runs, leaderboard
from zsa_eval.report.leaderboard import write_leaderboard

# 4 clips x 3 classes; class 2 has no clip. Class 0: clips 0, 2, 3 (clip 2 tied with negative clip 1 at 0.5);
# class 1: clips 1, 2; clip 1 ties classes 1 and 2 at 0.8.
Y_TRUE = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]], dtype=bool)
SCORES = np.array([[0.9, 0.1, 0.3], [0.5, 0.8, 0.8], [0.5, 0.4, 0.2], [0.2, 0.9, 0.1]])
CLASSES = ["dog", "bark", "rain"]


def test_per_class_ap_and_auc_by_hand():
    table = per_class_table(Y_TRUE, SCORES, CLASSES)
    assert table["label"].tolist() == CLASSES and table["support"].tolist() == [3, 2, 0]
    # dog: 0.9 P | 0.5 P,N (one threshold: 2 of 3 precise) | 0.2 P -> (1 + 2/3 + 3/4) / 3; its one negative (0.5)
    # is below 0.9, tied with 0.5 (half), above 0.2 -> (1 + 0.5 + 0) / 3
    # bark: 0.9 N | 0.8 P | 0.4 P | 0.1 N -> (1/2 + 2/3) / 2; each positive beats one of two negatives -> 2/4
    assert table["ap"].iloc[0] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert table["auc"].iloc[0] == pytest.approx(1.5 / 3)
    assert table["ap"].iloc[1] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert table["auc"].iloc[1] == pytest.approx(0.5)
    assert table[["ap", "auc"]].iloc[2].isna().all()  # no clip: no AP, no AUC


def test_summary_by_hand():
    summary = summary_metrics(Y_TRUE, SCORES, per_class_table(Y_TRUE, SCORES, CLASSES), resamples=200)
    assert summary["map"] == pytest.approx(((1 + 2 / 3 + 3 / 4) / 3 + (1 / 2 + 2 / 3) / 2) / 2)
    assert summary["n_classes_counted"] == 2 and summary["n_classes_auc"] == 2
    assert summary["mauc"] == pytest.approx(0.5) and summary["d_prime"] == pytest.approx(0.0)
    # LRAP per clip: 1; 1/2 (bark ties rain at 0.8); 1 (dog, bark are the top two); 1/2 (bark 0.9 above dog 0.2)
    assert summary["lrap"] == pytest.approx((1 + 0.5 + 1 + 0.5) / 4)
    # micro: all 12 pairs; thresholds 0.9 {P,N}, 0.8 {P,N}, 0.5 {P,N}, 0.4 {P}, 0.3 {N}, 0.2 {P,N}, 0.1 {N,N}
    assert summary["micro_map"] == pytest.approx((0.5 + 0.5 + 0.5 + 4 / 7 + 0.5) / 5)
    assert summary["chance_map"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert summary["label_cardinality"] == pytest.approx(5 / 4)
    for name in ("map", "mauc", "d_prime", "lrap"):
        low, high = summary[f"{name}_ci95"]
        assert low <= high


def test_d_prime_is_the_audioset_transform():
    assert d_prime(0.5) == pytest.approx(0.0)
    assert d_prime(NormalDist().cdf(1 / sqrt(2))) == pytest.approx(1.0)
    assert d_prime(NormalDist().cdf(-1.5 / sqrt(2))) == pytest.approx(-1.5)


def test_ranking_precisions_with_ties_by_hand():
    assert ranking_precisions(Y_TRUE, SCORES).tolist() == pytest.approx([1.0, 0.5, 1.0, 0.5])
    # no true class, and every class true: 1 by convention (as scikit-learn)
    assert ranking_precisions(np.array([[0, 0], [1, 1]], bool), np.array([[0.1, 0.2], [0.3, 0.1]])).tolist() == [1, 1]


def sequential_ap(positive: np.ndarray, score: np.ndarray, draws: np.ndarray) -> float:
    """Brute force: lay the resample out (items by score, ties in item order, each draw its own place) and average
    the precision at each positive draw."""
    order = np.argsort(-score, kind="stable")
    laid_out = positive[np.repeat(order, draws[order].astype(int))]
    if not laid_out.any():
        return np.nan
    return float((np.cumsum(laid_out) / np.arange(1, len(laid_out) + 1))[laid_out].mean())


@settings(max_examples=40, deadline=None)
@given(truth=arrays(bool, (12, 3)), levels=arrays(np.int64, (12, 3), elements=st.integers(0, 4)),
       seed=st.integers(0, 2**16))
@pytest.mark.slow
def test_resampled_ap_and_auc_match_brute_force(truth, levels, seed):
    scores = levels / 4.0  # few levels: many ties
    counts = resample_counts(12, 25, seed)
    for column in range(3):
        ap, auc = resampled_ap_auc(truth[:, column], scores[:, column], counts)
        for resample in range(25):
            draws = counts[:, resample]
            expected = sequential_ap(truth[:, column], scores[:, column], draws)
            assert (np.isnan(expected) and np.isnan(ap[resample])) or ap[resample] == pytest.approx(expected)
            weights = draws * truth[:, column], draws * ~truth[:, column]
            if weights[0].sum() and weights[1].sum():
                assert auc[resample] == pytest.approx(roc_auc_score(truth[:, column], scores[:, column],
                                                                    sample_weight=draws))
            else:
                assert np.isnan(auc[resample])


@settings(max_examples=40, deadline=None)
@given(truth=arrays(bool, (15, 4)), scores=arrays(np.float64, (15, 4), elements=st.floats(-3, 3)))
def test_every_item_drawn_once_gives_scikit_learns_ap_when_no_scores_tie(truth, scores):
    column = truth[:, 0]
    ap, auc = resampled_ap_auc(column, scores[:, 0], np.ones((15, 1), np.float32))
    if column.any() and len(np.unique(scores[:, 0])) == 15:
        assert ap[0] == pytest.approx(average_precision_score(column, scores[:, 0]))
    if column.any() and not column.all():
        assert auc[0] == pytest.approx(roc_auc_score(column, scores[:, 0]))


def test_resample_counts_are_the_bootstrap_draws():
    counts = resample_counts(7, 30, seed=3)
    assert counts.shape == (7, 30) and (counts.sum(axis=0) == 7).all()
    assert np.array_equal(counts, resample_counts(7, 30, seed=3))
    assert not np.array_equal(counts, resample_counts(7, 30, seed=4))


def test_predictions_table_lists_the_true_set_and_the_top_k():
    items = pd.DataFrame({"item_id": list("abcd"), "path": list("abcd"), "fold": [pd.NA] * 4})
    table = predictions_table(items, Y_TRUE, SCORES, CLASSES)
    assert table["true_labels"].tolist() == ["dog", "bark", "dog|bark", "dog"]
    assert table["n_true_labels"].tolist() == [1, 1, 2, 1]
    assert table["top1_label"].tolist() == ["dog", "bark", "dog", "bark"]  # ties: the lower class index first
    assert table["top3_label"].tolist() == ["bark", "dog", "rain", "rain"] and "top4_label" not in table
    assert table["ranking_precision"].tolist() == pytest.approx([1.0, 0.5, 1.0, 0.5])


def test_label_sets_from_lists_and_delimited_strings():
    values = pd.Series(["Dog, Bark,,Dog", ["Rain", "Water"], np.array(["Rain"]), None, "Music"])
    assert label_sets(values, ",") == [("Dog", "Bark"), ("Rain", "Water"), ("Rain",), (), ("Music",)]
    assert label_sets(pd.Series(["a,b"]), None) == [("a,b",)]


def build(table: pd.DataFrame, **selection):
    ids = [str(index) for index in range(len(table))]
    return build_dataset("tags", table, ids, ids, lambda rows: rows, label_column="labels", **selection)


def test_multilabel_items_classes_and_selection():
    table = pd.DataFrame({"labels": ["Dog,Animal", "Rain", "Music,Guitar", "Dog"]})
    dataset = build(table, task="multilabel", label_delimiter=",")
    assert dataset.class_names == ["Animal", "Dog", "Guitar", "Music", "Rain"]
    assert dataset.items["labels"].tolist() == [("Dog", "Animal"), ("Rain",), ("Music", "Guitar"), ("Dog",)]
    assert dataset.items["label"].tolist() == ["Dog|Animal", "Rain", "Music|Guitar", "Dog"]
    chosen = build(table, task="multilabel", label_delimiter=",", classes=["Dog", "Music"])
    assert chosen.items["labels"].tolist() == [("Dog",), ("Music",), ("Dog",)]  # other labels dropped
    assert chosen.items["label"].tolist() == ["Dog", "Music", "Dog"]
    assert chosen.excluded["label"].tolist() == ["Rain"] and chosen.present_labels() == {"Dog", "Music"}


def test_label_delimiter_needs_task_multilabel():
    with pytest.raises(UserError, match="set dataset.task=multilabel, or drop dataset.label_delimiter"):
        build(pd.DataFrame({"labels": ["a,b", "c"]}), label_delimiter=",")


FSD_SETS = ["Dog,Domestic_animals_and_pets,Animal", "Bark,Dog,Animal", "Electric_guitar,Guitar,Music", "Guitar,Music",
            "Rain,Water", "Water", "Dog,Animal,Water", "Music"]


def write_fsd50k_schema(root: Path) -> Path:
    """nguyenvulebinh/fsd50k's schema in a local folder (data/eval-*.parquet): fname int64, labels (names joined
    by ","), mids, mp3 (the MP3 file's bytes as a list of uint8)."""
    (root / "data").mkdir(parents=True)
    clips = []
    for index in range(len(FSD_SETS)):
        buffer = io.BytesIO()
        sf.write(buffer, tone(150.0 * (index + 1), seconds=0.4), 44100, format="MP3")
        clips.append(list(buffer.getvalue()))
    table = pa.table({"fname": pa.array(range(100, 100 + len(FSD_SETS)), pa.int64()), "labels": FSD_SETS,
                      "mids": ["/m/0"] * len(FSD_SETS), "mp3": pa.array(clips, pa.list_(pa.uint8()))})
    pq.write_table(table, root / "data" / "eval-00000-of-00001.parquet")
    return root


@pytest.fixture(scope="module")
def fsd50k_copy(tmp_path_factory) -> Path:
    return write_fsd50k_schema(tmp_path_factory.mktemp("fsd50k"))


def png_size(path: Path) -> tuple[int, int]:
    image = matplotlib.image.imread(path)
    assert image[..., :3].std() > 0.02  # not a blank canvas
    return image.shape[:2]


@pytest.mark.parametrize("model", ["tiny_random", "pe_tiny_random"])
def test_fsd50k_schema_end_to_end(monkeypatch, capsys, fsd50k_copy, tmp_path, model):
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "dataset=fsd50k", f"dataset.hub_id={fsd50k_copy}",
                                   f"model={model}", f"output_dir={out}")
    assert code == 0, stderr
    assert stdout.startswith(f"fsd50k | {model} | auto: mAP ") and "over the 9 of 9 classes with clips" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    names = sorted({name for labels in FSD_SETS for name in labels.split(",")})
    assert metrics["task"] == "multilabel" and metrics["labels"] == names and metrics["n_evaluated"] == 8
    assert "Domestic animals and pets" in metrics["candidate_labels"] and "accuracy" not in metrics
    # the metrics are those of the logits the run wrote, by scikit-learn's definitions
    scores = pd.read_parquet(out / "scores.parquet")
    logits = scores[[f"logit:{name}" for name in names]].to_numpy()
    truth = np.array([[name in labels.split(",") for name in names] for labels in FSD_SETS])
    assert scores["item_id"].tolist() == [str(fname) for fname in range(100, 108)]
    assert metrics["map"] == pytest.approx(np.mean([average_precision_score(truth[:, c], logits[:, c])
                                                    for c in range(len(names))]))
    assert metrics["mauc"] == pytest.approx(np.mean([roc_auc_score(truth[:, c], logits[:, c])
                                                     for c in range(len(names))]))
    low, high = metrics["map_ci95"]
    assert 0 <= low <= high <= 1 and metrics["bootstrap"]["resamples"] == 1000
    predictions = pd.read_csv(out / "predictions.csv")
    assert [set(labels.split("|")) for labels in predictions["true_labels"]] == [set(s.split(",")) for s in FSD_SETS]
    assert predictions["top1_label"].tolist() == [names[row] for row in logits.argmax(axis=1)]
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class.columns.tolist() == ["label", "support", "ap", "auc"]
    assert per_class.set_index("label")["support"].to_dict() == {name: int(truth[:, c].sum())
                                                                 for c, name in enumerate(names)}
    height, width = png_size(out / "per_class_ap.png")
    assert height > 250 and width > 600
    assert not (out / "confusion_matrix.png").exists()


def write_classlabel_copy(root: Path) -> Path:
    """A multi-label Hub schema with a list of ClassLabel (the names live in the feature, one of them unused)."""
    import datasets

    features = datasets.Features({"audio": datasets.Audio(), "id": datasets.Value("string"),
                                  "tags": datasets.List(datasets.ClassLabel(names=["Dog", "Rain", "Siren"]))})
    rows = {"audio": [], "id": [], "tags": [[0], [0, 1], [1]]}
    for index in range(3):
        buffer = io.BytesIO()
        sf.write(buffer, tone(300.0 * (index + 1), seconds=0.3), 16000, format="WAV")
        rows["audio"].append({"bytes": buffer.getvalue(), "path": f"{index}.wav"})
        rows["id"].append(f"clip{index}")
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(root / "data" / "test-00000-of-00001.parquet")
    return root


def test_sequence_of_classlabel_gives_the_feature_names(monkeypatch, capsys, tmp_path):
    copy = write_classlabel_copy(tmp_path / "tags")
    out = tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=fsd50k", f"dataset.hub_id={copy}", "dataset.split=test",
                              "dataset.audio_column=audio", "dataset.id_column=id", "dataset.label_column=tags",
                              "dataset.label_delimiter=null", "model=tiny_random", f"output_dir={out}")
    assert code == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == ["Dog", "Rain", "Siren"] and metrics["classes_without_items"] == ["Siren"]
    assert metrics["n_classes_counted"] == 2
    assert pd.read_csv(out / "predictions.csv")["true_labels"].tolist() == ["Dog", "Dog|Rain", "Rain"]
    assert stderr.strip().splitlines()[-1] == (
        "zsa-eval: warning: 1 of the 3 candidate classes has no clips in this selection ('Siren'): they stay "
        "candidates but have no AP (left out of mAP) (metrics.json: classes_without_items)")


@pytest.mark.parametrize("setting, message", [
    ("engine=pipeline", "dataset=fsd50k is multi-label: its metrics rank clips by the model's logits, which only "
                        "engine=embed gives; use engine=embed"),
    ("gate.min_accuracy=0.5", "dataset=fsd50k is multi-label and has no accuracy for gate.min_accuracy"),
])
def test_what_a_multilabel_run_refuses(monkeypatch, capsys, fsd50k_copy, tmp_path, setting, message):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=fsd50k", f"dataset.hub_id={fsd50k_copy}",
                              "model=tiny_random", setting, f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stderr.startswith(f"zsa-eval: error: {message}") and stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def fake_multilabel_run(results: Path, name: str, mean_ap: float, model: str = "clap", **changes) -> Path:
    """A finished fsd50k run as metrics.json records one."""
    run_dir = fake_run(results, name, 0.0, model=model, dataset="fsd50k", dataset_source="nguyenvulebinh/fsd50k",
                       **changes)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "top_k", "top_k_accuracy", "balanced_accuracy", "macro_f1", "accuracy_ci95",
                "top_k_accuracy_ci95", "balanced_accuracy_ci95", "macro_f1_ci95", "chance_accuracy"):
        metrics.pop(key)
    metrics |= {"task": "multilabel", "map": mean_ap, "map_ci95": [mean_ap - 0.02, mean_ap + 0.02],
                "chance_map": 0.014}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def test_multilabel_rows_rank_by_map_and_the_by_dataset_table_keeps_means_apart(tmp_path):
    fake_run(tmp_path, "a_esc", 0.5, model="clap")
    fake_run(tmp_path, "a_us8k", 0.7, model="clap", dataset="us8k", dataset_source="danavery/urbansound8K")
    fake_multilabel_run(tmp_path, "a_fsd", 0.30, model="clap")
    fake_multilabel_run(tmp_path, "b_fsd", 0.40, model="pe", weight_fingerprint="bbbb")
    fake_multilabel_run(tmp_path, "c_fsd", 0.20, model="other", weight_fingerprint="cccc")
    board = write_leaderboard(tmp_path)
    fsd = board[board["dataset"] == "fsd50k"]
    assert fsd["model"].tolist() == ["pe", "clap", "other"] and fsd["accuracy"].isna().all()
    assert fsd["task"].eq("multilabel").all() and fsd["map"].tolist() == [0.4, 0.3, 0.2]
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "mAP [95% CI]" in markdown and "0.4000 [0.3800, 0.4200]" in markdown
    table = pd.read_csv(tmp_path / "leaderboard_by_dataset.csv")
    assert table.columns.tolist() == ["model", "template", "esc50 accuracy", "us8k accuracy", "mean accuracy",
                                      "accuracy datasets", "fsd50k mAP", "mean mAP", "mAP datasets"]
    rows = table.set_index("model")
    assert rows.loc["clap", "mean accuracy"] == pytest.approx(0.6) and rows.loc["clap", "accuracy datasets"] == 2
    assert rows.loc["clap", "mean mAP"] == pytest.approx(0.3) and rows.loc["clap", "mAP datasets"] == 1
    # a model without single-label runs has no mean accuracy: listed after, not ranked by a missing accuracy
    assert table["model"].tolist() == ["clap", "pe", "other"]
    assert pd.isna(rows.loc["pe", "mean accuracy"]) and rows.loc["pe", "accuracy datasets"] == 0
    height, width = png_size(tmp_path / "leaderboard_by_dataset.png")
    assert height > 200 and width > 400
    assert "| clap " in (tmp_path / "leaderboard_by_dataset.md").read_text()


def test_by_dataset_keys_cells_by_prompts_not_by_template_name(tmp_path):
    fake_run(tmp_path, "default", 0.5, started_at="2026-11-20T10:00:00+00:00")
    fake_run(tmp_path, "custom", 0.6, prompts=["A sound of {}."], started_at="2026-11-21T10:00:00+00:00")
    table, metrics = by_dataset(leaderboard(collect_runs(tmp_path)))
    default, custom = canonical_hash(["This is a sound of {}."], 8), canonical_hash(["A sound of {}."], 8)
    assert table[["template", "esc50 accuracy"]].values.tolist() == [[f"sound_of #{custom}", 0.6],
                                                                     [f"sound_of #{default}", 0.5]]
    assert metrics == ["accuracy", "accuracy"]


def test_by_dataset_counts_a_dataset_once_and_shows_its_selections_apart(tmp_path):
    fake_run(tmp_path, "whole", 0.50)
    fake_run(tmp_path, "dogs", 0.90, selection_classes=["dog", "cat"])
    fake_run(tmp_path, "birds", 0.80, selection_classes=["crow", "hen"])
    fake_run(tmp_path, "us8k", 0.70, dataset="us8k", dataset_source="danavery/urbansound8K")
    table, _ = by_dataset(leaderboard(collect_runs(tmp_path)))
    assert table.columns.tolist() == ["model", "template", "esc50 accuracy", "esc50 (classes=crow,hen) accuracy",
                                      "esc50 (classes=dog,cat) accuracy", "us8k accuracy", "mean accuracy",
                                      "accuracy datasets"]
    row = table.iloc[0]
    assert row["accuracy datasets"] == 2 and row["mean accuracy"] == pytest.approx((0.50 + 0.70) / 2)
    subsets_only = tmp_path / "subsets"
    fake_run(subsets_only, "dogs", 0.90, selection_classes=["dog", "cat"])
    more = fake_run(subsets_only, "more", 0.60, selection_classes=["crow", "hen", "cow"]) / "metrics.json"
    more.write_text(json.dumps(json.loads(more.read_text()) | {"n_evaluated": 600}))
    table, _ = by_dataset(leaderboard(collect_runs(subsets_only)))
    assert table.loc[0, "accuracy datasets"] == 1 and table.loc[0, "mean accuracy"] == 0.60  # the larger selection


def test_suite_zeroshot_sweeps_the_catalog(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "--cfg", "hydra", "suite=zeroshot", "model=tiny_random")
    assert code == 0
    assert ("dataset: esc50,us8k,gtzan,speech_commands,ravdess,crema_d,vocalsound,nsynth,vggsound,fsd50k"
            in stdout)


@pytest.mark.slow
def test_suite_run_fills_one_cross_dataset_table(monkeypatch, capsys, tmp_path, fsd50k_copy):
    """suite=zeroshot over three local datasets (two single-label, one multi-label), as a user runs it."""
    conf = tmp_path / "conf" / "dataset"
    conf.mkdir(parents=True)
    esc50_copy = write_hub_parquet(tmp_path / "esc50_copy")
    (conf / "local_esc50.yaml").write_text(f"defaults:\n  - esc50\n  - _self_\nhub_id: {esc50_copy}\n")
    (conf / "local_fsd50k.yaml").write_text(f"defaults:\n  - fsd50k\n  - _self_\nhub_id: {fsd50k_copy}\n")
    (conf / "small_synthetic.yaml").write_text(f"defaults:\n  - synthetic\n  - _self_\nclips_per_class: 2\n"
                                               f"path: {tmp_path / 'synthetic'}\n")
    results = tmp_path / "results"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "-m", "suite=zeroshot",
        "hydra.sweeper.params.dataset='small_synthetic,local_esc50,local_fsd50k'",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=tiny_random", f"results_dir={results}")
    assert code == 0, stderr
    assert stdout.count("| tiny_random | auto: ") == 3
    scores = {}
    for metrics_file in results.rglob("metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        scores[metrics["dataset"]] = metrics.get("accuracy", metrics.get("map"))
    assert sorted(scores) == ["esc50", "fsd50k", "synthetic"]
    table = pd.read_csv(results / "leaderboard_by_dataset.csv")
    assert len(table) == 1 and table.loc[0, "model"] == "tiny_random"
    assert table.loc[0, "esc50 accuracy"] == pytest.approx(scores["esc50"])
    assert table.loc[0, "synthetic accuracy"] == pytest.approx(scores["synthetic"])
    assert table.loc[0, "mean accuracy"] == pytest.approx((scores["esc50"] + scores["synthetic"]) / 2)
    assert table.loc[0, "fsd50k mAP"] == pytest.approx(scores["fsd50k"])
    assert table.loc[0, "mean mAP"] == pytest.approx(scores["fsd50k"])
    assert (results / "leaderboard_by_dataset.png").is_file() and (results / "leaderboard_by_dataset.md").is_file()


def write_tagging_run(run_dir: Path, classes: list[str], labels: dict[str, str], logits: dict[str, list[float]],
                      model: str) -> Path:
    """A finished tagging run's metrics.json and scores.parquet (true label sets joined by "|", a logit per class)."""
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps({"task": "multilabel", "labels": classes, "model": model,
                                                      "template": "t", "dataset": "tags"}))
    scores = pd.DataFrame({"item_id": list(labels), "true_label": list(labels.values())})
    for column, name in enumerate(classes):
        scores[f"logit:{name}"] = [logits[item][column] for item in labels]
    scores.to_parquet(run_dir / "scores.parquet", index=False)
    return run_dir


def test_compare_pairs_the_common_clips_of_two_tagging_runs(tmp_path, capsys):
    from zsa_eval.report.__main__ import main as report_main
    from zsa_eval.report.compare import compare_runs

    classes = ["dog", "rain", "bell"]
    labels = {"c1": "dog", "c2": "dog|rain", "c3": "rain", "c4": "bell", "c5": "bell|dog"}
    rng = np.random.default_rng(3)
    logits_a = {item: rng.normal(size=3).tolist() for item in labels}
    logits_b = {item: rng.normal(size=3).tolist() for item in labels}
    run_a = write_tagging_run(tmp_path / "a", classes, labels, logits_a, "clap")
    only_b = {item: labels[item] for item in ("c1", "c2", "c3", "c4")} | {"x9": "dog"}  # c5 only in A, x9 in B
    run_b = write_tagging_run(tmp_path / "b", classes, only_b, logits_b | {"x9": [0.0, 0.0, 0.0]}, "pe")
    comparison = compare_runs(run_a, run_b, resamples=300, seed=2)
    assert (comparison.n_a, comparison.n_b, comparison.n_common) == (5, 5, 4)
    common = ["c1", "c2", "c3", "c4"]
    truth = np.array([[name in labels[item].split("|") for name in classes] for item in common])
    deltas = comparison.metric_deltas.set_index("metric")
    for run, logits in (("a", logits_a), ("b", logits_b)):
        scores = np.array([logits[item] for item in common])
        ap = [average_precision_score(truth[:, c], scores[:, c]) for c in range(3)]
        auc = [roc_auc_score(truth[:, c], scores[:, c]) for c in range(3) if 0 < truth[:, c].sum() < 4]
        assert deltas.loc["map", run] == pytest.approx(np.mean(ap))
        assert deltas.loc["mauc", run] == pytest.approx(np.mean(auc))
        assert deltas.loc["lrap", run] == pytest.approx(label_ranking_average_precision_score(truth, scores))
    assert (deltas["delta"] == deltas["b"] - deltas["a"]).all()
    assert (deltas["delta_ci95_low"] <= deltas["delta_ci95_high"]).all()
    assert comparison.ap_deltas["label"].tolist()[0] == comparison.ap_deltas.loc[
        comparison.ap_deltas["delta"].abs().idxmax(), "label"]  # largest change first
    assert report_main(["compare", str(run_a), str(run_b), "--out", str(tmp_path / "out"), "--resamples", "300",
                        "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Compared on the 4 clips both runs evaluated (A evaluated 5, B 5)." in printed
    assert "## Per-class AP on the common clips, largest change first" in printed
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["ap_deltas.csv", "compare.html",
                                                                         "compare.json", "compare.md", "compare_ap.png"]
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["n_common"] == 4


def test_compare_refuses_tagging_runs_of_other_classes_or_labels(tmp_path):
    from zsa_eval.report.compare import compare_runs

    logits = {"c1": [0.1, 0.2], "c2": [0.3, 0.1]}
    run_a = write_tagging_run(tmp_path / "a", ["dog", "rain"], {"c1": "dog", "c2": "rain"}, logits, "m")
    other_classes = write_tagging_run(tmp_path / "b", ["dog", "bell"], {"c1": "dog", "c2": "bell"}, logits, "m")
    with pytest.raises(UserError, match="the runs use different class sets"):
        compare_runs(run_a, other_classes)
    relabelled = write_tagging_run(tmp_path / "c", ["dog", "rain"], {"c1": "dog|rain", "c2": "rain"}, logits, "m")
    with pytest.raises(UserError, match="1 of the 2 common clips have other labels in each run"):
        compare_runs(run_a, relabelled)


def test_compare_refuses_runs_of_two_tasks(tmp_path, capsys):
    from zsa_eval.report.__main__ import main as report_main

    write_tagging_run(tmp_path / "a", ["dog", "rain"], {"c1": "dog"}, {"c1": [0.1, 0.2]}, "m")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.json").write_text(json.dumps({"task": "retrieval", "dataset": "clotho"}))
    assert report_main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err == (f"zsa-eval: error: {tmp_path / 'a'} is a multilabel run and {tmp_path / 'b'} "
                                       "a retrieval run: compare runs of one task\n")


def test_a_local_folder_with_label_sets_in_its_metadata_is_multilabel(tmp_path):
    from conftest import compose_config
    from zsa_eval.config import checked
    from zsa_eval.run import build, loader_config

    for index, name in enumerate(["bell.wav", "alarm.wav", "voice.wav"]):
        sf.write(tmp_path / name, tone(300.0 * (index + 1), seconds=0.2), 16000)
    (tmp_path / "metadata.csv").write_text("file_name,tags\nbell.wav,bell;chime\nalarm.wav,alarm;beep;chime\n"
                                           "voice.wav,speech\n")
    cfg = checked(compose_config("dataset=audiofolder", f"dataset.path={tmp_path}", "dataset.label_column=tags",
                                 "dataset.task=multilabel", 'dataset.label_delimiter=";"'))
    dataset = build(loader_config(cfg.dataset))
    assert dataset.task == "multilabel"
    assert dataset.class_names == ["alarm", "beep", "bell", "chime", "speech"]
    assert dataset.items["labels"].tolist() == [("bell", "chime"), ("alarm", "beep", "chime"), ("speech",)]


def centred(samples: np.ndarray, estimate: float, low: float = -np.inf, high: float = np.inf) -> list[float]:
    """The percentile interval moved by the samples' median bias, within [low, high] (an independent copy)."""
    q_low, median, q_high = np.percentile(samples, [2.5, 50, 97.5])
    return [max(estimate - (median - q_low), low), min(estimate + (q_high - median), high)]


def test_summary_intervals_average_the_estimates_classes_and_correct_the_median_bias():
    """A class that a resample draws no clip of counts at its measured value (each resample's mean covers the
    estimate's classes); the class means' intervals are moved by their resamples' median bias; LRAP's is the
    percentile interval."""
    rng = np.random.default_rng(4)
    y_true = (rng.random((30, 4)) < 0.35).astype(int)
    y_true[:, 3] = 0
    y_true[0, 3] = 1  # class 3 has a single clip: counted, and absent from some resamples
    scores = rng.normal(size=(30, 4)) + y_true
    per_class = per_class_table(y_true, scores, list("abcd"))
    metrics = summary_metrics(y_true, scores, per_class, resamples=200, seed=5)
    counts = resample_counts(30, 200, 5)
    ap, auc = map(np.array, zip(*(resampled_ap_auc(y_true[:, c], scores[:, c], counts) for c in range(4))))
    assert np.isnan(ap[3]).any()  # resamples without class 3's clip have no AP of it ...
    ap = np.where(np.isnan(ap), per_class["ap"].to_numpy()[:, None], ap)  # ... and count its measured one
    auc = np.where(np.isnan(auc), per_class["auc"].to_numpy()[:, None], auc)
    map_samples, mauc_samples = ap.mean(axis=0), auc.mean(axis=0)
    # LRAP of a resample: scikit-learn's LRAP of the clips repeated as often as they were drawn
    lrap_samples = [label_ranking_average_precision_score(np.repeat(y_true, draws, axis=0),
                                                          np.repeat(scores, draws, axis=0))
                    for draws in counts.T.astype(int)]
    assert metrics["map_ci95"] == pytest.approx(centred(map_samples, metrics["map"], 0, 1))
    assert metrics["mauc_ci95"] == pytest.approx(centred(mauc_samples, metrics["mauc"], 0, 1))
    assert metrics["d_prime_ci95"] == pytest.approx(
        centred(sqrt(2) * np.array([NormalDist().inv_cdf(v) for v in mauc_samples]), metrics["d_prime"]))
    assert metrics["lrap_ci95"] == pytest.approx(list(np.percentile(lrap_samples, [2.5, 97.5])), abs=1e-6)
    assert metrics["n_classes_counted"] == 4 and metrics["bootstrap"] == {"resamples": 200, "seed": 5, "level": 0.95}
    default = summary_metrics(y_true, scores, per_class)
    assert default["bootstrap"] == {"resamples": 1000, "seed": 0, "level": 0.95}
    assert summary_metrics(y_true, scores, per_class) == default


def test_every_interval_holds_its_estimate_when_rare_classes_are_missing_from_resamples():
    """15 classes of one clip each, each ranked last (AP 1/20), and one common, well-ranked class: resamples miss
    most of the rare classes and, drawing a clip twice, lift its precision; a mean over the classes a resample drew
    put the interval at [0.131, 0.192], above the estimate 0.109."""
    n_clips, rare = 20, 15
    y_true = np.zeros((n_clips, rare + 1), dtype=bool)
    scores = np.random.default_rng(0).normal(size=(n_clips, rare + 1))
    for column in range(rare):
        y_true[column, column] = True
        scores[column, column] = -10.0
    y_true[:, rare] = np.arange(n_clips) % 2 == 0
    scores[:, rare] += 3 * y_true[:, rare]
    metrics = summary_metrics(y_true, scores, per_class_table(y_true, scores, [str(c) for c in range(rare + 1)]))
    for name in ("map", "mauc", "d_prime", "lrap"):
        low, high = metrics[f"{name}_ci95"]
        assert low <= metrics[name] <= high, (name, metrics[name], low, high)
    common = average_precision_score(y_true[:, rare], scores[:, rare])
    assert metrics["map"] == pytest.approx((rare / n_clips + common) / (rare + 1))


def test_auc_needs_clips_and_non_clips_and_the_table_stays_quiet():
    # class "one": a single clip (AUC defined); "all": every clip (no AUC, AP 1); "none": no clip (neither)
    y_true = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=bool)
    scores = np.array([[0.2, 0.9, 0.5], [0.6, 0.1, 0.5], [0.4, 0.5, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = per_class_table(y_true, scores, ["one", "all", "none"]).set_index("label")
    assert table.loc["one", "auc"] == 0.0 and table.loc["one", "ap"] == pytest.approx(1 / 3)  # ranked last of 3
    assert np.isnan(table.loc["all", "auc"]) and table.loc["all", "ap"] == 1.0
    assert table.loc["none", ["ap", "auc"]].isna().all()


@pytest.mark.parametrize("cells, delimiter", [(["speech,human voice", "music"], ","),
                                              (["bell;chime", "alarm;beep;chime", "speech"], ";"),
                                              (["Dog|Animal", "Rain"], "|")])
def test_joined_labels_without_a_delimiter_are_refused_naming_it(cells, delimiter):
    with pytest.raises(UserError) as refused:
        build(pd.DataFrame({"labels": cells}), task="multilabel")
    assert str(refused.value) == (
        f"labels such as {cells[0]!r} look like several labels joined by {delimiter!r}, but dataset.label_delimiter "
        f"is not set: add 'dataset.label_delimiter=\"{delimiter}\"' (quoted as shown), or set it to a character the "
        "labels do not use")
    assert build(pd.DataFrame({"labels": cells}), task="multilabel", label_delimiter=delimiter).items["labels"] \
        .map(len).max() > 1


def test_a_multilabel_folder_without_its_delimiter_is_one_line_exit_2(monkeypatch, capsys, tiny_model_dir, tmp_path):
    folder = tmp_path / "data"  # the run directory is outside the dataset's folder
    folder.mkdir()
    for index, name in enumerate(["talk.wav", "song.wav"]):
        sf.write(folder / name, tone(300.0 * (index + 1), seconds=0.2), 16000)
    (folder / "metadata.csv").write_text('file_name,labels\ntalk.wav,"speech,human voice"\nsong.wav,music\n')
    code, out, err = run_cli(monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={folder}",
                             "dataset.label_column=labels", "dataset.task=multilabel", "model=tiny_random",
                             f"output_dir={tmp_path / 'run'}")
    assert code == 2 and err.count("\n") == 1 and "'dataset.label_delimiter=\",\"'" in err
    assert not (tmp_path / "run").exists()


def test_single_labels_that_look_joined_get_a_hint():
    from zsa_eval.data import joined_labels_hint

    assert joined_labels_hint(["speech,human voice", "music"]) == (
        "class names such as 'speech,human voice' look like several labels joined by ',': if items carry several "
        "labels, set dataset.task=multilabel 'dataset.label_delimiter=\",\"'")
    assert joined_labels_hint(["bird chirping, tweeting", "dog barking"]) is None  # VGGSound's names are names
