"""Sweeps and leaderboards, comparisons, the CI gate, and their figures."""

import hashlib
import itertools
import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import run_cli, run_cli_in_a_shared_fixture
from zsa_eval.__main__ import FAILED_JOBS_FILE, SweepOutcome
from zsa_eval.report.__main__ import main as report_main
from zsa_eval.report.compare import compare_runs
from zsa_eval.report.across_models import heatmap_grids
from zsa_eval.report.board import collect_runs, leaderboard
from zsa_eval.report.leaderboard import write_leaderboard

OTHER_TINY_MODEL = """\
defaults:
  - tiny_random
name: tiny_other
name_or_path: ${cache_dir}/models/tiny_other
random_init_seed: 1
"""


def png_shape(path: Path) -> tuple[int, ...]:
    image = matplotlib.image.imread(path)
    assert image[..., :3].std() > 0.02  # not a blank canvas
    return image.shape


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """2 tiny models x 2 templates, as `python -m zsa_eval -m model=... template=...`, run once for the tests that
    read it."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    extra_configs = tmp_path / "extra_conf"
    (extra_configs / "model").mkdir(parents=True)
    (extra_configs / "model" / "tiny_other.yaml").write_text(OTHER_TINY_MODEL)
    results, cache = tmp_path / "results", tmp_path / "cache"
    code, stdout, stderr = run_cli_in_a_shared_fixture(
        "-m", "dataset=synthetic", "model=tiny_random,tiny_other", "template=sound_of,plain",
        f"hydra.searchpath=[file://{extra_configs}]", f"results_dir={results}", f"cache_dir={cache}")
    assert code == 0, stderr
    return results, cache, stdout


@pytest.mark.slow
def test_multirun_writes_a_sorted_leaderboard_and_heatmap(sweep):
    results, cache, stdout = sweep
    assert stdout.count("synthetic | tiny_") == 4
    board = pd.read_csv(results / "leaderboard.csv", keep_default_na=False)
    assert list(board.columns) == [  # the columns the runs' task declares (synthetic: 5 classes, so no top-5)
        "dataset", "task", "protocol", "source", "model", "family", "weights", "template", "prompts", "engine",
        "precision", "selection", "n_classes", "main_score", "interval", "chance_accuracy", "accuracy",
        "accuracy_ci95_low", "accuracy_ci95_high",
        "balanced_accuracy", "balanced_accuracy_ci95_low", "balanced_accuracy_ci95_high", "macro_f1",
        "macro_f1_ci95_low", "macro_f1_ci95_high", "n", "encoded_clips_per_s", "date", "run_dir", "identity"]
    assert (board["task"] == "classification").all() and (board["main_score"] == "accuracy").all()
    assert (board["accuracy_ci95_low"] <= board["accuracy"]).all() and (board["accuracy"] <=
                                                                         board["accuracy_ci95_high"]).all()
    assert sorted(zip(board["model"], board["template"])) == [
        ("tiny_other", "plain"), ("tiny_other", "sound_of"), ("tiny_random", "plain"), ("tiny_random", "sound_of")]
    assert board["accuracy"].is_monotonic_decreasing and (board["n"] == 40).all()
    assert (board["interval"] == "bootstrap over 40 clips").all()
    [sweep_dir] = (results / "sweeps").iterdir()  # each job's directory: the sweep's stamp and the job's number
    jobs = itertools.product(["tiny_random", "tiny_other"], ["sound_of", "plain"])  # in Hydra's order
    assert sorted(board["run_dir"]) == sorted(f"synthetic/{model}/{template}/{sweep_dir.name}-{number}"
                                              for number, (model, template) in enumerate(jobs))
    for run_dir in board["run_dir"]:
        metrics = json.loads((results / run_dir / "metrics.json").read_text())
        assert (metrics["model"], metrics["template"]) in zip(board["model"], board["template"])
    markdown = (results / "leaderboard.md").read_text()
    assert markdown.startswith("| dataset ") and markdown.count("\n") == 6
    height, width, _ = png_shape(results / "leaderboard_heatmap.png")
    assert width > 300 and height > 200


@pytest.mark.slow
def test_templates_of_one_model_share_its_audio_embeddings(sweep):
    _, cache, _ = sweep
    per_model = sorted(len(list(folder.glob("*.npy"))) for folder in (cache / "audio_embeddings").iterdir())
    assert per_model == [40, 40]  # 2 models x 40 clips, not x 2 templates


@pytest.mark.slow
def test_leaderboard_rebuilds_identically_from_the_runs(sweep, capsys, tmp_path):
    results = shutil.copytree(sweep[0], tmp_path / "results")  # a copy: the other tests read the sweep's
    written = {name: (results / name).read_bytes() for name in ("leaderboard.csv", "leaderboard.md",
                                                                 "leaderboard.json", "leaderboard.html")}
    for name in written:
        (results / name).unlink()
    assert report_main(["leaderboard", str(results)]) == 0
    assert capsys.readouterr().out == written["leaderboard.md"].decode()
    assert {name: (results / name).read_bytes() for name in written} == written


IDENTITY = {"family": "clap", "model_name_or_path": "laion/clap-htsat-fused", "model_revision": None,
            "weight_fingerprint": "aaaa1111aaaa", "dataset": "esc50", "dataset_source": "ashraq/esc50",
            "dataset_revision": None,
            "selection": {"label_column": "category", "classes": None, "folds": None, "subset": None, "limit": None,
                          "limit_mode": "stratified", "seed": 0},
            "template": "sound_of", "prompts": ["This is a sound of {}."], "engine": "embed", "precision": "fp32"}


def canonical_hash(payload, length: int) -> str:
    """The documented hash: SHA-256 of JSON with sorted keys and no spaces, first `length` hex digits."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fake_run(results: Path, name: str, accuracy: float, started_at: str = "2026-11-25T10:00:00+00:00",
             status: str = "complete", model: str = "clap", **changes) -> Path:
    """A finished run of the current metrics.json contract; `changes` replace identity fields
    (`selection_<key>` a selection field)."""
    identity = json.loads(json.dumps(IDENTITY))
    for key, value in changes.items():
        if key.startswith("selection_"):
            identity["selection"][key.removeprefix("selection_")] = value
        else:
            identity[key] = value
    metrics = {"accuracy": accuracy, "top_k": 5, "top_k_accuracy": 0.9, "balanced_accuracy": accuracy,
               "macro_f1": accuracy, "accuracy_ci95": [accuracy - 0.05, accuracy + 0.05],
               "top_k_accuracy_ci95": [0.85, 0.95], "balanced_accuracy_ci95": [accuracy - 0.05, accuracy + 0.05],
               "macro_f1_ci95": [accuracy - 0.06, accuracy + 0.04], "n_classes": 50, "chance_accuracy": 0.02,
               "status": status, "identity": identity, "identity_hash": canonical_hash(identity, 12),
               "prompts_hash": canonical_hash(identity["prompts"], 8), "dataset": identity["dataset"], "model": model,
               "template": identity["template"], "engine": identity["engine"], "precision": identity["precision"],
               "n_evaluated": 400, "n_items": 400, "n_skipped": 0, "started_at": started_at,
               "encoded_clips_per_s": 50.0}
    run_dir = results / name
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def board_of(results: Path, every_run: bool = False) -> pd.DataFrame:
    return leaderboard(collect_runs(results), every_run)


def test_runs_differing_only_in_prompts_weights_or_data_path_are_labelled_rows(tmp_path):
    fake_run(tmp_path, "base", 0.80)
    fake_run(tmp_path, "prompts", 0.78, prompts=["A sound of {}."])
    fake_run(tmp_path, "weights", 0.70, weight_fingerprint="cccc2222cccc")
    fake_run(tmp_path, "path_a", 0.60, dataset="audiofolder", dataset_source="/data/a")
    fake_run(tmp_path, "path_b", 0.65, dataset="audiofolder", dataset_source="/data/b")
    board = board_of(tmp_path).set_index("run_dir")
    assert len(board) == 5
    readable = ["dataset", "source", "model", "weights", "template", "prompts", "engine", "precision", "selection"]
    assert not board[readable].duplicated().any()
    assert board.loc["prompts", "prompts"] == canonical_hash(["A sound of {}."], 8)
    assert board.loc["base", "prompts"] == canonical_hash(["This is a sound of {}."], 8)
    assert board.loc["base", "template"] == board.loc["prompts", "template"] == "sound_of"
    assert board.loc["weights", "weights"] == "#cccc2222" and board.loc["base", "weights"] == "#aaaa1111"
    assert board.loc[["path_a", "path_b"], "source"].tolist() == ["/data/a", "/data/b"]
    assert board.loc["base", "source"] == ""  # one esc50 source: nothing to tell apart
    assert board.loc["base", "identity"] == canonical_hash(IDENTITY, 12)
    assert set(board["n_classes"]) == {50} and set(board["chance_accuracy"]) == {0.02}


def test_latest_complete_run_per_identity_and_failed_runs_only_with_all(tmp_path, capsys):
    fake_run(tmp_path, "old", 0.70, started_at="2026-11-24T10:00:00+00:00")
    fake_run(tmp_path, "new", 0.60, started_at="2026-11-25T10:00:00+00:00")
    fake_run(tmp_path, "failed", 0.10, started_at="2026-11-26T10:00:00+00:00", status="too_many_skips")
    fake_run(tmp_path, "other", 0.50, engine="pipeline")
    board = board_of(tmp_path)
    assert board["run_dir"].tolist() == ["new", "other"] and "status" not in board
    assert report_main(["leaderboard", "--all", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    every = pd.read_csv(tmp_path / "leaderboard_all.csv", keep_default_na=False)
    assert every["run_dir"].tolist() == ["old", "new", "other", "failed"]  # best accuracy first
    assert every["status"].tolist() == ["complete", "complete", "complete", "too_many_skips"]
    assert printed == (tmp_path / "leaderboard_all.md").read_text() and "too_many_skips" in printed
    assert not (tmp_path / "leaderboard.csv").exists()  # --all leaves the leaderboard itself alone


def test_rows_are_grouped_by_dataset_then_sorted_by_accuracy(tmp_path):
    fake_run(tmp_path, "esc_low", 0.30)
    fake_run(tmp_path, "esc_high", 0.90, template="plain", prompts=["{}"])
    fake_run(tmp_path, "birds_mid", 0.50, dataset="audiofolder", dataset_source="/data/birds")
    fake_run(tmp_path, "birds_top", 0.95, dataset="audiofolder", dataset_source="/data/birds", template="plain",
             prompts=["{}"])
    fake_run(tmp_path, "synthetic", 0.20, dataset="synthetic", dataset_source="/cache/synthetic")
    assert board_of(tmp_path)["run_dir"].tolist() == ["birds_top", "birds_mid", "esc_high", "esc_low", "synthetic"]


def test_old_runs_get_an_identity_from_their_config_or_names(tmp_path):
    def old_run(name: str, accuracy: float, name_or_path: str | None, n_skipped: int = 0) -> None:
        metrics = {"accuracy": accuracy, "top_k_accuracy": 1.0, "balanced_accuracy": accuracy, "macro_f1": accuracy,
                   "dataset": "esc50", "model": "clap", "template": "sound_of", "n_evaluated": 40, "n_items": 40,
                   "n_skipped": n_skipped, "started_at": f"2026-11-2{len(name)}T10:00:00+00:00", "clips_per_s": 9.0,
                   "labels": ["cat", "dog"], "prompts": ["This is a sound of {}."]}
        if name_or_path:
            metrics["config"] = {"model": {"name": "clap", "name_or_path": name_or_path, "revision": None},
                                 "dataset": {"name": "esc50", "hub_id": "ashraq/esc50", "label_column": "category"},
                                 "template": {"name": "sound_of", "prompts": ["This is a sound of {}."]},
                                 "engine": "embed", "precision": "fp32", "limit": None, "seed": 0,
                                 "max_skip_fraction": 0.05}
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))

    old_run("hub", 0.8, "laion/clap-htsat-fused")
    old_run("local", 0.7, "/models/mine")
    old_run("skips", 0.9, "/models/other", n_skipped=10)  # 25% skipped > 0.05: that run exited 2
    old_run("bare1", 0.4, None)
    old_run("bare22", 0.3, None)  # same dataset | model | template as bare1, started later
    metrics = json.loads((tmp_path / "local" / "metrics.json").read_text())
    metrics["top5_accuracy"] = metrics.pop("top_k_accuracy")  # older still: top-5 had its own name
    (tmp_path / "local" / "metrics.json").write_text(json.dumps(metrics))
    board = board_of(tmp_path).set_index("run_dir")
    assert sorted(board.index) == ["bare22", "hub", "local"]
    assert board.loc["local", ["top_k", "top_k_accuracy"]].tolist() == [5, 1.0]
    assert board.loc["hub", "weights"] == "laion/clap-htsat-fused" and board.loc["local", "weights"] == "/models/mine"
    assert board.loc["hub", "n_classes"] == 2 and board.loc["hub", "chance_accuracy"] == 0.5
    assert board.loc["hub", "encoded_clips_per_s"] == 9.0 and pd.isna(board.loc["hub", "accuracy_ci95_low"])
    assert "status" in board_of(tmp_path, every_run=True)


def test_heatmap_cells_are_exactly_the_leaderboard_rows(tmp_path):
    fake_run(tmp_path, "embed", 0.80)
    fake_run(tmp_path, "pipeline", 0.75, engine="pipeline")  # same model x template cell as "embed"
    fake_run(tmp_path, "tiny_look", 0.0, selection_limit=1, started_at="2026-11-26T10:00:00+00:00")
    fake_run(tmp_path, "prompts", 0.70, prompts=["A sound of {}."])
    fake_run(tmp_path, "stale", 0.99, started_at="2026-11-20T10:00:00+00:00")  # older run of "embed"'s identity
    fake_run(tmp_path, "failed", 0.01, status="too_many_skips", started_at="2026-11-27T10:00:00+00:00")
    fake_run(tmp_path, "birds", 0.5, dataset="audiofolder", dataset_source="/data/birds")
    fake_run(tmp_path, "cars", 0.6, dataset="audiofolder", dataset_source="/data/cars")
    board = write_leaderboard(tmp_path)
    grids = heatmap_grids(board)
    assert list(grids) == ["accuracy on audiofolder (/data/birds)", "accuracy on audiofolder (/data/cars)",
                           "accuracy on esc50"]
    cells = sorted(value for grid in grids.values() for value in grid.to_numpy().ravel() if np.isfinite(value))
    assert cells == sorted(board["accuracy"]) == [0.0, 0.5, 0.6, 0.7, 0.75, 0.8]
    esc50 = grids["accuracy on esc50"]
    template = "sound_of #" + canonical_hash(IDENTITY["prompts"], 8)
    assert esc50.loc["clap | embed | all", template] == 0.80
    assert esc50.loc["clap | pipeline | all", template] == 0.75
    assert esc50.loc["clap | embed | limit=1 stratified, seed=0", template] == 0.0
    assert esc50.loc["clap | embed | all", "sound_of #" + canonical_hash(["A sound of {}."], 8)] == 0.70
    height, width, _ = png_shape(tmp_path / "leaderboard_heatmap.png")
    assert height > 500 and width > 500


def write_run(run_dir: Path, labels: list[str], predictions: list[tuple[str, str, str]]) -> Path:
    """A hand-made finished run: metrics.json, per_class.csv and predictions.csv (top-2: the prediction, then
    the first other label)."""
    run_dir.mkdir(parents=True)
    metrics = {"accuracy": 0.0, "top_k_accuracy": 1.0, "balanced_accuracy": 0.0, "macro_f1": 0.0,
               "n_evaluated": len(predictions), "n_skipped": 0, "labels": labels}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame({"label": labels, "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}).to_csv(
        run_dir / "per_class.csv", index=False)
    rows = [{"item_id": item, "true_label": true, "predicted_label": predicted, "correct": true == predicted,
             "top1_label": predicted, "top1_score": 0.6,
             "top2_label": next(label for label in labels if label != predicted), "top2_score": 0.3}
            for item, true, predicted in predictions]
    pd.DataFrame(rows).to_csv(run_dir / "predictions.csv", index=False)
    return run_dir


def test_compare_two_hand_made_runs(tmp_path, capsys):
    labels = ["cat", "dog", "rain"]
    run_a = write_run(tmp_path / "a", labels,
                      [("1", "cat", "cat"), ("2", "dog", "dog"), ("3", "rain", "dog"), ("4", "dog", "cat")])
    run_b = write_run(tmp_path / "b", labels,
                      [("1", "cat", "cat"), ("2", "dog", "rain"), ("3", "rain", "rain"), ("4", "dog", "cat")])
    comparison = compare_runs(run_a, run_b)
    deltas = comparison.metric_deltas.set_index("metric")
    # accuracy 2/4 each; top-2 hits 3/4 each; recalls A (1, 1/2, 0), B (1, 0, 1);
    # F1 = 2 tp / (support + predicted): A (2/3, 2/4, 0), B (2/3, 0, 2/3)
    assert deltas["a"].to_dict() == pytest.approx({"accuracy": 0.5, "top_k_accuracy": 0.75,
                                                   "balanced_accuracy": 0.5, "macro_f1": 7 / 18})
    assert deltas["delta"].to_dict() == pytest.approx({"accuracy": 0.0, "top_k_accuracy": 0.0,
                                                       "balanced_accuracy": 1 / 6, "macro_f1": 1 / 18})
    assert comparison.recall_deltas[["label", "delta"]].values.tolist() == [["rain", 1.0], ["dog", -0.5],
                                                                             ["cat", 0.0]]
    assert comparison.changed[["item_id", "predicted_a", "predicted_b"]].values.tolist() == [
        ["2", "dog", "rain"], ["3", "dog", "rain"]]
    assert comparison.mcnemar["p_value"] == 1.0  # one discordant item each way
    out = tmp_path / "comparison"
    assert report_main(["compare", str(run_a), str(run_b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Items whose prediction changed: 2 (1 now right, 1 now wrong)" in printed
    assert "Compared on the 4 items both runs evaluated (A evaluated 4, B 4)." in printed
    assert "on 4 common items: not significant at 0.05" in printed
    assert (out / "compare.md").read_text() == printed
    assert len(pd.read_csv(out / "changed_predictions.csv")) == 2
    height, width, _ = png_shape(out / "compare_recall.png")
    assert width > 400 and height > 300


def test_each_comparison_gets_its_own_folder_by_default(tmp_path, capsys, monkeypatch):
    from zsa_eval.report.compare import comparison_dir

    monkeypatch.setenv("ZSA_EVAL_RESULTS", str(tmp_path / "results"))
    labels = ["cat", "dog"]
    runs = {name: write_run(tmp_path / name, labels, [("1", "cat", "cat"), ("2", "dog", predicted)])
            for name, predicted in (("a", "dog"), ("b", "cat"), ("c", "dog"))}
    assert report_main(["compare", str(runs["a"]), str(runs["b"])]) == 0
    assert report_main(["compare", str(runs["a"]), str(runs["c"])]) == 0
    first, second = comparison_dir(runs["a"], runs["b"]), comparison_dir(runs["a"], runs["c"])
    assert first.parent == second.parent == tmp_path / "results" / "compare" and first != second
    assert first.name.startswith("a__vs__b-") and second.name.startswith("a__vs__c-")
    assert json.loads((first / "compare.json").read_text())["run_b"] == str(runs["b"])
    assert json.loads((second / "compare.json").read_text())["run_b"] == str(runs["c"])
    assert f"zsa-eval: comparison written to {second}" in capsys.readouterr().err


def test_compare_restricts_to_common_items_with_an_exact_mcnemar_test(tmp_path, capsys):
    labels = ["cat", "dog"]
    # common items c0..c9: only B right on 5, only A right on 1, both right on 2, both wrong on 2
    outcomes = ["b"] * 5 + ["a"] + ["both"] * 2 + ["neither"] * 2
    common_a = [(f"c{i}", "cat", "cat" if outcome in ("a", "both") else "dog") for i, outcome in enumerate(outcomes)]
    common_b = [(f"c{i}", "cat", "cat" if outcome in ("b", "both") else "dog") for i, outcome in enumerate(outcomes)]
    run_a = write_run(tmp_path / "a", labels, common_a + [(f"a{i}", "dog", "dog") for i in range(6)])
    run_b = write_run(tmp_path / "b", labels, [(f"b{i}", "dog", "cat") for i in range(3)] + common_b)
    comparison = compare_runs(run_a, run_b, resamples=400, seed=5)
    assert (comparison.n_a, comparison.n_b, comparison.n_common) == (16, 13, 10)
    deltas = comparison.metric_deltas.set_index("metric")
    assert deltas.loc["accuracy", ["a", "b", "delta"]].tolist() == pytest.approx([0.3, 0.7, 0.4])
    # two-sided exact binomial test, 1 of 6 discordant pairs: p = 2 * (C(6,0) + C(6,1)) / 2^6 = 14/64
    assert comparison.mcnemar == {"a_only_correct": 1, "b_only_correct": 5, "p_value": pytest.approx(14 / 64),
                                  "significant": False, "alpha": 0.05}
    for row in comparison.metric_deltas.itertuples():
        assert row.delta_ci95_low <= row.delta <= row.delta_ci95_high
    assert compare_runs(run_a, run_b, resamples=400, seed=5).metric_deltas.equals(comparison.metric_deltas)
    out = tmp_path / "comparison"
    assert report_main(["compare", str(run_a), str(run_b), "--out", str(out), "--resamples", "400",
                        "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "Compared on the 10 items both runs evaluated (A evaluated 16, B 13)." in printed
    assert "Accuracy B - A = +0.4000" in printed and "not significant at 0.05 (exact McNemar p = 0.2188" in printed
    saved = json.loads((out / "compare.json").read_text())
    assert (saved["n_common"], saved["mcnemar"]["b_only_correct"]) == (10, 5)
    assert saved["metrics"]["accuracy"]["delta_ci95"] == [deltas.loc["accuracy", "delta_ci95_low"],
                                                          deltas.loc["accuracy", "delta_ci95_high"]]
    assert saved["bootstrap"] == {"resamples": 400, "seed": 5, "level": 0.95}


def test_compare_calls_a_one_sided_run_of_discordant_items_significant(tmp_path):
    labels = ["cat", "dog"]
    run_a = write_run(tmp_path / "a", labels, [(str(i), "cat", "dog") for i in range(8)])
    run_b = write_run(tmp_path / "b", labels, [(str(i), "cat", "cat") for i in range(8)])
    comparison = compare_runs(run_a, run_b)
    # all 8 discordant pairs favour B: p = 2 / 2^8
    assert comparison.mcnemar["p_value"] == pytest.approx(2 / 256) and comparison.mcnemar["significant"]
    assert comparison.metric_deltas.set_index("metric").loc["accuracy", ["delta_ci95_low", "delta_ci95_high"]] \
        .tolist() == [1.0, 1.0]


def test_compare_reads_runs_written_before_top_k_columns(tmp_path):
    labels = ["cat", "dog", "a|b"]
    run_a = write_run(tmp_path / "a", labels, [("1", "cat", "dog"), ("2", "dog", "dog"), ("3", "a|b", "cat")])
    predictions = pd.read_csv(run_a / "predictions.csv", keep_default_na=False, dtype=str)
    predictions["top5_labels"] = ["dog|cat|a|b", "dog|cat|a|b", "cat|dog|a|b"]  # the old |-joined column
    predictions.drop(columns=["top1_label", "top1_score", "top2_label", "top2_score"]).to_csv(
        run_a / "predictions.csv", index=False)
    run_b = write_run(tmp_path / "b", labels, [("1", "cat", "dog"), ("2", "dog", "cat"), ("3", "a|b", "a|b")])
    deltas = compare_runs(run_a, run_b).metric_deltas.set_index("metric")
    # A: cat and dog are in their |-joined lists, "a|b" splits apart there (the old format's ambiguity); B: 3/3
    assert deltas.loc["top_k_accuracy", ["a", "b"]].tolist() == pytest.approx([2 / 3, 1.0])


def test_compare_refuses_runs_without_common_items(tmp_path, capsys):
    run_a = write_run(tmp_path / "a", ["cat", "dog"], [("1", "cat", "cat")])
    run_b = write_run(tmp_path / "b", ["cat", "dog"], [("2", "cat", "cat")])
    assert report_main(["compare", str(run_a), str(run_b)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "the runs share no item (1 in" in stderr


def test_compare_refuses_different_label_sets(tmp_path, capsys):
    run_a = write_run(tmp_path / "a", ["cat", "dog"], [("1", "cat", "cat")])
    run_b = write_run(tmp_path / "b", ["cat", "rain"], [("1", "cat", "cat")])
    assert report_main(["compare", str(run_a), str(run_b)]) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "different class sets (1 only in" in stderr
    assert report_main(["compare", str(run_a), str(run_a)]) == 2
    assert "are the same run: pass two runs to compare" in capsys.readouterr().err


@pytest.fixture(scope="module")
def smoke_accuracy(tmp_path_factory, tiny_model_dir) -> float:
    from conftest import compose_config
    from zsa_eval.run import run

    out = tmp_path_factory.mktemp("gate") / "run"
    return run(compose_config("dataset=synthetic", "model=tiny_random", f"output_dir={out}"))["accuracy"]


@pytest.mark.slow
def test_gate_exit_codes(monkeypatch, capsys, tmp_path, smoke_accuracy):
    def gate(*arguments):
        code, _, stderr = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random",
                                  f"output_dir={tmp_path / str(len(list(tmp_path.iterdir())))}", *arguments)
        return code, stderr.strip()

    assert gate(f"gate.min_accuracy={smoke_accuracy}") == (0, "")
    code, line = gate("gate.min_accuracy=0.99")
    code_again, stdout, _ = run_cli(monkeypatch, capsys, "dataset=synthetic", "model=tiny_random",
                                    f"output_dir={tmp_path / 'summarized'}", "gate.min_accuracy=0.99")
    assert code_again == 3 and stdout.startswith(f"synthetic | tiny_random | auto: accuracy {smoke_accuracy:.4f} ")
    assert code == 3 and line.startswith(f"zsa-eval: gate failed: accuracy {smoke_accuracy:.4f} is below "
                                         f"gate.min_accuracy=0.99 by {0.99 - smoke_accuracy:.4f}")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"accuracy": smoke_accuracy + 0.05}))
    code, line = gate(f"gate.baseline={baseline}", "gate.max_drop=0.01")
    assert code == 3 and "dropped 0.0500 below the baseline's" in line and "gate.max_drop=0.01" in line
    assert gate(f"gate.baseline={baseline}", "gate.max_drop=0.06") == (0, "")
    code, line = gate(f"gate.baseline={tmp_path / 'missing.json'}")
    assert code == 2 and "gate.baseline=" in line and line.count("\n") == 0


@pytest.mark.slow
def test_a_baseline_of_other_data_is_refused(monkeypatch, capsys, tmp_path, esc50_folder, tiny_model_dir):
    from conftest import compose_config
    from zsa_eval.run import run

    other = run(compose_config("dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=tiny_random",
                               f"output_dir={tmp_path / 'esc50'}"))
    same = run(compose_config("dataset=synthetic", "model=tiny_random", f"output_dir={tmp_path / 'synthetic'}"))
    arguments = ["dataset=synthetic", "model=tiny_random", f"output_dir={tmp_path / 'gated'}"]
    code, _, stderr = run_cli(monkeypatch, capsys, *arguments, f"gate.baseline={tmp_path / 'esc50' / 'metrics.json'}")
    assert code == 2 and stderr == (
        f"zsa-eval: error: gate.baseline={tmp_path / 'esc50' / 'metrics.json'} evaluated other data (dataset "
        f"'esc50_folder' there, 'synthetic' here, items_fingerprint {other['identity']['items_fingerprint']!r} there, "
        f"{same['identity']['items_fingerprint']!r} here): its accuracy does not bound this run's; point "
        "gate.baseline at a run of the same dataset and selection\n")
    assert not (tmp_path / "gated").exists()
    limited = run(compose_config("dataset=synthetic", "model=tiny_random", "limit=10", f"output_dir={tmp_path / 'ten'}"))
    code, _, stderr = run_cli(monkeypatch, capsys, *arguments, f"gate.baseline={tmp_path / 'ten' / 'metrics.json'}")
    assert code == 2 and f"items_fingerprint {limited['identity']['items_fingerprint']!r} there" in stderr
    code, _, _ = run_cli(monkeypatch, capsys, *arguments, f"gate.baseline={tmp_path / 'synthetic' / 'metrics.json'}")
    assert code == 0


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_sweep(monkeypatch, capsys, tmp_path, tiny_model_dir):
    results = tmp_path / "results"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "-m", "dataset=synthetic", "model=tiny_random",
                                   "template=sound_of,plain", "gate.min_accuracy=0.99", f"results_dir={results}")
    assert code == 3
    assert stderr.count("gate failed") == 2 and "2 job(s) of the sweep failed" in stderr
    assert len(pd.read_csv(results / "leaderboard.csv")) == 2  # both jobs wrote their results first
    failed = list(results.glob("sweeps/*/failed_jobs.jsonl"))
    assert len(failed) == 1 and len(failed[0].read_text().splitlines()) == 2


def test_a_sweep_run_again_in_its_directory_lists_only_its_own_failures(tmp_path):
    (tmp_path / FAILED_JOBS_FILE).write_text('{"job": 0, "overrides": "", "code": 3, "message": "gate failed"}\n')
    SweepOutcome().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert not (tmp_path / FAILED_JOBS_FILE).exists()


def test_top_k_is_compared_only_between_runs_of_one_k_below_the_class_count():
    from zsa_eval.tasks.classification_compare import compared_metrics

    five = {"top_k": 5, "labels": list("abcdefg")}
    assert "top_k_accuracy" in compared_metrics(five, five)
    assert "top_k_accuracy" not in compared_metrics(five, five | {"top_k": 1})  # an answer's top-1 beside a top-5
    assert "top_k_accuracy" not in compared_metrics(five | {"top_k": 7}, five | {"top_k": 7})  # every class: 1.0
    assert compared_metrics({"labels": ["a", "b"]}, {"labels": ["a", "b"]})[1] == "top_k_accuracy"  # older runs
