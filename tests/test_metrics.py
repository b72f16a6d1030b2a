import warnings
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from zsa_eval.stats import bootstrap_indices, percentile_interval
from zsa_eval.tasks.accuracy import confusion_table, per_class_table, per_fold_table, resampled_metrics, summary_metrics
from zsa_eval.tasks.classification import classification_results, predictions_table
from zsa_eval.tasks.labels import top_k_indices
from zsa_eval.store import write_csv

CLASSES = ["cat", "dog", "rain"]
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
PROBABILITIES = np.array([
    [0.7, 0.2, 0.1],   # cat -> cat
    [0.2, 0.5, 0.3],   # cat -> dog (cat last)
    [0.1, 0.8, 0.1],   # dog -> dog
    [0.6, 0.3, 0.1],   # dog -> cat
    [0.1, 0.1, 0.8],   # rain -> rain
    [0.1, 0.2, 0.7],   # rain -> rain
])


def test_summary_metrics_match_hand_computed_values():
    metrics = summary_metrics(Y_TRUE, PROBABILITIES, 3)
    assert metrics["n_classes_with_support"] == 3
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # recalls: cat 1/2, dog 1/2, rain 2/2
    assert metrics["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # precision: cat 1/2, dog 1/2, rain 1 -> F1: 0.5, 0.5, 1.0
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert metrics["top_k_accuracy"] == 1.0  # three classes: top-3 always holds the truth


def test_top5_with_more_classes_than_five():
    y_true = np.array([0, 6])
    probabilities = np.array([[0.30, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02],
                              [0.30, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02]])
    assert summary_metrics(y_true, probabilities, 7)["top_k_accuracy"] == 0.5
    assert top_k_indices(probabilities)[0].tolist() == [0, 1, 2, 3, 4]


def test_per_class_per_fold_and_confusion_tables():
    y_pred = PROBABILITIES.argmax(axis=1)
    per_class = per_class_table(Y_TRUE, y_pred, CLASSES)
    assert list(per_class.columns) == ["label", "precision", "recall", "f1", "support"]
    assert per_class.set_index("label")["recall"].to_dict() == {"cat": 0.5, "dog": 0.5, "rain": 1.0}
    assert per_class["support"].tolist() == [2, 2, 2]
    per_fold = per_fold_table(Y_TRUE, y_pred, np.array([1, 2, 1, 2, 1, 2]))
    assert per_fold["fold"].tolist() == [1, 2, "mean", "std"]
    assert per_fold["n"].tolist()[:2] == [3, 3] and per_fold["n"].isna().tolist() == [False, False, True, True]
    # fold accuracies 1 and 1/3: mean 2/3, sample std sqrt(((1/3)^2 + (1/3)^2) / 1)
    assert per_fold["accuracy"].tolist() == pytest.approx([1.0, 1 / 3, 2 / 3, np.sqrt(2) / 3])
    confusion = confusion_table(Y_TRUE, y_pred, CLASSES)
    assert confusion.loc["cat"].tolist() == [1, 1, 0]
    assert confusion.loc["dog"].tolist() == [1, 1, 0]
    assert confusion.loc["rain"].tolist() == [0, 0, 2]
    assert list(confusion.columns) == CLASSES


def test_predictions_table_columns_and_top_k():
    items = pd.DataFrame({"item_id": [f"c{i}" for i in range(6)], "path": [f"/a/c{i}.wav" for i in range(6)],
                          "label": [CLASSES[i] for i in Y_TRUE], "fold": [1] * 6})
    table = predictions_table(items, Y_TRUE, PROBABILITIES.astype(np.float32), CLASSES)
    assert list(table.columns) == ["item_id", "path", "fold", "true_label", "predicted_label", "score", "correct",
                                   "top1_label", "top1_score", "top2_label", "top2_score", "top3_label", "top3_score"]
    row = table.iloc[1]
    assert (row.true_label, row.predicted_label, bool(row.correct)) == ("cat", "dog", False)
    assert row.score == pytest.approx(0.5)
    assert [row.top1_label, row.top2_label, row.top3_label] == ["dog", "rain", "cat"]
    assert [row.top1_score, row.top2_score, row.top3_score] == pytest.approx([0.5, 0.3, 0.2])


# The call documented in results/README.md.
PREDICTION_NUMBERS = {"score": float, "correct": bool} | {f"top{rank}_score": float for rank in range(1, 6)}


def test_predictions_csv_reads_back_exactly_with_the_documented_pandas_call(tmp_path):
    labels = ["NA", "None", "01", "a|b", "x,y", 'say "hi"', "", "nan"]
    n = len(labels)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(n), size=n).astype(np.float32)
    y_true = np.arange(n)
    items = pd.DataFrame({"item_id": ["007", "NULL", "1e3", "n/a", "#x", "a,b", "TRUE", "-"],
                          "path": [f"/data/{label or 'empty'}.wav" for label in labels], "fold": ["01"] * n})
    table = predictions_table(items, y_true, probabilities, labels)
    write_csv(table, tmp_path / "predictions.csv")
    back = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False,
                       dtype=defaultdict(lambda: str, PREDICTION_NUMBERS))
    assert back["item_id"].tolist() == items["item_id"].tolist()
    assert back["fold"].tolist() == ["01"] * n
    assert back["true_label"].tolist() == labels
    order = np.argsort(-probabilities, axis=1, kind="stable")
    for rank in range(5):
        assert back[f"top{rank + 1}_label"].tolist() == [labels[i] for i in order[:, rank]]
        expected = probabilities[np.arange(n), order[:, rank]]
        assert np.array_equal(back[f"top{rank + 1}_score"].to_numpy().astype(np.float32), expected)  # bit-exact
    assert back["correct"].tolist() == (order[:, 0] == y_true).tolist()
    assert "top6_label" not in back.columns


def test_two_classes_give_every_metric_with_top_k_of_two():
    y_true = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    metrics = summary_metrics(y_true, probabilities, 2)
    assert metrics["top_k"] == 2 and metrics["top_k_accuracy"] == 1.0
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_top_k_counts_rank_five_but_not_rank_six():
    probabilities = np.array([[0.30, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02]] * 2)
    metrics = summary_metrics(np.array([4, 5]), probabilities, 7)
    assert metrics["top_k"] == 5 and metrics["top_k_accuracy"] == 0.5


def test_macro_f1_and_balanced_accuracy_leave_out_classes_without_support():
    # candidates cat, dog, rain; no rain clip, yet one clip is predicted rain
    probabilities = np.array([[0.8, 0.1, 0.1],   # cat -> cat
                              [0.1, 0.1, 0.8],   # cat -> rain
                              [0.1, 0.8, 0.1],   # dog -> dog
                              [0.6, 0.3, 0.1]])  # dog -> cat
    metrics = summary_metrics(np.array([0, 0, 1, 1]), probabilities, 3)
    assert metrics["accuracy"] == 0.5 and metrics["n_classes_with_support"] == 2
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    # cat: tp 1, support 2, predicted 2 -> F1 2/4; dog: tp 1, support 2, predicted 1 -> F1 2/3; rain left out
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_resampled_metrics_of_hand_picked_resamples():
    y_true, y_pred = np.array([0, 1, 1]), np.array([0, 1, 0])
    hits = np.array([True, True, False])
    indices = np.array([[0, 1, 2], [2, 2, 2], [0, 0, 1], [1, 2, 2]])
    values = resampled_metrics(y_true, y_pred, hits, indices, n_classes=2)
    assert values["accuracy"].tolist() == pytest.approx([2 / 3, 0, 1, 1 / 3])
    assert values["top_k_accuracy"].tolist() == pytest.approx([2 / 3, 0, 1, 1 / 3])
    # recalls (cat, dog): (1, 1/2) | (-, 0) | (1, 1) | (-, 1/3); a class absent from a resample is left out
    assert values["balanced_accuracy"].tolist() == pytest.approx([3 / 4, 0, 1, 1 / 3])
    # F1 = 2 tp / (support + predicted): (2/3, 2/3) | (-, 0) | (1, 1) | (-, 2/4)
    assert values["macro_f1"].tolist() == pytest.approx([2 / 3, 0, 1, 1 / 2])


@pytest.mark.parametrize("n_classes, n_items", [(2, 15), (6, 40)])
def test_resampled_metrics_equal_scikit_learn_on_each_resample(n_classes, n_items):
    rng = np.random.default_rng(n_classes)
    y_true = rng.integers(0, n_classes - 1 if n_classes > 2 else n_classes, n_items)  # 6 classes: one has no clip
    assert len(np.unique(y_true)) == (n_classes - 1 if n_classes > 2 else n_classes)
    y_pred = np.where(rng.random(n_items) < 0.6, y_true, rng.integers(0, n_classes, n_items))
    hits = rng.random(n_items) < 0.8
    indices = bootstrap_indices(n_items, 6, seed=3)
    values = resampled_metrics(y_true, y_pred, hits, indices, n_classes)
    for row, picked in enumerate(indices):
        truth, predicted = y_true[picked], y_pred[picked]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # predicted classes that have no clip in this resample
            balanced = balanced_accuracy_score(truth, predicted)
        assert values["accuracy"][row] == pytest.approx(accuracy_score(truth, predicted), rel=1e-12)
        assert values["top_k_accuracy"][row] == pytest.approx(hits[picked].mean(), rel=1e-12)
        assert values["balanced_accuracy"][row] == pytest.approx(balanced, rel=1e-12)
        assert values["macro_f1"][row] == pytest.approx(
            f1_score(truth, predicted, labels=np.unique(truth), average="macro", zero_division=0), rel=1e-12)
    identity = resampled_metrics(y_true, y_pred, hits, np.arange(n_items)[None], n_classes)
    point = summary_metrics(y_true, np.eye(n_classes)[y_pred], n_classes)
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert identity[name][0] == pytest.approx(point[name], rel=1e-12)


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 300)
    probabilities = rng.random((300, 10))
    probabilities[np.arange(300), y_true] += rng.random(300) * 0.8
    metrics = summary_metrics(y_true, probabilities, 10, resamples=500, seed=7)
    assert metrics["bootstrap"] == {"resamples": 500, "seed": 7, "level": 0.95}
    for name in ("accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1"):
        low, high = metrics[f"{name}_ci95"]
        assert low < metrics[name] < high and high - low < 0.25
    # accuracy on 300 items: the normal approximation of the interval is p +- 1.96 sqrt(p (1 - p) / n)
    p = metrics["accuracy"]
    half_width = 1.96 * np.sqrt(p * (1 - p) / 300)
    assert metrics["accuracy_ci95"] == pytest.approx([p - half_width, p + half_width], abs=0.015)
    assert summary_metrics(y_true, probabilities, 10, resamples=500, seed=7) == metrics
    assert summary_metrics(y_true, probabilities, 10)["bootstrap"] == {"resamples": 1000, "seed": 0, "level": 0.95}
    assert summary_metrics(y_true, probabilities, 10, resamples=500, seed=8)["accuracy_ci95"] != \
        metrics["accuracy_ci95"]


def test_all_correct_predictions_give_degenerate_intervals():
    y_true = np.array([0, 1, 2, 2, 1])
    metrics = summary_metrics(y_true, np.eye(3)[y_true], 3, resamples=200)
    for name in ("accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1"):
        assert metrics[name] == 1.0 and metrics[f"{name}_ci95"] == [1.0, 1.0]


ASYMMETRIC_TRUE = np.array([0, 0, 0, 1, 2])  # a a a b c
ASYMMETRIC_PRED = np.array([0, 1, 1, 1, 1])  # a b b b b: "b" over-predicted, "c" never predicted


def test_confusion_matrix_rows_are_true_labels_on_an_asymmetric_case():
    confusion = confusion_table(ASYMMETRIC_TRUE, ASYMMETRIC_PRED, ["a", "b", "c"])
    assert confusion.index.name == "true_label"
    assert confusion.to_numpy().tolist() == [[1, 2, 0],   # true a: 1 right, 2 called b
                                             [0, 1, 0],
                                             [0, 1, 0]]   # true c: called b
    assert confusion.sum(axis=1).tolist() == [3, 1, 1]    # row sums are supports


def test_per_class_precision_recall_f1_support_by_definition():
    table = per_class_table(ASYMMETRIC_TRUE, ASYMMETRIC_PRED, ["a", "b", "c"]).set_index("label")
    # precision = TP / predicted, recall = TP / support
    assert table["precision"].tolist() == pytest.approx([1 / 1, 1 / 4, 0.0])
    assert table["recall"].tolist() == pytest.approx([1 / 3, 1 / 1, 0.0])
    assert table["f1"].tolist() == pytest.approx([0.5, 0.4, 0.0])
    assert table["support"].tolist() == [3, 1, 1]


def test_classes_never_predicted_or_absent_score_zero_without_warnings():
    # class c is never predicted (precision 0/0) and class d has no clip (recall 0/0): both are 0, and the run's
    # output stays free of scikit-learn's UndefinedMetricWarning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = per_class_table(ASYMMETRIC_TRUE, ASYMMETRIC_PRED, ["a", "b", "c", "d"]).set_index("label")
        summary_metrics(ASYMMETRIC_TRUE, np.eye(4)[ASYMMETRIC_PRED], 4)
    assert table.loc["c", ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]
    assert table.loc["d"].tolist() == [0.0, 0.0, 0.0, 0]


def test_percentile_interval_takes_the_central_share_by_linear_interpolation():
    values = np.arange(101.0)  # the p-th percentile of 0..100 is p
    assert percentile_interval(values) == pytest.approx([2.5, 97.5])
    assert percentile_interval(values, level=0.9) == pytest.approx([5.0, 95.0])
    assert percentile_interval(np.array([0.0, 1.0])) == pytest.approx([0.025, 0.975])


def test_sigmoid_scores_rounded_to_one_rank_by_their_logits():
    """float32 sigmoids of large logits are all 1.0: the classes rank by the logits (sigmoid keeps their order), so
    predictions, top-k and every metric are those of the logits, and the scores shown stay the sigmoids."""
    logits = np.array([[40.0, 45.0, 30.0], [50.0, 20.0, 35.0], [20.0, 25.0, 60.0], [41.0, 42.0, 43.0]])
    sigmoids = (1 / (1 + np.exp(-logits))).astype(np.float32)
    assert (sigmoids == 1.0).all()  # without the logits, every class ties
    items = pd.DataFrame({"item_id": list("abcd"), "path": list("abcd"), "label": ["dog", "cat", "rain", "cat"],
                          "fold": [1] * 4})
    results = classification_results(items, CLASSES, sigmoids, "sigmoid", None, seed=0, ranking=logits)
    predictions = results.tables["predictions"]
    assert predictions["predicted_label"].tolist() == ["dog", "cat", "rain", "rain"]
    assert predictions["top2_label"].tolist() == ["cat", "rain", "dog", "dog"]
    assert (predictions["score"] == 1.0).all() and results.metrics["accuracy"] == 0.75
    tied = classification_results(items, CLASSES, sigmoids, "sigmoid", None, seed=0)
    assert tied.tables["predictions"]["predicted_label"].tolist() == ["cat"] * 4  # what ranking by the scores gave
