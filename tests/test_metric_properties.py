"""Property tests: every reported number equals its definition, computed by brute force, on random labels and
scores (ties included: scores are drawn from a few values), classes without support and two-class cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zsa_eval.tasks.accuracy import confusion_table, per_class_table, summary_metrics
from zsa_eval.tasks.labels import top_k


@st.composite
def labelled_scores(draw):
    n_classes = draw(st.integers(2, 7))
    n_items = draw(st.integers(1, 30))
    y_true = draw(st.lists(st.integers(0, n_classes - 1), min_size=n_items, max_size=n_items))
    scores = draw(st.lists(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=n_classes,
                                    max_size=n_classes), min_size=n_items, max_size=n_items))
    return np.asarray(y_true), np.asarray(scores, dtype=np.float32), n_classes


def predicted(scores: np.ndarray) -> list[int]:
    """The best-scored class; among equal scores the one listed first."""
    return [max(range(len(row)), key=lambda c: (row[c], -c)) for row in scores]


def rank_of_truth(row: np.ndarray, truth: int) -> int:
    """0-based rank of the true class: classes scored higher, or equal and listed before it, come first."""
    return sum(1 for c in range(len(row)) if row[c] > row[truth] or (row[c] == row[truth] and c < truth))


def per_class_counts(y_true, y_pred, n_classes):
    tp = [sum(1 for t, p in zip(y_true, y_pred) if t == p == c) for c in range(n_classes)]
    predicted_count = [sum(1 for p in y_pred if p == c) for c in range(n_classes)]
    support = [sum(1 for t in y_true if t == c) for c in range(n_classes)]
    return tp, predicted_count, support


@settings(max_examples=150, deadline=None)
@given(labelled_scores())
def test_summary_metrics_equal_their_definitions(case):
    y_true, scores, n_classes = case
    y_pred = predicted(scores)
    tp, predicted_count, support = per_class_counts(y_true, y_pred, n_classes)
    present = [c for c in range(n_classes) if support[c]]
    k = min(5, n_classes)
    expected = {
        "accuracy": sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true),
        "top_k_accuracy": sum(rank_of_truth(row, t) < k for row, t in zip(scores, y_true)) / len(y_true),
        "balanced_accuracy": sum(tp[c] / support[c] for c in present) / len(present),
        "macro_f1": sum(2 * tp[c] / (predicted_count[c] + support[c]) for c in present) / len(present),
    }
    metrics = summary_metrics(y_true, scores, n_classes, resamples=20)
    assert metrics["top_k"] == top_k(n_classes) == k
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name
        low, high = metrics[f"{name}_ci95"]
        assert 0 <= low <= high <= 1


@settings(max_examples=150, deadline=None)
@given(labelled_scores())
def test_confusion_and_per_class_tables_equal_their_definitions(case):
    y_true, scores, n_classes = case
    y_pred = np.asarray(predicted(scores))
    names = [f"class {c}" for c in range(n_classes)]
    confusion = confusion_table(y_true, y_pred, names).to_numpy()
    for true_class in range(n_classes):
        for predicted_class in range(n_classes):
            assert confusion[true_class, predicted_class] == sum(
                1 for t, p in zip(y_true, y_pred) if t == true_class and p == predicted_class)
    tp, predicted_count, support = per_class_counts(y_true, y_pred, n_classes)
    table = per_class_table(y_true, y_pred, names)
    assert table["label"].tolist() == names and table["support"].tolist() == support
    for c in range(n_classes):
        precision = tp[c] / predicted_count[c] if predicted_count[c] else 0.0
        recall = tp[c] / support[c] if support[c] else 0.0
        f1 = 2 * tp[c] / (predicted_count[c] + support[c]) if predicted_count[c] + support[c] else 0.0
        assert table.loc[c, ["precision", "recall", "f1"]].tolist() == pytest.approx([precision, recall, f1])
