"""Classification metrics from true labels and class probabilities, all computed by scikit-learn."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

TOP_K = 5


def top_k_indices(probabilities: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Class indices of the k highest probabilities per row, best first (ties: lower index first)."""
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


def top_k(n_classes: int) -> int:
    """How many best classes count for top-k accuracy: 5, or every class when there are fewer."""
    return min(TOP_K, n_classes)


def top_k_accuracy(y_true: np.ndarray, probabilities: np.ndarray, k: int) -> float:
    """Share of items whose true class is among their k best-scored classes (ties ranked as in predictions.csv)."""
    return float((top_k_indices(probabilities, k) == y_true[:, None]).any(axis=1).mean())


def summary_metrics(y_true: np.ndarray, probabilities: np.ndarray, n_classes: int) -> dict[str, float]:
    """Top-1, top-k (k = min(5, classes)), balanced accuracy and macro F1 over all classes of the candidate set."""
    y_pred = probabilities.argmax(axis=1)
    classes = np.arange(n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "top_k": top_k(n_classes),
        "top_k_accuracy": top_k_accuracy(y_true, probabilities, top_k(n_classes)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
    }


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(class_names)), zero_division=0
    )
    return pd.DataFrame({"label": list(class_names), "precision": precision, "recall": recall, "f1": f1,
                         "support": support})


def per_fold_table(y_true: np.ndarray, y_pred: np.ndarray, folds: np.ndarray) -> pd.DataFrame:
    rows = [
        {"fold": fold, "n": int(mask.sum()), "accuracy": float(accuracy_score(y_true[mask], y_pred[mask]))}
        for fold in sorted(pd.unique(folds))
        for mask in [folds == fold]
    ]
    return pd.DataFrame(rows, columns=["fold", "n", "accuracy"])


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Counts: rows are true labels, columns predicted labels."""
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(len(class_names)))
    return pd.DataFrame(counts, index=pd.Index(list(class_names), name="true_label"), columns=list(class_names))


def predictions_table(
    items: pd.DataFrame, y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per evaluated item: ids, true and predicted label, its score, and the top-5 with scores."""
    names = np.asarray(class_names, dtype=object)
    top = top_k_indices(probabilities, top_k(len(class_names)))
    top_scores = np.take_along_axis(probabilities, top, axis=1)
    return pd.DataFrame({
        "item_id": items["item_id"].to_numpy(),
        "path": items["path"].to_numpy(),
        "fold": items["fold"].to_numpy(),
        "true_label": names[y_true],
        "predicted_label": names[top[:, 0]],
        "score": top_scores[:, 0],
        "correct": y_true == top[:, 0],
        "top5_labels": ["|".join(row) for row in names[top]],
        "top5_scores": ["|".join(f"{score:.6f}" for score in row) for row in top_scores],
    })


def gate_failures(
    accuracy: float, min_accuracy: float | None, baseline_accuracy: float | None, max_drop: float
) -> list[str]:
    """The gate bounds this accuracy breaks, each said with the amount by which it misses."""
    failures = []
    if min_accuracy is not None and accuracy < min_accuracy:
        failures.append(f"accuracy {accuracy:.4f} is below gate.min_accuracy={min_accuracy} by "
                        f"{min_accuracy - accuracy:.4f}")
    if baseline_accuracy is not None and baseline_accuracy - accuracy > max_drop:
        failures.append(f"accuracy {accuracy:.4f} dropped {baseline_accuracy - accuracy:.4f} below the baseline's "
                        f"{baseline_accuracy:.4f}, more than gate.max_drop={max_drop}")
    return failures
