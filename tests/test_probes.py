"""Probes of the audio embeddings (protocol=linear_probe, protocol=few_shot): the probe functions on embeddings
whose structure fixes the answer, the test items (official folds, the seeded split) and the leakage check,
determinism, the blend of text-initialized prototypes, the t-interval over draws, the protocol on the leaderboard;
then end to end on the tiny models: a probe after a zero-shot run encodes nothing and compares with it, k = 0
reproduces zero-shot (both families), a multi-label probe, and every bad value in one line with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import ClapModel

from omegaconf import OmegaConf

from conftest import compose_config, count_encoded_clips, run_cli, run_cli_in_a_shared_fixture
from zsa_eval.config import checked
from zsa_eval.data import AudioDataset
from zsa_eval.errors import UserError
from zsa_eval.store import open_run_dir
from zsa_eval.report.compare import compare_runs
from zsa_eval.report.board import leaderboard, run_row
from zsa_eval.report.leaderboard import leaderboard_markdown, write_leaderboard
from zsa_eval.tasks.classification import class_indices
from zsa_eval.tasks.few_shot import (FewShotTask, cosine_scores, class_means, draw_shots, over_repeats,
                                     text_prototypes)
from zsa_eval.tasks.linear_probe import LinearProbeTask
from zsa_eval.tasks.probing import Training
from zsa_eval.tasks.splits import SPLIT_FOLD, inner_splits, official_folds, seeded_split
from zsa_eval.run import run_identity
from zsa_eval.tasks.registry import task_for

CLASSES = ["bark", "chime", "hum", "siren"]


def protocol(name: str, *overrides: str):
    """The checked protocol config of `protocol=name` with overrides (protocol.key=value)."""
    return checked(compose_config("dataset=synthetic", f"protocol={name}", *overrides)).protocol


def dataset_of(labels: list[str], folds: list | None = None, item_ids: list[str] | None = None,
               groups: list | None = None) -> AudioDataset:
    """A dataset of items only (no audio): what the test items and their checks read (`groups`: each item's
    recording, dataset.group_column)."""
    items = pd.DataFrame({"item_id": item_ids or [f"clip{index:03d}" for index in range(len(labels))],
                          "path": "", "label": labels, "fold": folds if folds is not None else pd.NA,
                          "group": groups if groups is not None else pd.NA})
    return AudioDataset("toy", sorted(set(labels)), items, [], pd.DataFrame(columns=["item_id", "path", "label"]))


def clustered(per_class_and_fold: int = 4, folds: int = 5, misplaced: int = 0, seed: int = 0):
    """Four classes as tight clusters around far-apart centres, `folds` official folds; in every fold `misplaced`
    clips of each class sit in the next class's cluster (no linear probe can get them right)."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.eye(len(CLASSES), 8)
    labels, fold_of, cluster = [], [], []
    for fold in range(1, folds + 1):
        for target, name in enumerate(CLASSES):
            for take in range(per_class_and_fold):
                labels.append(name)
                fold_of.append(fold)
                cluster.append((target + 1) % len(CLASSES) if take < misplaced else target)
    features = centres[cluster] + 0.1 * rng.standard_normal((len(labels), 8))
    return dataset_of(labels, fold_of), features


def linear_probe(dataset: AudioDataset, features: np.ndarray, *overrides: str):
    settings = protocol("linear_probe", *overrides)
    task = LinearProbeTask(settings)
    sides = task.sides(dataset)
    targets = class_indices(dataset.items, dataset.class_names)
    scores, rows = task.probe(features, targets, dataset.class_names, sides.test_fold, sides, dataset.items, settings,
                              Training())
    return targets, scores, rows


@pytest.mark.parametrize("misplaced", [0, 1])
def test_linear_probe_gets_the_accuracy_the_clusters_allow(misplaced):
    dataset, features = clustered(misplaced=misplaced)
    targets, scores, rows = linear_probe(dataset, features)
    expected = 1 - misplaced / 4  # the misplaced clip of every class and fold is predicted as its cluster's class
    assert (scores.argmax(axis=1) == targets).mean() == expected
    assert [row["fold"] for row in rows] == [1, 2, 3, 4, 5]
    assert all(row["n"] == 16 and row["n_train"] == 64 and row["accuracy"] == expected for row in rows)
    assert all(row["c"] in (0.001, 0.01, 0.1, 1.0, 10.0) for row in rows)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)  # every clip tested once, by its fold's classifier


@pytest.mark.slow
def test_probes_are_deterministic_and_train_single_threaded():
    dataset, features = clustered(misplaced=1)
    _, first, rows = linear_probe(dataset, features)
    _, again, rows_again = linear_probe(dataset, features)
    assert np.array_equal(first, again) and rows == rows_again
    targets = class_indices(dataset.items, dataset.class_names)
    train = dataset.items["fold"].to_numpy() != 1
    draws = [draw_shots(targets, train, 4, 3, np.random.default_rng([seed, 0, 0])) for seed in (0, 0, 1)]
    assert np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])
    assert sorted(np.bincount(targets[draws[0]]).tolist()) == [3, 3, 3, 3] and train[draws[0]].all()


def test_prototypes_classify_separable_clusters_by_cosine():
    dataset, features = clustered()
    targets = class_indices(dataset.items, dataset.class_names)
    shots = draw_shots(targets, np.ones(len(targets), bool), 4, 2, np.random.default_rng(0))
    prototypes = class_means(features[shots], targets[shots], 4)
    scores = cosine_scores(features, prototypes)
    assert (scores.argmax(axis=1) == targets).all() and np.abs(scores).max() <= 1 + 1e-12


def test_official_folds_never_share_a_fold_and_a_clip_id_on_both_sides_is_refused():
    dataset, _ = clustered(per_class_and_fold=1, folds=3)
    sides = official_folds(dataset, "linear_probe")
    item_ids = dataset.items["item_id"].to_numpy(dtype=object)
    for fold in sides.folds:
        train, test = sides.masks(fold, sides.test_fold, item_ids)
        assert set(dataset.items["fold"][test]) == {fold} and fold not in set(dataset.items["fold"][train])
    leaky = dataset_of(["bark", "hum", "bark", "hum"], [1, 1, 2, 2], ["a.wav", "b.wav", "a.wav", "c.wav"])
    with pytest.raises(UserError) as refused:
        LinearProbeTask(protocol("linear_probe")).check_dataset(leaky)
    assert str(refused.value) == ("clip id 'a.wav' is on both sides of test fold 1 (1 such ids): a clip's test must "
                                  "never see it in training; give every clip one id and one fold "
                                  "(dataset.fold_column), then run again")


def test_a_train_split_is_only_trained_on_and_each_other_split_only_tested():
    """dataset=mteb's train/test tasks: folds named after their splits; the test split never trains a classifier
    (testing `val` trains on `train` alone, not on `test`), and few-shot draws its shots from `train` alone."""
    splits = ["train"] * 6 + ["test"] * 3 + ["val"] * 3
    dataset = dataset_of(["bark", "hum", "chirp"] * 4, splits)
    sides = official_folds(dataset, "linear_probe")
    assert sides.folds == ["test", "val"] and sides.record["kind"] == "official splits"
    assert sides.record["description"] == "trained on the train split, tested on test, val"
    item_ids = dataset.items["item_id"].to_numpy(dtype=object)
    for fold in sides.folds:
        train, test = sides.masks(fold, sides.test_fold, item_ids)
        assert set(dataset.items["fold"][train]) == {"train"} and set(dataset.items["fold"][test]) == {fold}
    few_shot = FewShotTask(protocol("few_shot", "protocol.shots=3"))
    with pytest.raises(UserError, match="more than class 'bark' has on the training side of test fold test .2 clips."):
        few_shot.check_dataset(dataset)


def test_seeded_split_tests_the_same_items_for_a_seed_whatever_their_order():
    labels = [name for name in CLASSES for _ in range(10)]
    dataset = dataset_of(labels)
    sides = seeded_split(dataset, "linear_probe", 0.2, seed=0, stratified=True)
    tested = set(dataset.items["item_id"][sides.test_fold == SPLIT_FOLD])
    assert len(tested) == 8 and dataset.items[sides.test_fold == SPLIT_FOLD]["label"].value_counts().to_dict() == {
        name: 2 for name in CLASSES}
    reordered = dataset_of(labels[::-1], item_ids=dataset.items["item_id"].tolist()[::-1])
    again = seeded_split(reordered, "linear_probe", 0.2, seed=0, stratified=True)
    assert set(reordered.items["item_id"][again.test_fold == SPLIT_FOLD]) == tested
    other = seeded_split(dataset, "linear_probe", 0.2, seed=1, stratified=True)
    assert set(dataset.items["item_id"][other.test_fold == SPLIT_FOLD]) != tested
    assert sides.record == {"kind": "seeded split", "test_fraction": 0.2, "seed": 0, "stratified": True, "n_test": 8,
                            "n_train": 32, "description": "a seeded split (20% of each class tested, seed 0)"}


def test_a_split_that_tests_no_clip_of_a_class_says_so():
    """Keeping recordings whole, a class of few recordings can end all on the training side: named in a warning and
    in the split's record, never silently left out of the figures."""
    labels = ["a"] * 20 + ["b"] * 20 + ["c"] * 3
    groups = [f"a{index // 2}" for index in range(20)] + [f"b{index // 2}" for index in range(20)] + ["c0"] * 3
    dataset = dataset_of(labels, groups=groups)
    sides = seeded_split(dataset, "linear_probe", 0.2, seed=0, stratified=True)
    untested = sides.record["classes_not_tested"]
    assert "c" not in set(dataset.items["label"][sides.test_fold == SPLIT_FOLD]) and untested == ["c"]
    warnings = LinearProbeTask(protocol("linear_probe")).check_dataset(dataset)
    assert any(warning.startswith("the seeded split, keeping recordings whole, tests no clip of 1 class ('c')")
               for warning in warnings)


def test_a_recordings_clips_stay_on_one_side_of_every_split():
    """A dataset that names its items' recordings (dataset.group_column): the seeded split and the inner folds that
    choose C never put clips of one recording on both sides, and the split still tests about its share of each
    class."""
    labels = [name for name in CLASSES for _ in range(20)]
    groups = [f"{label}-{index // 4}" for index, label in enumerate(labels)]  # 5 recordings of 4 clips per class
    dataset = dataset_of(labels, groups=groups)
    sides = seeded_split(dataset, "linear_probe", 0.2, seed=0, stratified=True)
    tested = sides.test_fold == SPLIT_FOLD
    assert not set(np.array(groups)[tested]) & set(np.array(groups)[~tested])
    assert dataset.items[tested]["label"].value_counts().to_dict() == {name: 4 for name in CLASSES}
    assert sides.record["recordings_kept_whole"] and "recordings kept whole" in sides.record["description"]
    targets = class_indices(dataset.items, dataset.class_names)
    for train, held_out in inner_splits(targets, np.full(len(labels), None), 3, 0, True, np.array(groups)):
        assert not set(np.array(groups)[train]) & set(np.array(groups)[held_out])
    untied = inner_splits(targets, np.full(len(labels), None), 3, 0, True)
    assert any(set(np.array(groups)[train]) & set(np.array(groups)[held]) for train, held in untied)  # it mattered
    unstratified = seeded_split(dataset, "linear_probe", 0.2, seed=0, stratified=False)
    tested = unstratified.test_fold == SPLIT_FOLD
    assert not set(np.array(groups)[tested]) & set(np.array(groups)[~tested])


def test_a_recording_spanning_official_folds_is_named_in_a_warning():
    labels, folds = ["a", "b"] * 4, [1, 1, 1, 1, 2, 2, 2, 2]
    groups = ["r1", "r2", "r3", "r4", "r1", "r5", "r6", "r7"]  # r1 has a clip in fold 1 and one in fold 2
    task = LinearProbeTask(protocol("linear_probe"))
    [warning] = task.check_dataset(dataset_of(labels, folds, groups=groups))
    assert warning.startswith("1 recording of this selection has clips in more than one official fold ('r1' "
                              "(folds 1, 2)): a probe trained on one of those folds has heard them")
    assert "give each recording's clips one fold (dataset.fold_column)" in warning
    assert task.check_dataset(dataset_of(labels, folds, groups=["r1", "r2", "r3", "r4", "r8", "r5", "r6", "r7"])) == []
    assert task.check_dataset(dataset_of(labels, folds)) == []  # no recordings named: nothing to say


def test_identical_draws_have_their_value_as_mean_and_no_spread():
    """Ten equal accuracies of 17 / 800 summed as floats divide back to 0.021249999999999998 (printed 0.0212, where
    the zero-shot run of the same predictions prints 0.0213): the mean over identical draws is their value."""
    values = np.full(10, 17 / 800)
    assert values.mean() != 17 / 800  # the float trap itself
    per_repeat = pd.DataFrame({"repeat": range(10), "classifier": "text_prototype",
                               **{metric: values for metric in ("accuracy", "top_k_accuracy", "balanced_accuracy",
                                                                "macro_f1")}})
    summary = over_repeats(per_repeat)["text_prototype"]
    assert summary["accuracy"] == 17 / 800 and f"{summary['accuracy']:.4f}" == "0.0213"
    assert summary["accuracy_std"] == 0 and summary["accuracy_ci95"] == [17 / 800, 17 / 800]


def test_a_t_interval_stays_within_the_metrics_range():
    """A mean of accuracies near 1 over few draws: t's symmetric interval would pass 1 (it read [0.7374, 1.0959])."""
    low, high = over_repeats(pd.DataFrame({"repeat": range(3), "classifier": "prototype",
                                           **{metric: [1.0, 1.0, 0.75] for metric in (
                                               "accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1")}})
                             )["prototype"]["accuracy_ci95"]
    assert high == 1.0 and 0 < low < 11 / 12


def test_text_prototypes_are_the_text_at_no_shot_and_move_by_k_over_k_plus_w():
    text = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert text_prototypes(text, None, 0, 1.0) is text
    means = np.array([[0.0, 10.0], [1.0, 0.0]])
    blended = text_prototypes(text, means, 3, 1.0)  # 3 / (3 + 1) of the way to the shots' direction at |t|
    expected = text + 0.75 * (torch.tensor([[0.0, 5.0], [2.0, 0.0]]) - text)
    torch.testing.assert_close(blended, expected)


def test_metrics_over_draws_are_means_with_std_and_a_t_interval():
    per_repeat = pd.DataFrame({"repeat": [0, 1, 2, 0], "classifier": ["a", "a", "a", "b"],
                               "accuracy": [0.5, 0.6, 0.7, 0.4], "top_k_accuracy": 1.0, "balanced_accuracy": 0.5,
                               "macro_f1": 0.5})
    summary = over_repeats(per_repeat)
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2) * std / sqrt(3)
    assert summary["a"]["accuracy"] == pytest.approx(0.6) and summary["a"]["accuracy_std"] == pytest.approx(0.1)
    assert summary["a"]["accuracy_ci95"] == pytest.approx([0.6 - half, 0.6 + half])
    assert summary["b"]["accuracy_std"] is None and summary["b"]["accuracy_ci95"] is None


def test_few_shot_refuses_more_shots_than_a_class_has_in_training_before_embedding():
    dataset, _ = clustered(per_class_and_fold=2, folds=2)  # 2 clips of each class on each training side
    task = FewShotTask(protocol("few_shot", "protocol.shots=3"))
    with pytest.raises(UserError) as refused:
        task.check_dataset(dataset)
    assert str(refused.value) == ("protocol.shots=3 is more than class 'bark' has on the training side of test fold "
                                  "1 (2 clips): lower protocol.shots to 2 or less")
    assert FewShotTask(protocol("few_shot", "protocol.shots=2")).check_dataset(dataset) == []


def board_row(protocol_name: str | None, accuracy: float, template: str | None = "t", **extra) -> dict:
    identity = {"dataset": "d", "model": "m", "protocol": protocol_name, "template": template}
    return {"dataset": "d", "model": "m", "template": template, "accuracy": accuracy,
            "accuracy_ci95": [accuracy - 0.1, accuracy + 0.1], "n_evaluated": 10, "started_at": "2026-01-01T00:00:00",
            "identity": identity, "status": "complete", **extra,
            **({"protocol": protocol_name.split()[0], "protocol_label": protocol_name} if protocol_name else {})}


def test_leaderboard_shows_the_protocol_and_ranks_within_it():
    runs = [board_row(None, 0.3), board_row("linear_probe", 0.9, None), board_row(None, 0.5, "u"),
            board_row("few_shot 8-shot x10 logistic_regression", 0.7, None)]
    board = leaderboard(pd.DataFrame([run_row(run, f"run{index}") for index, run in enumerate(runs)]))
    assert list(zip(board["protocol"], board["accuracy"])) == [
        ("zeroshot", 0.5), ("zeroshot", 0.3), ("few_shot 8-shot x10 logistic_regression", 0.7), ("linear_probe", 0.9)]
    header = leaderboard_markdown(board).splitlines()[0]
    assert "| protocol " in header
    zero_shot_only = leaderboard(pd.DataFrame([run_row(board_row(None, 0.3), "run0")]))
    assert "protocol" not in leaderboard_markdown(zero_shot_only) and zero_shot_only["protocol"].tolist() == [
        "zeroshot"]


def test_heat_map_and_by_dataset_table_hold_zero_shot_rows_only(tmp_path):
    for index, run in enumerate([board_row(None, 0.3), board_row("few_shot 0-shot x1 text_prototype w=1", 0.9)]):
        (tmp_path / f"run{index}").mkdir()
        (tmp_path / f"run{index}" / "metrics.json").write_text(json.dumps(run))
    board = write_leaderboard(tmp_path)
    assert len(board) == 2
    by_dataset = pd.read_csv(tmp_path / "leaderboard_by_dataset.csv")
    assert by_dataset["d accuracy"].tolist() == [0.3]


def test_a_probes_mistakes_are_its_tested_clips_at_their_dataset_positions():
    """A probe's predictions.csv holds its tested clips only: each mistake plays the clip at its own dataset position,
    with the true label's score from scores.parquet."""
    from types import SimpleNamespace

    from zsa_eval.tasks import Evaluated
    from zsa_eval.results import TaskResults
    from zsa_eval.tasks.classification import classification_results
    from zsa_eval.tasks.labels import scores_table

    items = pd.DataFrame({"item_id": [f"c{index}" for index in range(6)], "path": "", "label": ["a", "b"] * 3,
                          "fold": pd.NA})
    tested = items.iloc[[1, 4, 5]].reset_index(drop=True)  # c1 (b), c4 (a), c5 (b): the test side of a split
    scores = np.array([[0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])  # c1 and c4 wrong, c1 the more confident
    measured = classification_results(tested, ["a", "b"], scores, "softmax", None, 0)
    results = TaskResults(measured.metrics, measured.tables, parquet={
        "scores.parquet": scores_table(tested, ["a", "b"], "softmax", scores, None)})
    context = SimpleNamespace(cfg=SimpleNamespace(report_mistakes=100, report_mistakes_per_class=5),
                              dataset=SimpleNamespace(class_names=["a", "b"]))
    evaluated = Evaluated([10, 11, 12, 13, 14, 15], items, [], None)
    found = LinearProbeTask(protocol("linear_probe")).mistakes(context, evaluated, results)
    assert [(mistake.title, mistake.clips) for mistake in found.items] == [("c1", (("clip", 11),)),
                                                                           ("c4", (("clip", 14),))]
    assert [mistake.fields["true label's score"] for mistake in found.items] == pytest.approx([0.1, 0.3])
    assert [mistake.fields["predicted"] for mistake in found.items] == ["a", "b"]
    assert found.description.startswith("The 2 most confident of the 2 wrong predictions") and \
        "its 3 tested clips" in found.description


def test_protocol_group_sets_the_default_folder_and_probe_keys():
    assert "/linear_probe/" in compose_config("protocol=linear_probe").output_dir
    assert "/sound_of/" in compose_config("template=sound_of").output_dir  # zero-shot: the template's folder
    cfg = checked(compose_config("dataset=fsd50k", "protocol=linear_probe"))
    assert type(task_for(cfg)).__name__ == "MultilabelProbeTask"


def test_resuming_a_probe_needs_its_protocol_settings_and_zero_shot_run_files_are_as_before(tmp_path):
    def identity(*overrides: str) -> dict:
        return run_identity(OmegaConf.to_container(compose_config("dataset=synthetic", *overrides), resolve=True))

    assert "protocol" not in identity() and "protocol" not in identity("template=plain")
    assert identity("protocol=few_shot")["protocol"]["shots"] == 8 and "folder" not in identity(
        "protocol=few_shot")["protocol"]
    open_run_dir(tmp_path, identity("protocol=few_shot"), resume=False, overwrite=False)
    with pytest.raises(UserError, match=r"holds a run of another config \(differs in: protocol.shots\)"):
        open_run_dir(tmp_path, identity("protocol=few_shot", "protocol.shots=4"), resume=True, overwrite=False)


# --- end to end on the tiny models ------------------------------------------------------------------------------

SMALL = ["dataset=synthetic", "dataset.clips_per_class=4", "model=tiny_random"]


@pytest.mark.slow
def test_a_probe_after_a_zero_shot_run_encodes_nothing_and_compares_with_it(tiny_model_dir, tmp_path, monkeypatch,
                                                                            capsys):
    cache = f"cache_dir={tmp_path / 'cache'}"
    code, _, stderr = run_cli(monkeypatch, capsys, *SMALL, cache, f"output_dir={tmp_path / 'zeroshot'}")
    assert code == 0, stderr
    encoded = count_encoded_clips(monkeypatch, ClapModel)
    code, stdout, stderr = run_cli(monkeypatch, capsys, *SMALL, cache, "protocol=linear_probe",
                                   f"output_dir={tmp_path / 'probe'}")
    assert code == 0, stderr
    assert encoded == [] and "nothing encoded, 20 from the cache" in stdout
    assert stdout.startswith("synthetic | tiny_random | linear_probe on 2 official folds: accuracy ")
    probe = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    zero_shot = json.loads((tmp_path / "zeroshot" / "metrics.json").read_text())
    assert (probe["task"], probe["protocol"], probe["cache_hits"], probe["n_tested"]) == (
        "classification", "linear_probe", 20, 20)
    assert "protocol" not in zero_shot["identity"] and "protocol" not in zero_shot  # zero-shot identities as before
    assert probe["identity"]["protocol"] == {"name": "linear_probe", "split_fraction": 0.2, "seed": 0,
                                             "max_iter": 1000, "c_grid": [0.001, 0.01, 0.1, 1.0, 10.0],
                                             "inner_folds": 3}
    assert probe["split"]["kind"] == "official folds" and probe["split"]["folds"] == [1, 2]
    per_fold = pd.read_csv(tmp_path / "probe" / "per_fold.csv")
    assert per_fold["fold"].tolist() == ["1", "2", "mean", "std"] and per_fold["n"].iloc[:2].tolist() == [10, 10]
    predictions = pd.read_csv(tmp_path / "probe" / "predictions.csv")
    assert predictions["correct"].mean() == pytest.approx(probe["accuracy"])
    assert set(predictions["score_kind"]) == {"softmax"}
    comparison = compare_runs(tmp_path / "zeroshot", tmp_path / "probe")
    assert comparison.n_common == 20 and comparison.legend_b.startswith("B: tiny_random | linear_probe (")
    accuracy = comparison.metric_deltas.set_index("metric").loc["accuracy"]
    assert accuracy["b"] - accuracy["a"] == pytest.approx(probe["accuracy"] - zero_shot["accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_random", "pe_tiny_random"])
def test_text_initialized_prototypes_at_no_shot_are_the_zero_shot_predictions(model, tiny_model_dir, tmp_path,
                                                                               monkeypatch, capsys):
    common = ["dataset=synthetic", "dataset.clips_per_class=4", f"model={model}", f"cache_dir={tmp_path / 'cache'}"]
    code, _, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'zeroshot'}")
    assert code == 0, stderr
    for shots in (0, 1):
        code, stdout, stderr = run_cli(monkeypatch, capsys, *common, "protocol=few_shot", f"protocol.shots={shots}",
                                       "protocol.text_init=true", "protocol.repeats=2",
                                       f"output_dir={tmp_path / f'shots{shots}'}")
        assert code == 0, stderr
    zero_shot = pd.read_csv(tmp_path / "zeroshot" / "predictions.csv")
    no_shot, one_shot = (pd.read_csv(tmp_path / name / "predictions.csv") for name in ("shots0", "shots1"))
    assert no_shot["item_id"].tolist() == zero_shot["item_id"].tolist()
    assert no_shot["predicted_label"].tolist() == zero_shot["predicted_label"].tolist()
    np.testing.assert_allclose(no_shot["score"], zero_shot["score"], atol=1e-6, rtol=0)
    assert not np.allclose(one_shot["score"], zero_shot["score"], atol=1e-3)
    metrics = json.loads((tmp_path / "shots0" / "metrics.json").read_text())
    zero_shot_metrics = json.loads((tmp_path / "zeroshot" / "metrics.json").read_text())
    assert metrics["accuracy"] == zero_shot_metrics["accuracy"] and metrics["classifier"] == "text_prototype"
    assert metrics["accuracy_std"] == 0 and metrics["accuracy_ci95"] == [metrics["accuracy"]] * 2
    assert metrics["identical_draws"] is True
    assert json.loads((tmp_path / "shots1" / "metrics.json").read_text())["identical_draws"] is False
    assert metrics["identity"]["prompts"] == zero_shot_metrics["prompts"]
    assert set(json.loads((tmp_path / "shots1" / "metrics.json").read_text())["classifiers"]) == {
        "logistic_regression", "prototype", "text_prototype"}


@pytest.mark.slow
def test_few_shot_reports_every_draw_and_repeats_itself(tiny_model_dir, tmp_path, monkeypatch, capsys):
    common = ["dataset=synthetic", "model=tiny_random", "protocol=few_shot", "protocol.shots=2", "protocol.repeats=3",
              f"cache_dir={tmp_path / 'cache'}"]
    for name in ("first", "again"):
        code, stdout, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / name}")
        assert code == 0, stderr
    assert "few_shot 2-shot x3 logistic_regression on 2 official folds: logistic_regression accuracy " in stdout
    per_repeat = pd.read_csv(tmp_path / "first" / "per_repeat.csv")
    assert per_repeat.equals(pd.read_csv(tmp_path / "again" / "per_repeat.csv"))
    draws = per_repeat[per_repeat["repeat"].isin(["0", "1", "2"])]
    assert sorted(draws["classifier"].unique()) == ["logistic_regression", "prototype"] and len(draws) == 6
    metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    logistic = draws[draws["classifier"] == "logistic_regression"]["accuracy"]
    assert (metrics["shots"], metrics["repeats"]) == (2, 3)
    assert metrics["accuracy"] == pytest.approx(logistic.mean())
    assert metrics["accuracy_std"] == pytest.approx(logistic.std(ddof=1))
    assert metrics["classifiers"]["logistic_regression"]["accuracy"] == metrics["accuracy"]
    predictions = pd.read_csv(tmp_path / "first" / "predictions.csv")
    assert predictions["correct"].mean() == pytest.approx(float(logistic.iloc[0]))
    scores = pd.read_parquet(tmp_path / "first" / "scores.parquet")  # the first draw's, as a zero-shot run writes
    assert scores["item_id"].tolist() == predictions["item_id"].tolist()
    columns = [name for name in scores.columns if name.startswith("prob:")]
    assert scores[columns].idxmax(axis=1).str[len("prob:"):].tolist() == predictions["predicted_label"].tolist()
    drawn = pd.read_csv(tmp_path / "first" / "draws.csv")
    assert list(drawn.columns) == ["repeat", "test_fold", "class", "item_id"]
    assert len(drawn) == 3 * 2 * 5 * 2  # repeats x test folds x classes x shots
    assert (drawn.groupby(["repeat", "test_fold", "class"]).size() == 2).all()
    items = predictions.set_index("item_id")
    assert (items.loc[drawn["item_id"], "true_label"].to_numpy() == drawn["class"].to_numpy()).all()
    assert (items.loc[drawn["item_id"], "fold"].to_numpy() != drawn["test_fold"].to_numpy()).all()  # training side
    assert not drawn[drawn["repeat"] == 0].equals(drawn[drawn["repeat"] == 1])


@pytest.mark.slow
def test_a_dataset_without_folds_is_split_and_says_so(tiny_model_dir, audiofolder, tmp_path, monkeypatch, capsys):
    common = ["dataset=audiofolder", f"dataset.path={audiofolder}", "model=tiny_random", "protocol=linear_probe"]
    code, stdout, stderr = run_cli(monkeypatch, capsys, *common, "protocol.split_fraction=0.3",
                                   f"output_dir={tmp_path / 'run'}")
    assert code == 0, stderr
    assert "linear_probe on a seeded split (30% of each class tested, seed 0): accuracy " in stdout
    assert "tested on 3 of 9 clips" in stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"]["kind"] == "seeded split" and metrics["n_tested"] == 3
    assert len(pd.read_csv(tmp_path / "run" / "predictions.csv")) == 3


@pytest.mark.slow
def test_probe_pages_say_what_was_tested_and_which_interval_each_figure_carries(tiny_model_dir, tmp_path, monkeypatch,
                                                                                capsys):
    """Without folds a probe tests 8 of the 40 clips: report.html says it is a probe, what it tested, and which
    interval its figures carry (few-shot: a t-interval over its draws), and plays its mistakes; the leaderboard counts
    the tested clips and tells the two kinds of interval apart."""
    import html

    from test_html_report import column, page_tables

    common = ["dataset=synthetic", "dataset.fold_column=null", "model=tiny_random", f"results_dir={tmp_path}",
              f"cache_dir={tmp_path / 'cache'}"]
    runs = {"few_shot": ["protocol=few_shot", "protocol.shots=2", "protocol.repeats=3"],
            "linear_probe": ["protocol=linear_probe"]}
    for name, overrides in runs.items():
        code, _, stderr = run_cli(monkeypatch, capsys, *common, *overrides, f"output_dir={tmp_path / name}")
        assert code == 0, stderr
    intervals = {"few_shot": "Intervals: 95% t-intervals of the mean over 3 draws of shots, every draw tested on the "
                             "same 8 clips",
                 "linear_probe": "Intervals: 95% bootstrap intervals over the 8 tested clips, 1000 resamples."}
    for name in runs:
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        predictions = pd.read_csv(tmp_path / name / "predictions.csv", keep_default_na=False)
        page = html.unescape((tmp_path / name / "report.html").read_text())
        assert (metrics["n_evaluated"], metrics["n_tested"], len(predictions)) == (40, 8, 8)
        metrics_section = page.split("<h2>Run</h2>")[0]
        assert intervals[name] in metrics_section
        assert ("bootstrap" in metrics_section) == (name == "linear_probe")
        assert f"<dt>protocol</dt><dd>{metrics['protocol_label']}: a classifier trained on the clips' audio " \
               "embeddings (not zero-shot)</dd>" in page
        assert "<dt>items</dt><dd>40 of 40 evaluated (embedded), 8 of them tested: the metrics cover those, 0 skipped" \
               in page
        assert "8 clips tested, 32 for training only</dd>" in page
        wrong = predictions[~predictions["correct"].astype(bool)].sort_values("score", ascending=False, kind="stable")
        assert len(wrong) > 0 and metrics["report"]["mistakes"] == metrics["report"]["clips"] == len(wrong)
        mistakes = page_tables(page)["mistakes-table"]
        assert column(mistakes, "item") == wrong["item_id"].tolist()
    assert column(mistakes, "true label's score")  # the linear probe's, from its scores.parquet
    board = pd.read_csv(tmp_path / "leaderboard.csv").set_index("protocol")
    few_shot = "few_shot 2-shot x3 logistic_regression"
    assert board.loc[[few_shot, "linear_probe"], "n"].tolist() == [8, 8]  # tested, not embedded
    assert board.loc[few_shot, "interval"] == "t over 3 draws on 8 tested clips"
    assert board.loc["linear_probe", "interval"] == "bootstrap over 8 tested clips"
    shown = {line.split("|")[2].strip(): line for line in (tmp_path / "leaderboard.md").read_text().splitlines()[2:]}
    assert f" {board.loc[few_shot, 'accuracy']:.4f} t[" in shown[few_shot]
    assert f" {board.loc['linear_probe', 'accuracy']:.4f} [" in shown["linear_probe"]
    lead = html.unescape((tmp_path / "leaderboard.html").read_text())
    assert "marked <code>t[...]</code>, a t-interval of the mean over its draws of shots" in lead


@pytest.mark.slow
def test_a_multilabel_dataset_gets_a_one_vs_rest_probe(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import soundfile as sf

    from conftest import tone

    folder = tmp_path / "data"  # the run directory is outside the dataset's folder
    folder.mkdir()

    sets = ["bell;chime", "alarm;beep", "speech", "bell", "alarm;chime", "speech;beep"]
    rows = ["file_name,tags,fold"]
    for index in range(18):
        labels = sets[index % len(sets)]
        sf.write(folder / f"c{index}.wav", tone(200.0 * (1 + sets.index(labels)) * (1 + 0.02 * index), 16000, 0.3),
                 16000)
        rows.append(f"c{index}.wav,{labels},{index // 6 + 1}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    common = ["dataset=audiofolder", f"dataset.path={folder}", "dataset.label_column=tags", "dataset.task=multilabel",
              'dataset.label_delimiter=";"', "dataset.fold_column=fold", "model=tiny_random"]
    code, stdout, stderr = run_cli(monkeypatch, capsys, *common, "protocol=linear_probe",
                                   f"output_dir={tmp_path / 'probe'}")
    assert code == 0, stderr
    assert "linear_probe on 3 official folds: mAP " in stdout
    metrics = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    assert (metrics["task"], metrics["main_score"], metrics["n_tested"]) == ("multilabel", "map", 18)
    scores = pd.read_parquet(tmp_path / "probe" / "scores.parquet")
    logits = scores[[f"logit:{name}" for name in metrics["labels"]]].to_numpy()
    np.testing.assert_allclose(scores[[f"sigmoid:{name}" for name in metrics["labels"]]], 1 / (1 + np.exp(-logits)))
    assert pd.read_csv(tmp_path / "probe" / "per_fold.csv").columns.tolist() == ["fold", "n", "map", "n_train", "c"]
    code, _, stderr = run_cli(monkeypatch, capsys, *common, f"output_dir={tmp_path / 'zeroshot'}")
    assert code == 0, stderr
    assert compare_runs(tmp_path / "zeroshot", tmp_path / "probe").n_common == 18


@pytest.mark.slow
def test_under_torchrun_the_processes_embed_and_rank_0_trains_alone(tiny_model_dir, esc50_folder, tmp_path):
    from test_scale import RUN_SPECIFIC, zsa_eval

    common = ["dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=tiny_random", "batch_size=2",
              "cache=false", "protocol=linear_probe"]
    code, _, stderr = run_cli_in_a_shared_fixture(*common, f"output_dir={tmp_path / 'single'}")  # the reference
    assert code == 0, stderr
    double = zsa_eval(*common, f"output_dir={tmp_path / 'double'}",
                      launcher=("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m"))
    assert double.returncode == 0, double.stderr
    assert double.stdout.count("esc50_folder | tiny_random | linear_probe on 2 official folds") == 1  # rank 0 only
    metrics, expected = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("double", "single"))
    assert metrics["processes"] == 2 and metrics["n_tested"] == 12
    same = ("accuracy", "chosen_c", "per_fold", "split", "identity_hash", "n_evaluated")
    assert {key: metrics[key] for key in same} == {key: expected[key] for key in same}
    assert set(metrics) - RUN_SPECIFIC == set(expected) - RUN_SPECIFIC
    predictions, expected_predictions = (pd.read_csv(tmp_path / run / "predictions.csv")
                                         for run in ("double", "single"))
    assert predictions["predicted_label"].tolist() == expected_predictions["predicted_label"].tolist()
    np.testing.assert_allclose(predictions["score"], expected_predictions["score"], atol=1e-5, rtol=0)


BAD_VALUES = [
    (["protocol=few_shot", "protocol.shots=0"],
     "protocol.shots=0 draws no clip to learn from: set protocol.shots=1 or more, or protocol.text_init=true"),
    (["protocol=few_shot", "protocol.shots=-1"],
     "protocol.shots=-1 is not valid: protocol.shots takes a whole number of at least 0"),
    (["protocol=few_shot", "protocol.classifier=text_prototype"],
     "protocol.classifier=text_prototype needs protocol.text_init=true"),
    (["protocol=linear_probe", "protocol.split_fraction=1.5"],
     "protocol.split_fraction=1.5 is not valid: protocol.split_fraction takes a number above 0 and below 1, or null"),
    (["protocol=linear_probe", "protocol.c_grid=[0.1,0]"],
     "protocol.c_grid=[0.1,0] is not valid: protocol.c_grid takes one or a list of numbers, each above 0"),
    (["protocol=linear_probe", "protocol.shots=8"],
     "protocol.shots is a setting of protocol=few_shot, not of the chosen protocol: choose that, or drop "
     "protocol.shots"),
    (["protocol=linear_probe", "protocol.shot=8"], "unknown key protocol.shot: did you mean protocol.shots?"),
    (["protocol=bogus"], "unknown protocol 'bogus': choose one of few_shot, linear_probe, mteb, zeroshot (conf/protocol/)"),
    (["protocol=linear_probe", "dataset=clotho"],
     "protocol=linear_probe cannot evaluate dataset=clotho (task retrieval): it has captions, not classes to learn"),
    (["protocol=few_shot", "dataset=fsd50k"],
     "protocol=few_shot cannot evaluate dataset=fsd50k (task multilabel): its clips carry label sets"),
    (["protocol=linear_probe", "engine=pipeline"],
     "protocol=linear_probe trains on the audio embeddings, which only engine=embed gives"),
]


@pytest.mark.parametrize("overrides, message", BAD_VALUES)
def test_bad_protocol_settings_are_one_line_and_exit_2(overrides, message, monkeypatch, capsys, tmp_path):
    code, _, stderr = run_cli(monkeypatch, capsys, "model=tiny_random", *overrides, f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("zsa-eval: error: ")
    assert message in stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", [
    (["dataset=synthetic", "dataset.clips_per_class=4", "protocol=few_shot", "protocol.shots=3"],
     "protocol.shots=3 is more than class 'clicks' has on the training side of test fold 1 (2 clips): lower "
     "protocol.shots to 2 or less"),
    (["dataset=synthetic", "dataset.clips_per_class=4", "dataset.folds=[1]", "protocol=linear_probe"],
     "protocol=linear_probe tests each official fold with a classifier trained on the others, and this selection of "
     "dataset=synthetic has one fold (1): select two or more (dataset.folds=null: all)"),
    (["dataset=audiofolder", "protocol=linear_probe", "protocol.split_fraction=null"],
     "dataset=audiofolder has no folds and protocol.split_fraction is null: set protocol.split_fraction=0.2 (a "
     "seeded split, 20% of each class tested), or choose a dataset with folds for protocol=linear_probe"),
])
def test_settings_the_dataset_cannot_meet_are_one_line_and_exit_2(overrides, message, tiny_model_dir, audiofolder,
                                                                   monkeypatch, capsys, tmp_path):
    code, _, stderr = run_cli(monkeypatch, capsys, "model=tiny_random", f"dataset.path={audiofolder}"
                              if "dataset=audiofolder" in overrides else "seed=0", *overrides,
                              f"output_dir={tmp_path / 'run'}")
    assert code == 2 and stderr.count("\n") == 1
    assert stderr == f"zsa-eval: error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_a_comparison_names_the_few_shot_draw_it_pairs():
    """predictions.csv of a few-shot run holds its first draw's answers: a comparison says that is what it pairs."""
    from pathlib import Path

    from zsa_eval.tasks.comparing import legend

    few_shot = {"model": "clap", "template": None, "protocol_label": "few_shot 8-shot x10 logistic_regression",
                "repeats": 10}
    assert legend("B", Path("runs/b"), few_shot) == ("B: clap | few_shot 8-shot x10 logistic_regression, compared on "
                                                    "its repeat 0 of 10 (predictions.csv; the run's headline averages "
                                                    "the repeats) (b)")
    assert legend("A", Path("runs/a"), {**few_shot, "repeats": 1}).endswith("logistic_regression (a)")


def test_classes_a_training_side_lacks_are_named(capsys):
    """Single-label labels or multi-label label-set columns: a class with no training clip where it is tested is
    recorded by test fold and named in a warning."""
    training = Training()
    training.note_untrained(1, np.array([0, 0, 2]), ["bell", "dog", "rain"])
    training.note_untrained(2, np.array([[1, 0, 1], [1, 0, 0]]), ["bell", "dog", "rain"])
    training.note_untrained(3, np.array([0, 1, 2]), ["bell", "dog", "rain"])
    assert training.untrained == {"dog": [1, 2]}
    training.warn(max_iter=100)
    assert capsys.readouterr().err == (
        "zsa-eval: warning: 1 class(es) had no training clip where they were tested: 'dog' (test fold 1, 2); the probe "
        "learned nothing of them, and their test clips count in the metrics (metrics.json "
        "classes_without_training_clips)\n")


@pytest.mark.slow
def test_the_probe_benchmark_runs_and_writes_its_figures(tmp_path):
    """scripts/benchmark.py --probe drives LinearProbeTask.probe directly: it keeps up with the task's signature."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, "scripts/benchmark.py", "--probe", "--probe-repeats", "1", "--out", str(out)],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert (figures["clips"], figures["classes"], figures["folds"], len(figures["chosen_c"])) == (2000, 50, 5, 5)
    assert figures["seconds"] > 0 and 0.5 < figures["accuracy"] <= 1.0
