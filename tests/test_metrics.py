import numpy as np
import pandas as pd
import pytest

from zsa_eval.metrics import (
    confusion_table,
    per_class_table,
    per_fold_table,
    predictions_table,
    summary_metrics,
    top_k_indices,
)

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
    assert per_fold.to_dict("records") == [{"fold": 1, "n": 3, "accuracy": 1.0},
                                           {"fold": 2, "n": 3, "accuracy": pytest.approx(1 / 3)}]
    confusion = confusion_table(Y_TRUE, y_pred, CLASSES)
    assert confusion.loc["cat"].tolist() == [1, 1, 0]
    assert confusion.loc["dog"].tolist() == [1, 1, 0]
    assert confusion.loc["rain"].tolist() == [0, 0, 2]
    assert list(confusion.columns) == CLASSES


def test_predictions_table_columns_and_top5():
    items = pd.DataFrame({"item_id": [f"c{i}" for i in range(6)], "path": [f"/a/c{i}.wav" for i in range(6)],
                          "label": [CLASSES[i] for i in Y_TRUE], "fold": [1] * 6})
    table = predictions_table(items, Y_TRUE, PROBABILITIES.astype(np.float32), CLASSES)
    assert list(table.columns) == ["item_id", "path", "fold", "true_label", "predicted_label", "score", "correct",
                                   "top5_labels", "top5_scores"]
    row = table.iloc[1]
    assert (row.true_label, row.predicted_label, bool(row.correct)) == ("cat", "dog", False)
    assert row.score == pytest.approx(0.5)
    assert row.top5_labels == "dog|rain|cat"
    assert row.top5_scores == "0.500000|0.300000|0.200000"


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
