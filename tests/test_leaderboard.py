"""The leaderboard's own rules, on hand-made metrics.json dicts (no model, no run): which run stands for an
identity, the order, the labels that tell rows apart, intervals, and runs written before identities existed."""

import json

import pandas as pd

from zsa_eval.provenance import short_hash
from zsa_eval.store import changed_keys
from zsa_eval.report.__main__ import main as report_main
from zsa_eval.report.across_models import by_dataset, heatmap_grids
from zsa_eval.provenance import prompts_hash
from zsa_eval.report.board import (collect_runs, derived_identity, leaderboard, run_row, run_status, selection_label,
                                   weights_label)
from zsa_eval.report.leaderboard import interval_cell, leaderboard_json, leaderboard_markdown


def metrics(accuracy: float, started: str, identity: dict | None = None, **extra) -> dict:
    identity = identity or {"family": "clap", "model_name_or_path": "m", "dataset": "d", "template": "t"}
    return {"dataset": identity.get("dataset", "d"), "model": "m", "template": "t", "accuracy": accuracy,
            "accuracy_ci95": [accuracy - 0.1, accuracy + 0.1], "top_k_accuracy": 1.0, "balanced_accuracy": accuracy,
            "macro_f1": accuracy, "n_evaluated": 10, "started_at": started, "finished_at": started,
            "identity": identity, "identity_hash": short_hash(identity, 12), "status": "complete", **extra}


def board_of(*runs: dict, every_run: bool = False) -> pd.DataFrame:
    rows = pd.DataFrame([run_row(run, f"run{index}") for index, run in enumerate(runs)])
    return leaderboard(rows, every_run)


def test_latest_complete_run_stands_for_its_identity():
    same = {"family": "clap", "model_name_or_path": "m", "dataset": "d", "template": "t"}
    board = board_of(metrics(0.4, "2026-01-01T00:00:00", same), metrics(0.6, "2026-01-02T00:00:00", same),
                     metrics(0.9, "2026-01-03T00:00:00", same, status="too_many_skips"))
    assert board["accuracy"].tolist() == [0.6] and board["run_dir"].tolist() == ["run1"]
    assert "status" not in board
    every = board_of(metrics(0.4, "2026-01-01T00:00:00", same), metrics(0.9, "2026-01-03T00:00:00", same,
                                                                          status="too_many_skips"), every_run=True)
    assert every["accuracy"].tolist() == [0.9, 0.4] and every["status"].tolist() == ["too_many_skips", "complete"]


def test_rows_are_grouped_by_dataset_and_best_first():
    runs = [metrics(accuracy, "2026-01-01T00:00:00", {"dataset": dataset, "template": name})
            for dataset, accuracy, name in [("b", 0.2, "x"), ("a", 0.3, "y"), ("b", 0.7, "z"), ("a", 0.9, "w")]]
    board = board_of(*runs)
    assert list(zip(board["dataset"], board["accuracy"])) == [("a", 0.9), ("a", 0.3), ("b", 0.7), ("b", 0.2)]


def test_weights_and_source_are_shown_only_where_they_tell_rows_apart():
    one = {"family": "clap", "model_name_or_path": "m", "weight_fingerprint": "aaaaaaaaaaaa", "dataset": "d",
           "dataset_source": "/data/x", "dataset_revision": None}
    other = one | {"weight_fingerprint": "bbbbbbbbbbbb", "dataset_source": "/data/y"}
    board = board_of(metrics(0.5, "2026-01-01T00:00:00", one), metrics(0.4, "2026-01-01T00:00:00", other))
    assert sorted(board["weights"]) == ["#aaaaaaaa", "#bbbbbbbb"]
    assert sorted(board["source"]) == ["/data/x", "/data/y"]
    alike = board_of(metrics(0.5, "2026-01-01T00:00:00", one), metrics(0.4, "2026-01-01T00:00:00", one | {"x": 1}))
    assert alike["weights"].tolist() == ["", ""] and alike["source"].tolist() == ["", ""]
    assert "| source" not in leaderboard_markdown(alike)


def test_weights_label_names_each_differing_part():
    identity = {"family": "pe_audio", "model_name_or_path": "org/m", "model_revision": "abc",
                "weight_fingerprint": "0123456789ab"}
    assert weights_label(identity, set()) == ""
    assert weights_label(identity, {"family"}) == "[pe_audio]"
    assert weights_label(identity, {"model_name_or_path"}) == "org/m"
    assert weights_label(identity, {"model_revision"}) == "org/m@abc"
    assert weights_label(identity | {"model_revision": None}, {"model_revision"}) == "org/m@(none)"
    assert weights_label(identity, {"family", "weight_fingerprint"}) == "[pe_audio] #01234567"


def test_selection_label_spells_out_short_selections_and_counts_long_ones():
    assert selection_label({}, set()) == "all"
    assert selection_label({"folds": [1, 2], "subset": "esc10"}, set()) == "folds=1,2, subset=esc10"
    assert selection_label({"classes": ["a", "b", "c", "d"]}, set()) == "classes=a,b,c,d"
    five = ["a", "b", "c", "d", "e"]
    assert selection_label({"classes": five}, set()) == f"5 classes #{short_hash(five, 6)}"
    assert selection_label({"limit": 8, "limit_mode": "first", "seed": 3}, set()) == "limit=8 first"
    assert selection_label({"limit": 8, "limit_mode": "stratified", "seed": 3}, set()) == \
        "limit=8 stratified, seed=3"
    assert selection_label({"label_column": "genre", "seed": 1}, {"selection.label_column", "selection.seed"}) == \
        "label=genre, seed=1"


def test_interval_cells_and_hashes():
    assert interval_cell(0.5, 0.25, 0.75) == "0.5000 [0.2500, 0.7500]"
    assert interval_cell(0.5, None, None) == "0.5000" and interval_cell(0.5, float("nan"), 0.7) == "0.5000"
    assert prompts_hash(["{}"]) == short_hash(["{}"], 8) and len(prompts_hash(["{}"])) == 8
    assert short_hash({"b": 1, "a": [1, 2]}, 64) == short_hash({"a": [1, 2], "b": 1}, 64)  # key order free
    assert changed_keys({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 1, "c": 3}, "e": 1}) == ["a.c", "d", "e"]


def test_status_of_older_runs_follows_their_skip_fraction():
    assert run_status({"status": "too_many_skips"}) == "too_many_skips"
    old = {"n_items": 20, "config": {"max_skip_fraction": 0.05}}
    assert run_status(old | {"n_skipped": 1}) == "complete"  # exactly 5%: not above the limit
    assert run_status(old | {"n_skipped": 2}) == "too_many_skips"
    assert run_status({"n_items": 20, "n_skipped": 20}) == "complete"  # no limit recorded


def test_runs_written_before_identities_are_rebuilt_from_their_config(tmp_path):
    config = {"dataset": {"name": "esc50", "hub_id": "ashraq/esc50", "label_column": "category", "folds": [1]},
              "model": {"name_or_path": "laion/clap-htsat-fused"}, "template": {"name": "plain", "prompts": ["{}"]},
              "engine": "embed", "precision": "fp32", "limit": 100, "seed": 0}
    identity = derived_identity({"config": config})
    assert identity == {
        "family": "clap", "model_name_or_path": "laion/clap-htsat-fused", "model_revision": None,
        "weight_fingerprint": None, "dataset": "esc50", "dataset_source": "ashraq/esc50", "dataset_revision": None,
        "selection": {"label_column": "category", "classes": None, "folds": [1], "subset": None, "limit": 100,
                      "limit_mode": "first", "seed": 0},
        "template": "plain", "prompts": ["{}"], "engine": "embed", "precision": "fp32"}
    folder = derived_identity({"config": {**config, "limit": None, "limit_mode": "stratified",
                                          "model": {"family": "pe_audio", "name_or_path": "m", "revision": "r"},
                                          "dataset": {"name": "mine", "path": "/data/mine", "revision": "v1"}}})
    assert (folder["family"], folder["model_revision"], folder["dataset_source"], folder["dataset_revision"]) == \
        ("pe_audio", "r", "/data/mine", "v1")
    assert (folder["selection"]["limit"], folder["selection"]["limit_mode"]) == (None, "stratified")
    assert derived_identity({"config": {**config, "limit": None}})["selection"]["limit_mode"] is None
    assert derived_identity({"dataset": "d", "model": "m", "template": "t"}) == \
        {"dataset": "d", "model": "m", "template": "t"}
    old = {"dataset": "esc50", "model": "clap", "template": "plain", "accuracy": 0.8, "top5_accuracy": 0.95,
           "balanced_accuracy": 0.8, "macro_f1": 0.79, "n_evaluated": 400, "started_at": "2025-01-01T00:00:00",
           "config": config}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metrics.json").write_text(json.dumps(old))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    runs = collect_runs(tmp_path)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert (row["top_k"], row["top_k_accuracy"], row["prompts"]) == (5, 0.95, prompts_hash(["{}"]))
    assert row["identity"] == short_hash(identity, 12) and pd.isna(row["accuracy_ci95_low"])


def test_heatmap_has_one_cell_per_row_even_when_labels_coincide():
    one = {"family": "clap", "model_name_or_path": "m", "dataset": "d", "template": "t"}
    board = board_of(metrics(0.5, "2026-01-01T00:00:00", one), metrics(0.4, "2026-01-01T00:00:00", one | {"x": 1}))
    grid = heatmap_grids(board)["accuracy on d"]
    assert grid.size == 2 and sorted(grid.stack().tolist()) == [0.4, 0.5]
    assert all(" id " in label for label in grid.index)


def test_markdown_shows_each_metric_with_its_own_interval():
    run = metrics(0.5, "2026-01-01T00:00:00", top_k_accuracy_ci95=[0.9, 1.0], balanced_accuracy=0.45,
                  balanced_accuracy_ci95=[0.3, 0.55], macro_f1=0.4, macro_f1_ci95=[0.2, 0.6])
    table = leaderboard_markdown(board_of(run))
    for cell in ("0.5000 [0.4000, 0.6000]", "1.0000 [0.9000, 1.0000]", "0.4500 [0.3000, 0.5500]",
                 "0.4000 [0.2000, 0.6000]"):
        assert cell in table


def test_markdown_and_json_of_a_board_mixing_the_three_tasks():
    single = metrics(0.5, "2026-01-01T00:00:00", {"dataset": "esc50", "template": "t"}, dataset="esc50", top_k=5,
                     n_classes=50, chance_accuracy=0.02, top_k_accuracy_ci95=[0.9, 1.0],
                     balanced_accuracy_ci95=[0.4, 0.6], macro_f1_ci95=[0.4, 0.6], encoded_clips_per_s=12.5)
    tagging = {"dataset": "fsd50k", "model": "m", "template": "t", "task": "multilabel", "map": 0.3,
               "map_ci95": [0.25, 0.35], "chance_map": 0.01, "n_classes": 200, "n_evaluated": 8,
               "started_at": "2026-01-01T00:00:00", "identity": {"dataset": "fsd50k"}, "status": "complete"}
    retrieval = {"dataset": "clotho", "model": "m", "template": None, "task": "retrieval", "n_evaluated": 4,
                 "started_at": "2026-01-01T00:00:00", "identity": {"dataset": "clotho"}, "status": "complete",
                 **{f"{d}_{name}": 0.5 for d in ("t2a", "a2t") for name in
                    ("recall_at_1", "recall_at_5", "recall_at_10", "map_at_10", "median_rank", "mean_rank")},
                 "t2a_recall_at_1_ci95": [0.25, 0.75]}
    board = board_of(single, tagging, retrieval)
    lines = leaderboard_markdown(board).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    # the columns each task declares, tasks in name order: classification (accuracy, k, top-k, balanced, macro F1),
    # multilabel (mAP), retrieval (R@k and mAP@10 both ways)
    assert header[:13] == ["dataset", "task", "model", "family", "template", "prompts", "engine", "precision",
                           "selection", "n_classes", "chance", "accuracy [95% CI]", "k"]
    assert header[13:17] == ["top-k [95% CI]", "balanced acc. [95% CI]", "macro F1 [95% CI]", "mAP [95% CI]"]
    assert header[17:25] == [f"{d} {m} [95% CI]" for d in ("T2A", "A2T") for m in ("R@1", "R@5", "R@10", "mAP@10")]
    assert header[25:] == ["n", "clips/s", "date", "run_dir", "identity"]
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]}
    assert rows["clotho"][1] == "retrieval" and rows["clotho"][17] == "0.5000 [0.2500, 0.7500]"
    assert rows["clotho"][11] == "" and rows["clotho"][12] == ""  # no accuracy, no k
    assert rows["fsd50k"][10] == "0.0100" and rows["fsd50k"][16] == "0.3000 [0.2500, 0.3500]"
    assert rows["esc50"][10] == "0.0200" and rows["esc50"][12] == "5" and rows["esc50"][26] == "12.5000"
    assert rows["esc50"][16] == "" and rows["esc50"][17] == ""
    # counts as whole numbers, no "nan" for what a task lacks, "-" for a run that encoded nothing
    assert (rows["esc50"][9], rows["fsd50k"][9], rows["clotho"][9]) == ("50", "200", "")
    assert rows["clotho"][4] == "" and rows["esc50"][4] == "t"
    assert rows["fsd50k"][26] == rows["clotho"][26] == "-"
    five = leaderboard_markdown(board_of(metrics(0.5, "2026-01-01T00:00:00", top_k=5, n_classes=5,
                                                 top_k_accuracy=1.0, top_k_accuracy_ci95=[1.0, 1.0])))
    header, _, row = [[cell.strip() for cell in line.strip("|").split("|")] for line in five.splitlines()]
    assert "top-k [95% CI]" not in header and "k" not in header  # top-5 of 5 is always 1: not declared, not shown
    document = leaderboard_json(board, every_run=False)
    assert document["every_run"] is False and [run["dataset"] for run in document["runs"]] == \
        ["clotho", "esc50", "fsd50k"]
    clotho = document["runs"][0]
    assert clotho["identity"] == {"dataset": "clotho"}
    assert clotho["identity_hash"] == short_hash({"dataset": "clotho"}, 12)
    assert clotho["accuracy"] is None and clotho["t2a_recall_at_1"] == 0.5 and "finished_at" not in clotho


def test_a_row_of_an_early_run_falls_back_on_what_its_metrics_hold():
    early = {"dataset": "esc50", "model": "clap", "template": "plain", "prompts": ["{}"], "labels": ["a", "b", "c", "d"],
             "accuracy": 0.5, "top_k_accuracy": 1.0, "balanced_accuracy": 0.5, "macro_f1": 0.4, "n_evaluated": 8,
             "started_at": "2025-01-01T00:00:00", "engine": "embed", "precision": "fp16", "clips_per_s": 3.5,
             "identity": {"dataset": "esc50", "model": "clap"}}
    row = run_row(early, "old")
    assert (row["family"], row["n_classes"], row["chance_accuracy"], row["prompts"]) == \
        ("clap", 4, 0.25, prompts_hash(["{}"]))
    assert (row["engine"], row["precision"], row["encoded_clips_per_s"], row["finished_at"]) == \
        ("embed", "fp16", 3.5, "2025-01-01T00:00:00")
    assert (row["source"], row["weights"], row["selection"], row["task"], row["status"]) == \
        ("", "", "", "classification", "complete")
    assert row["identity"] == short_hash(early["identity"], 12) and row["accuracy_ci95_low"] is None
    tagging = run_row({**early, "task": "multilabel", "map": 0.3, "chance_map": 0.1, "n_classes": 9,
                       "identity": {"family": "pe_audio"}}, "new")
    assert (tagging["family"], tagging["n_classes"], tagging.get("chance_accuracy"), tagging["chance_map"]) == \
        ("pe_audio", 9, None, 0.1)  # a tagging row has no accuracy chance: its main score is mAP
    assert (row["main_score"], row["chance"], tagging["main_score"], tagging["chance"]) == ("accuracy", 0.25, "map", 0.1)


def test_rows_of_an_audio_language_model_name_its_scoring_mode():
    """Likelihood and generate runs of one model differ only in the identity's family settings: the family column
    tells them apart."""
    base = {"dataset": "esc50", "model": "qwen2_audio", "template": "auto", "prompts": ["{}"], "labels": ["a", "b"],
            "accuracy": 0.5, "n_evaluated": 4, "engine": "embed", "precision": "bf16",
            "started_at": "2026-11-29T00:00:00"}
    rows = [run_row({**base, "identity": {"family": "qwen2_audio", "family_settings": settings}}, name)
            for name, settings in (("likelihood", {"scoring": "likelihood"}),
                                   ("generate", {"scoring": "generate", "max_new_tokens": 8}))]
    assert [row["family"] for row in rows] == ["qwen2_audio (likelihood)", "qwen2_audio (generate)"]
    assert run_row({**base, "identity": {"family": "pe_audio", "family_settings": {"max_seconds": 30}}}, "pe")[
        "family"] == "pe_audio"


def test_probe_rows_count_their_tested_clips_and_say_which_interval_they_carry():
    """A probe's `n` is the clips it tested (not those it embedded); a few-shot row's t-interval over its draws is
    marked `t[...]` and named in the interval column, which is shown once some row's interval is not a bootstrap."""
    zero_shot = metrics(0.3, "2026-01-01T00:00:00", {"dataset": "d", "model": "m"}, n_evaluated=40,
                        bootstrap={"resamples": 1000, "seed": 0, "level": 0.95})
    probe = {"n_evaluated": 40, "n_tested": 8, "protocol": "linear_probe", "protocol_label": "linear_probe",
             "bootstrap": {"resamples": 1000, "seed": 0, "level": 0.95}}
    few_shot = {"n_evaluated": 40, "n_tested": 8, "protocol": "few_shot", "protocol_label": "few_shot 2-shot x3",
                "repeats": 3}
    board = board_of(zero_shot, metrics(0.9, "2026-01-01T00:00:00", {"dataset": "d", "probe": 1}, **probe),
                     metrics(0.8, "2026-01-01T00:00:00", {"dataset": "d", "probe": 2}, **few_shot))
    assert list(zip(board["protocol"], board["n"], board["interval"])) == [
        ("zeroshot", 40, "bootstrap over 40 clips"), ("few_shot 2-shot x3", 8, "t over 3 draws on 8 tested clips"),
        ("linear_probe", 8, "bootstrap over 8 tested clips")]
    lines = leaderboard_markdown(board).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]
    assert [row["accuracy [95% CI]"] for row in rows] == ["0.3000 [0.2000, 0.4000]", "0.8000 t[0.7000, 0.9000]",
                                                          "0.9000 [0.8000, 1.0000]"]
    assert [row["interval"] for row in rows] == board["interval"].tolist() and [row["n"] for row in rows] == \
        ["40", "8", "8"]
    assert "interval" not in leaderboard_markdown(board_of(zero_shot))  # bootstrap everywhere: nothing to tell apart


def write_metrics(run_dir, run: dict) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(run))


def test_a_folder_without_runs_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    empty, unrelated = tmp_path / "empty", tmp_path / "unrelated"
    empty.mkdir()
    write_metrics(unrelated / "training", {"loss": 0.25, "epoch": 3})  # someone else's metrics.json
    (unrelated / "notes.txt").write_text("mine")
    for folder in (empty, unrelated):
        before = sorted(path.relative_to(folder) for path in folder.rglob("*"))
        for every_run in ([], ["--all"]):
            assert report_main(["leaderboard", str(folder), *every_run]) == 2
            out, err = capsys.readouterr()
            assert out == "" and err == f"zsa-eval: error: {folder} holds no zsa-eval run (a run directory holds the " \
                "metrics.json of a finished run): no leaderboard written; pass the results directory your runs " \
                "write into (results_dir)\n"
            assert sorted(path.relative_to(folder) for path in folder.rglob("*")) == before  # not even a lock file
    failed = tmp_path / "failed"
    write_metrics(failed / "run", metrics(0.5, "2026-01-01T00:00:00", status="too_many_skips"))
    assert report_main(["leaderboard", str(failed)]) == 2
    assert "holds 1 zsa-eval run(s), none complete (--all lists every run)" in capsys.readouterr().err
    assert report_main(["leaderboard", str(failed), "--all"]) == 0


def test_all_writes_its_own_files_beside_the_leaderboard(tmp_path, capsys):
    write_metrics(tmp_path / "good", metrics(0.5, "2026-01-01T00:00:00"))
    write_metrics(tmp_path / "bad", metrics(0.9, "2026-01-02T00:00:00", {"dataset": "d", "x": 1},
                                            status="too_many_skips"))
    assert report_main(["leaderboard", str(tmp_path)]) == 0
    board = {path.name: path.read_bytes() for path in tmp_path.glob("leaderboard*")}
    assert report_main(["leaderboard", str(tmp_path), "--all"]) == 0
    capsys.readouterr()
    every = {path.name: path.read_bytes() for path in tmp_path.glob("leaderboard*") if path.name not in board}
    assert sorted(every) == ["leaderboard_all.csv", "leaderboard_all.html", "leaderboard_all.json",
                             "leaderboard_all.md"]
    assert {path.name: path.read_bytes() for path in tmp_path.glob("leaderboard*") if path.name in board} == board
    assert pd.read_csv(tmp_path / "leaderboard_all.csv")["status"].tolist() == ["too_many_skips", "complete"]


def zero_shot_run(model: str, dataset: str, accuracy: float, **identity) -> dict:
    identity = {"family": "clap", "model_name_or_path": model, "dataset": dataset, "template": "t"} | identity
    return metrics(accuracy, "2026-01-01T00:00:00", identity, model=model, prompts=["{}"])


def test_by_dataset_ranks_means_over_more_datasets_first():
    """A mean over 5 datasets and one over 1 are not ranked against each other: rows whose mean covers more datasets
    come first, then the best mean among equal counts."""
    datasets = ["a", "b", "c", "d", "e"]
    board = board_of(*(zero_shot_run("wide", name, accuracy) for name, accuracy in
                       zip(datasets, [0.1, 0.2, 0.3, 0.4, 0.425])),
                     zero_shot_run("narrow", "a", 0.9), zero_shot_run("other", "a", 0.2),
                     zero_shot_run("pair", "a", 0.1), zero_shot_run("pair", "b", 0.2))
    table, _ = by_dataset(board)
    assert list(zip(table["model"], table["accuracy datasets"], table["mean accuracy"].round(4))) == [
        ("wide", 5, 0.285), ("pair", 2, 0.15), ("narrow", 1, 0.9), ("other", 1, 0.2)]


def test_the_views_across_models_name_an_audio_language_models_scoring_mode():
    """Likelihood and generate runs of one model and template: their cells are told apart by the scoring mode, not by
    an identity hash."""
    runs = [zero_shot_run("qwen2_audio", "esc50", accuracy, family="qwen2_audio",
                          family_settings={"scoring": scoring})
            for accuracy, scoring in ((0.5, "likelihood"), (0.25, "generate"))]
    board = board_of(*runs)
    [grid] = heatmap_grids(board).values()
    assert sorted(grid.index) == ["qwen2_audio (generate)", "qwen2_audio (likelihood)"]
    table, _ = by_dataset(board)
    assert table["model"].tolist() == ["qwen2_audio (likelihood)", "qwen2_audio (generate)"]
