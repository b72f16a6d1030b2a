"""Multi-label zero-shot tagging (task: multilabel): each clip carries a set of classes and every class ranks all
clips. Metrics come from the raw scores, the family's logits (a softmax across classes would reorder the clips
within a class): per-class average precision and ROC AUC, their means mAP and mAUC, d-prime, label ranking average
precision. Point estimates by scikit-learn; 95% bootstrap intervals over the clips from all resamples at once (each
resample as per-clip draw counts), checked against scikit-learn with those counts as sample weights in the tests."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import digamma
from scipy.stats import norm
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score, roc_auc_score

from zsa_eval.data import LABEL_SET_SEPARATOR
from zsa_eval.metrics import BOOTSTRAP_LEVEL, bootstrap_indices, percentile_interval, top_k_columns

INTERVAL_METRICS = ("map", "mauc", "d_prime", "lrap")  # each gets <name>_ci95
RANKING_CHUNK = 256  # items per block in ranking_precisions (block x classes x classes booleans)


def label_matrix(label_sets: Sequence[Sequence[str]], class_names: Sequence[str]) -> np.ndarray:
    """(items, classes) booleans: whether each item carries each class."""
    column = {name: index for index, name in enumerate(class_names)}
    matrix = np.zeros((len(label_sets), len(class_names)), dtype=bool)
    for row, labels in enumerate(label_sets):
        matrix[row, [column[name] for name in labels]] = True
    return matrix


def d_prime(auc: float | np.ndarray) -> float | np.ndarray:
    """AudioSet's d-prime: sqrt(2) * inverse normal CDF of the AUC (the separation, in standard deviations, of two
    unit-variance normal score distributions with that AUC)."""
    return np.sqrt(2) * norm.ppf(auc)


def per_class_table(y_true: np.ndarray, scores: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """label, support (clips carrying it), ap (average precision), auc (ROC AUC, ties counted half); ap is empty
    for a class without clips, auc for a class without clips or carried by every clip."""
    support = y_true.sum(axis=0).astype(np.int64)
    ap = np.full(len(class_names), np.nan)
    auc = np.full(len(class_names), np.nan)
    for column in range(len(class_names)):
        if support[column]:
            ap[column] = average_precision_score(y_true[:, column], scores[:, column])
        if 0 < support[column] < len(y_true):
            auc[column] = roc_auc_score(y_true[:, column], scores[:, column])
    return pd.DataFrame({"label": list(class_names), "support": support, "ap": ap, "auc": auc})


def ranking_precisions(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each item's label ranking average precision: over its true classes j, the mean share of true classes among
    the classes scored at least as high as j. An item with no true class, or with all, gets 1 (as scikit-learn's
    LRAP, the mean of these over the items)."""
    values = np.empty(len(y_true))
    n_classes = y_true.shape[1]
    for start in range(0, len(y_true), RANKING_CHUNK):
        block, truth = scores[start:start + RANKING_CHUNK], y_true[start:start + RANKING_CHUNK]
        at_least = block[:, None, :] >= block[:, :, None]  # [item, j, k]: class k scored at least as high as j
        ranked = at_least.sum(axis=2)
        true_ranked = (at_least & truth[:, None, :]).sum(axis=2)
        n_true = truth.sum(axis=1)
        precision = np.where(truth, true_ranked / ranked, 0.0).sum(axis=1) / np.maximum(n_true, 1)
        values[start:start + RANKING_CHUNK] = np.where((n_true == 0) | (n_true == n_classes), 1.0, precision)
    return values


def resample_counts(n_items: int, resamples: int, seed: int) -> np.ndarray:
    """(items, resamples) how often each item is drawn in each bootstrap resample (the draws of
    zsa_eval.metrics.bootstrap_indices, so a seed gives the same resamples as the single-label intervals)."""
    indices = bootstrap_indices(n_items, resamples, seed)
    cells = (indices * resamples + np.arange(resamples)[:, None]).ravel()
    return np.bincount(cells, minlength=n_items * resamples).reshape(n_items, resamples).astype(np.float32)


def resampled_ap_auc(positive: np.ndarray, score: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One class's average precision and ROC AUC in every resample (column of `counts`: each item's draws), NaN
    where a resample has no positive (AP) or lacks positives or negatives (AUC).

    AP counts every draw as its own rank position (items by score, tied items in dataset order, a clip's copies one
    after another): the mean over positive draws of the precision at their position. (Grouping a clip's copies as
    tied scores would let them lift each other's precision further.) With each item drawn once and no tied scores
    this is scikit-learn's AP. AUC counts a tied positive-negative pair half, as scikit-learn does. The draws ranked
    before each positive are sums over the segments between consecutive positives: one sparse product per class."""
    positives = np.flatnonzero(positive)
    n_items, resamples = counts.shape
    if not len(positives):
        nothing = np.full(resamples, np.nan)
        return nothing, nothing
    rank = np.empty(n_items, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(n_items)
    positives = positives[np.argsort(rank[positives])]
    segment = np.searchsorted(rank[positives], rank, side="right")  # positives ranked at or before each item
    segments = sparse.csr_matrix((np.ones(n_items, np.float32), (segment, np.arange(n_items))),
                                 shape=(len(positives) + 1, n_items))
    drawn_before = np.cumsum((segments @ counts).astype(np.float64), axis=0)[:-1]
    positive_counts = counts[positives].astype(np.float64)
    negatives_before = drawn_before - (np.cumsum(positive_counts, axis=0) - positive_counts)
    # the w copies of a positive at draw positions b+1..b+w with b-n positives before: sum_k (b-n+k)/(b+k)
    copies_precision = positive_counts - negatives_before * (digamma(drawn_before + positive_counts + 1)
                                                              - digamma(drawn_before + 1))
    total_positive = positive_counts.sum(axis=0)
    total_negative = counts.sum(axis=0, dtype=np.float64) - total_positive
    negatives_above = negatives_before - tied_negatives(positive, score, rank, positives) @ counts
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = copies_precision.sum(axis=0) / total_positive
        auc = (positive_counts * (total_negative - negatives_above)).sum(axis=0) / (total_positive * total_negative)
    return (np.where(total_positive > 0, ap, np.nan),
            np.where((total_positive > 0) & (total_negative > 0), auc, np.nan))


def tied_negatives(positive: np.ndarray, score: np.ndarray, rank: np.ndarray,
                   positives: np.ndarray) -> sparse.csr_matrix:
    """(positives, items) the correction that makes `negatives ranked before` count a negative tied with a
    positive as half above it: +0.5 for one ranked before it, -0.5 for one ranked after."""
    negatives = np.flatnonzero(~positive)
    negatives = negatives[np.argsort(score[negatives], kind="stable")]
    low = np.searchsorted(score[negatives], score[positives], side="left")
    high = np.searchsorted(score[negatives], score[positives], side="right")
    rows = np.repeat(np.arange(len(positives)), high - low)
    columns = negatives[np.concatenate([np.arange(a, b) for a, b in zip(low, high)] or [np.zeros(0, int)])]
    values = np.where(rank[columns] < rank[positives][rows], 0.5, -0.5).astype(np.float32)
    return sparse.csr_matrix((values, (rows, columns)), shape=(len(positives), len(score)))


def quiet_nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """np.nanmean without the warning for an all-NaN slice (which stays NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summary_metrics(y_true: np.ndarray, scores: np.ndarray, per_class: pd.DataFrame, resamples: int = 1000,
                    seed: int = 0) -> dict:
    """mAP (macro over the classes with at least one clip), mAUC (over the classes with clips and non-clips),
    d-prime of the mAUC, LRAP, each with a 95% percentile bootstrap interval (a resample's means cover the classes
    it has clips of), and micro mAP (every item-class pair one ranking; no interval). Undefined values are null."""
    counts = resample_counts(len(y_true), resamples, seed)
    resampled = [resampled_ap_auc(y_true[:, column], scores[:, column], counts) for column in range(y_true.shape[1])]
    ap_samples = np.stack([ap for ap, _ in resampled], axis=1)
    auc_samples = np.stack([auc for _, auc in resampled], axis=1)
    mauc_samples = quiet_nanmean(auc_samples, axis=1)
    samples = {"map": quiet_nanmean(ap_samples, axis=1), "mauc": mauc_samples, "d_prime": d_prime(mauc_samples),
               "lrap": ranking_precisions(y_true, scores) @ counts / len(y_true)}
    counted = per_class["support"] > 0
    mauc = quiet_nanmean(per_class["auc"].to_numpy())
    point = {"map": quiet_nanmean(per_class["ap"].to_numpy()), "mauc": mauc, "d_prime": d_prime(mauc),
             "lrap": label_ranking_average_precision_score(y_true, scores)}
    return {
        **{name: finite_or_none(value) for name, value in point.items()},
        **{f"{name}_ci95": percentile_interval(values[np.isfinite(values)]) if np.isfinite(values).any() else None
           for name, values in samples.items()},
        "micro_map": float(average_precision_score(y_true.ravel(), scores.ravel())),
        "n_classes_counted": int(counted.sum()),
        "n_classes_auc": int(per_class["auc"].notna().sum()),
        "chance_map": float(per_class.loc[counted, "support"].mean() / len(y_true)),
        "label_cardinality": float(y_true.sum(axis=1).mean()),
        "bootstrap": {"resamples": resamples, "seed": seed, "level": BOOTSTRAP_LEVEL},
    }


def predictions_table(items: pd.DataFrame, y_true: np.ndarray, scores: np.ndarray,
                      class_names: Sequence[str]) -> pd.DataFrame:
    """One row per evaluated item: ids, its true labels (joined by "|") and their number, its label ranking
    average precision, then its top-k classes and scores (k = min(5, classes))."""
    names = np.asarray(class_names, dtype=object)
    return pd.DataFrame({
        "item_id": items["item_id"].to_numpy(),
        "path": items["path"].to_numpy(),
        "fold": items["fold"].to_numpy(),
        "true_labels": [LABEL_SET_SEPARATOR.join(names[row]) for row in y_true],
        "n_true_labels": y_true.sum(axis=1),
        "ranking_precision": ranking_precisions(y_true, scores),
        **top_k_columns(scores, class_names),
    })
