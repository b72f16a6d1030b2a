"""Classification metrics from true labels and class probabilities: point estimates by scikit-learn, bootstrap
intervals from per-class counts of all resamples at once (checked against scikit-learn in the tests)."""

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
BOOTSTRAP_LEVEL = 0.95
INTERVAL_METRICS = ("accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1")  # each gets <name>_ci95


def top_k_indices(probabilities: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Class indices of the k highest probabilities per row, best first (ties: lower index first)."""
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


def top_k(n_classes: int) -> int:
    """How many best classes count for top-k accuracy: 5, or every class when there are fewer."""
    return min(TOP_K, n_classes)


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


def bootstrap_indices(n_items: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_items) item positions drawn with replacement, reproducible from `seed`."""
    return np.random.default_rng(seed).integers(0, n_items, size=(resamples, n_items))


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


def percentile_interval(values: np.ndarray, level: float = BOOTSTRAP_LEVEL) -> list[float]:
    """The central `level` share of bootstrap values: [low, high] percentiles (linear interpolation)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def summary_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, n_classes: int, resamples: int = 1000, seed: int = 0
) -> dict:
    """Top-1, top-k (k = min(5, classes)), balanced accuracy and macro F1 (both over the classes with support),
    each with a 95% percentile bootstrap interval (`<metric>_ci95`) from `resamples` resamples of the items."""
    y_pred = probabilities.argmax(axis=1)
    k = top_k(n_classes)
    hits = top_k_hits(y_true, probabilities, k)
    point = point_metrics(y_true, y_pred, hits)
    samples = resampled_metrics(y_true, y_pred, hits, bootstrap_indices(len(y_true), resamples, seed), n_classes)
    return {
        "accuracy": point["accuracy"],
        "top_k": k,
        "top_k_accuracy": point["top_k_accuracy"],
        "balanced_accuracy": point["balanced_accuracy"],
        "macro_f1": point["macro_f1"],
        "n_classes_with_support": int(len(np.unique(y_true))),
        **{f"{name}_ci95": percentile_interval(values) for name, values in samples.items()},
        "bootstrap": {"resamples": resamples, "seed": seed, "level": BOOTSTRAP_LEVEL},
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
    """Counts: rows are true labels, columns predicted labels."""
    counts = confusion_matrix(y_true, y_pred, labels=np.arange(len(class_names)))
    return pd.DataFrame(counts, index=pd.Index(list(class_names), name="true_label"), columns=list(class_names))


def predictions_table(
    items: pd.DataFrame, y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per evaluated item: ids, true and predicted label, its score, then the top-k classes as columns
    top1_label, top1_score, ..., topK_label, topK_score (k = min(5, classes); scores at full precision)."""
    true_labels = np.asarray(class_names, dtype=object)[y_true]
    ranked = top_k_columns(probabilities, class_names)
    return pd.DataFrame({
        "item_id": items["item_id"].to_numpy(),
        "path": items["path"].to_numpy(),
        "fold": items["fold"].to_numpy(),
        "true_label": true_labels,
        "predicted_label": ranked["top1_label"],
        "score": ranked["top1_score"],
        "correct": true_labels == ranked["top1_label"],
        **ranked,
    })


def top_k_columns(scores: np.ndarray, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each item's k best classes and their scores, best first (k = min(5, classes)): top1_label, top1_score, ...,
    topK_label, topK_score."""
    names = np.asarray(class_names, dtype=object)
    top = top_k_indices(scores, top_k(len(class_names)))
    top_scores = np.take_along_axis(scores, top, axis=1)
    columns = {}
    for rank in range(top.shape[1]):
        columns[f"top{rank + 1}_label"] = names[top[:, rank]]
        columns[f"top{rank + 1}_score"] = top_scores[:, rank]
    return columns


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
