"""Single-label metrics from true classes and predictions (class indices): accuracy, top-k, balanced accuracy and macro
F1, point estimates by scikit-learn, bootstrap intervals from per-class counts of all resamples at once (checked
against scikit-learn in the tests); per-class, per-fold and confusion tables. Shared by the classification task, its
probes and the comparison of two runs."""

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

from zsa_eval.stats import bootstrap_indices, percentile_interval
from zsa_eval.tasks.comparing import bootstrap_record
from zsa_eval.tasks.labels import top_k, top_k_indices

INTERVAL_METRICS = ("accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1")  # each gets <name>_ci95
NO_MATCH = "(no match)"  # the confusion matrix's column of answers that matched no class


def top_k_hits(y_true: np.ndarray, probabilities: np.ndarray, k: int) -> np.ndarray:
    """Whether each item's true class is among its k best-scored classes (ties ranked as in predictions.csv)."""
    return (top_k_indices(probabilities, k) == y_true[:, None]).any(axis=1)


def point_metrics(y_true: np.ndarray, y_pred: np.ndarray, top_k_hit: np.ndarray) -> dict[str, float]:
    """Accuracy, top-k accuracy, and balanced accuracy and macro F1 over the classes with support in `y_true`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": those are left out, as intended
        balanced = balanced_accuracy_score(y_true, y_pred)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "top_k_accuracy": float(top_k_hit.mean()),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)),
    }


def resampled_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, top_k_hit: np.ndarray, indices: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """point_metrics of every resample (row of `indices`) at once, from per-class counts of each resample."""
    resamples = len(indices)
    correct = y_true == y_pred
    offsets = np.arange(resamples)[:, None] * n_classes

    def per_class_counts(classes: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        cells = (offsets + classes[indices]) if where is None else (offsets + classes[indices])[where]
        return np.bincount(cells.ravel(), minlength=resamples * n_classes).reshape(resamples, n_classes)

    support, predicted = per_class_counts(y_true), per_class_counts(y_pred)
    true_positives = per_class_counts(y_true, correct[indices])
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(present, true_positives / support, 0.0)
        f1 = np.where(present, 2 * true_positives / (support + predicted), 0.0)
    n_present = present.sum(axis=1)
    return {
        "accuracy": correct[indices].mean(axis=1),
        "top_k_accuracy": top_k_hit[indices].mean(axis=1),
        "balanced_accuracy": recall.sum(axis=1) / n_present,
        "macro_f1": f1.sum(axis=1) / n_present,
    }


def predicted_classes(probabilities: np.ndarray, answered: np.ndarray | None = None) -> np.ndarray:
    """Each item's best-scored class; with `answered` (generate mode: whether each answer matched a class), the
    matched class, or n_classes ("no match", wrong for every true class) where none matched."""
    best = probabilities.argmax(axis=1)
    return best if answered is None else np.where(answered, best, probabilities.shape[1])


def summary_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, n_classes: int, resamples: int = 1000, seed: int = 0,
    answered: np.ndarray | None = None,
) -> dict:
    """Top-1, top-k (k = min(5, classes)), balanced accuracy and macro F1 (both over the classes with support),
    each with a 95% percentile bootstrap interval (`<metric>_ci95`) from `resamples` resamples of the items.
    With `answered` (generate mode), predictions as predicted_classes gives them and k = 1."""
    y_pred = predicted_classes(probabilities, answered)
    k = top_k(n_classes) if answered is None else 1
    hits = top_k_hits(y_true, probabilities, k) if answered is None else y_pred == y_true
    point = point_metrics(y_true, y_pred, hits)
    samples = resampled_metrics(y_true, y_pred, hits, bootstrap_indices(len(y_true), resamples, seed),
                                n_classes + (answered is not None))  # room for "no match"
    return {
        "accuracy": point["accuracy"],
        "top_k": k,
        "top_k_accuracy": point["top_k_accuracy"],
        "balanced_accuracy": point["balanced_accuracy"],
        "macro_f1": point["macro_f1"],
        "n_classes_with_support": int(len(np.unique(y_true))),
        **{f"{name}_ci95": percentile_interval(values) for name, values in samples.items()},
        "bootstrap": bootstrap_record(resamples, seed),
    }


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(class_names)), zero_division=0
    )
    return pd.DataFrame({"label": list(class_names), "precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(np.int64)})


def per_fold_table(y_true: np.ndarray, y_pred: np.ndarray, folds: np.ndarray) -> pd.DataFrame:
    """Accuracy per fold, then rows "mean" and "std" (sample std, ddof=1) of the fold accuracies (n left empty)."""
    rows = [
        {"fold": fold, "n": int(mask.sum()), "accuracy": float(accuracy_score(y_true[mask], y_pred[mask]))}
        for fold in sorted(pd.unique(folds))
        for mask in [folds == fold]
    ]
    accuracies = pd.Series([row["accuracy"] for row in rows], dtype=float)
    rows += [{"fold": "mean", "n": None, "accuracy": accuracies.mean()},
             {"fold": "std", "n": None, "accuracy": accuracies.std(ddof=1)}]
    return pd.DataFrame(rows, columns=["fold", "n", "accuracy"]).astype({"n": "Int64"})


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Counts: rows are true labels, columns predicted labels, and a last column "(no match)" when some
    predictions are none (answers that matched no class)."""
    n_classes = len(class_names)
    unmatched = bool((y_pred == n_classes).any())
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes + unmatched))[:n_classes]
    return pd.DataFrame(counts, index=pd.Index(list(class_names), name="true_label"),
                        columns=list(class_names) + ([NO_MATCH] if unmatched else []))
