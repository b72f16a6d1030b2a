"""compare on two runs of MAEB's other task kinds: reranking (per-query metrics over the common queries) and pair
classification (cosine AP and max AP over the common pairs), clustering (V-measure, homogeneity, completeness over the
common clips, each run's clusters held fixed), each with paired bootstrap intervals; their refusals in one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, homogeneity_completeness_v_measure

from conftest import run_cli
from zsa_eval.errors import UserError
from zsa_eval.report.__main__ import main as report_main
from zsa_eval.report.compare import compare_runs

MODELS = ("tiny_random", "pe_tiny_random")


def two_runs(tmp_path, monkeypatch, capsys, *arguments) -> tuple:
    """The same dataset run by both models (no report: compare reads the runs' tables)."""
    runs = tuple(tmp_path / model for model in MODELS)
    for model, out in zip(MODELS, runs):
        code, _, stderr = run_cli(monkeypatch, capsys, *arguments, f"model={model}", f"output_dir={out}",
                                  "report=false")
        assert code == 0, stderr
    return runs


def metrics_of(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_compare_pairs_the_queries_of_two_reranking_runs(rerank_folder, tmp_path, monkeypatch, capsys):
    run_a, run_b = two_runs(tmp_path, monkeypatch, capsys, "dataset=rerank_folder", f"dataset.path={rerank_folder}")
    comparison = compare_runs(run_a, run_b, resamples=200, seed=1)
    assert (comparison.n_a, comparison.n_b, comparison.n_common, comparison.unit) == (3, 3, 3, "queries")
    assert comparison.legend_a == "A: tiny_random (tiny_random)"  # no template: none named (not "None")
    assert comparison.data_note == ""  # one folder read by both
    deltas = comparison.metric_deltas.set_index("metric")
    assert list(deltas.index) == ["map_at_1000", "mrr_at_10", "ndcg_at_10", "recall_at_1"]
    rankings = {run: pd.read_csv(run / "rankings.csv").set_index("query_id") for run in (run_a, run_b)}
    for name in deltas.index:  # every query is common: each side is its run's headline, the delta their difference
        assert (deltas.at[name, "a"], deltas.at[name, "b"]) == pytest.approx((metrics_of(run_a)[name],
                                                                             metrics_of(run_b)[name]))
        differences = rankings[run_b][name] - rankings[run_a][name]
        assert deltas.at[name, "delta"] == pytest.approx(differences.mean())
        low, high = deltas.at[name, "delta_ci95_low"], deltas.at[name, "delta_ci95_high"]
        assert differences.min() - 1e-12 <= low <= high <= differences.max() + 1e-12  # means of resampled queries
    changes = comparison.query_changes
    assert (changes["change"] == changes["map_at_1000_b"] - changes["map_at_1000_a"]).all()
    assert changes["change"].abs().is_monotonic_decreasing
    assert sorted(changes["query_id"]) == sorted(rankings[run_a].index)
    out = tmp_path / "comparison"
    assert report_main(["compare", str(run_a), str(run_b), "--out", str(out)]) == 0
    assert "Compared on the 3 queries both runs evaluated" in capsys.readouterr().out
    assert sorted(path.name for path in out.iterdir()) == ["compare.html", "compare.json", "compare.md",
                                                           "query_changes.csv"]


@pytest.mark.slow
def test_compare_pairs_the_pairs_of_two_pair_classification_runs(pairs_folder, tmp_path, monkeypatch, capsys):
    run_a, run_b = two_runs(tmp_path, monkeypatch, capsys, "dataset=pairs_folder", f"dataset.path={pairs_folder}")
    comparison = compare_runs(run_a, run_b, resamples=200, seed=1)
    assert (comparison.n_common, comparison.unit) == (28, "pairs")
    deltas = comparison.metric_deltas.set_index("metric")
    pairs = {run: pd.read_csv(run / "pairs.csv", dtype={"label": str}) for run in (run_a, run_b)}
    matches = pairs[run_a]["label"].eq("1")
    for letter, run in (("a", run_a), ("b", run_b)):
        assert deltas.at["cosine_ap", letter] == pytest.approx(average_precision_score(matches, pairs[run]["cosine"]))
        assert (deltas.at["cosine_ap", letter], deltas.at["max_ap", letter]) == pytest.approx(
            (metrics_of(run)["cosine_ap"], metrics_of(run)["max_ap"]))
    for name in ("cosine_ap", "max_ap"):
        assert deltas.at[name, "delta"] == pytest.approx(deltas.at[name, "b"] - deltas.at[name, "a"])
        assert np.isfinite([deltas.at[name, "delta_ci95_low"], deltas.at[name, "delta_ci95_high"]]).all()
        assert -1 <= deltas.at[name, "delta_ci95_low"] <= deltas.at[name, "delta_ci95_high"] <= 1
    changes = comparison.pair_changes
    assert (changes["change"] == changes["cosine_b"] - changes["cosine_a"]).all()
    assert changes["change"].abs().is_monotonic_decreasing and len(changes) == 28
    assert list(changes.columns[:3]) == ["item_id_1", "item_id_2", "label"]  # which clips, not a row number


@pytest.mark.slow
def test_compare_pairs_the_clips_of_two_clustering_runs(audiofolder, tmp_path, monkeypatch, capsys):
    run_a, run_b = two_runs(tmp_path, monkeypatch, capsys, "dataset=audiofolder", f"dataset.path={audiofolder}",
                            "dataset.task=clustering")
    comparison = compare_runs(run_a, run_b, resamples=200, seed=1)
    assert (comparison.n_common, comparison.unit) == (9, "clips")
    deltas = comparison.metric_deltas.set_index("metric")
    assert list(deltas.index) == ["v_measure", "homogeneity", "completeness"]
    for letter, run in (("a", run_a), ("b", run_b)):
        clusters = pd.read_csv(run / "clusters.csv")
        expected = homogeneity_completeness_v_measure(clusters["label"], clusters["cluster"])
        assert [deltas.at[name, letter] for name in ("homogeneity", "completeness", "v_measure")] == pytest.approx(
            list(expected))
        assert deltas.at["v_measure", letter] == pytest.approx(metrics_of(run)["v_measure"])
    assert np.isfinite(deltas[["delta_ci95_low", "delta_ci95_high"]].to_numpy()).all()
    assert "ARI and AMI have no interval" in comparison.markdown()


TABLE_ROW = {"query_id": "q", "positive_ranks": "1", "n_candidates": 5, "map_at_1000": 1.0, "mrr_at_10": 1.0,
             "ndcg_at_10": 1.0, "recall_at_1": 1.0, "pair_id": "0", "item_id_1": "c1", "item_id_2": "c2", "label": "1",
             "cosine": 0.5, "euclidean": 1.0, "manhattan": 1.0, "dot": 0.5, "item_id": "c", "cluster": 0}  # one of each


@pytest.mark.parametrize(("task", "table", "column", "message"), [
    ("reranking", "rankings.csv", "n_candidates", r"1 of the 1 common queries have another number of candidates \(a "
                                                  r"document skipped in one\) in each run; compare reranking runs over "
                                                  "the same documents"),
    ("pair_classification", "pairs.csv", "label", "1 of the 1 common pairs have another label in each run"),
    ("clustering", "clusters.csv", "label", "1 of the 1 common clips have another label in each run")])
def test_compare_refuses_runs_whose_common_items_differ(tmp_path, task, table, column, message):
    for name, value in (("a", 1), ("b", 0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"task": task, "dataset": "d"}))
        row = TABLE_ROW
        pd.DataFrame([row | {column: value}]).to_csv(tmp_path / name / table, index=False)
    with pytest.raises(UserError, match=message):
        compare_runs(tmp_path / "a", tmp_path / "b")


def test_compare_says_which_table_a_run_lacks(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"task": "reranking", "dataset": "d"}))
    with pytest.raises(UserError, match=r"is not a finished zsa-eval reranking run \(rankings.csv\)"):
        compare_runs(tmp_path / "a", tmp_path / "b")


def test_compare_refuses_runs_that_share_no_query(tmp_path):
    for name, query in (("a", "q1"), ("b", "q2")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"task": "reranking", "dataset": "d"}))
        pd.DataFrame([TABLE_ROW | {"query_id": query}]).to_csv(
            tmp_path / name / "rankings.csv", index=False)
    with pytest.raises(UserError, match=r"the runs share no query \(1 in .*, 1 in .*\); compare runs of the same"):
        compare_runs(tmp_path / "a", tmp_path / "b")


def test_pairs_are_matched_by_their_clips_not_their_rows(tmp_path):
    """A pairs file reordered between the runs still pairs the same clips."""
    rows = [TABLE_ROW | {"pair_id": str(index), "item_id_1": f"c{index}", "item_id_2": f"d{index}",
                         "label": str(index % 2), "cosine": 0.1 * index} for index in range(4)]
    for name, table in (("a", rows), ("b", rows[::-1])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"task": "pair_classification", "dataset": "d",
                                                                   "n_pairs_evaluated": 4}))
        pd.DataFrame(table).to_csv(tmp_path / name / "pairs.csv", index=False)
    comparison = compare_runs(tmp_path / "a", tmp_path / "b", resamples=50)
    assert comparison.n_common == 4 and (comparison.pair_changes["change"] == 0).all()


def test_a_table_without_the_columns_compare_reads_is_one_line(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"task": "clustering", "dataset": "d"}))
        pd.DataFrame([{"foo": 1, "bar": 2}]).to_csv(tmp_path / name / "clusters.csv", index=False)
    with pytest.raises(UserError, match=r"clusters.csv lacks the columns item_id, label, cluster: not a clustering "
                                        "run's table as zsa-eval writes it"):
        compare_runs(tmp_path / "a", tmp_path / "b")


def test_compare_notes_runs_that_read_different_data():
    from zsa_eval.report.compare import data_differences

    same = {"dataset": "d", "identity": {"items_fingerprint": "i1"}, "provenance": {"files_fingerprint": "f1"}}
    assert data_differences(same, dict(same)) == ""
    other_files = {**same, "provenance": {"files_fingerprint": "f2"}}
    assert data_differences(same, other_files) == (
        "the runs read different data: their files (paths, sizes or modification times: files_fingerprint f1 and "
        "f2). Only what both evaluated is compared, matched by id: an id may name other audio in each run.")
    other = {"dataset": "e", "identity": {"items_fingerprint": "i2"}, "provenance": {"files_fingerprint": None}}
    assert data_differences(same, other).startswith("the runs read different data: datasets d and e; their "
                                                    "selection (item ids, labels or folds: items_fingerprint i1 and i2)")
