"""Two single-label runs compared on the items both evaluated: paired bootstrap deltas of the metrics, an exact
McNemar test of the accuracy difference, per-class recall deltas and the items whose prediction changed."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from zsa_eval.errors import UserError
from zsa_eval.plots import recall_bars_png
from zsa_eval.results import Comparison
from zsa_eval.stats import bootstrap_indices
from zsa_eval.tasks.accuracy import INTERVAL_METRICS, point_metrics, resampled_metrics
from zsa_eval.tasks.comparing import bootstrap_record, largest_first, legend, paired_deltas, paired_items
from zsa_eval.tasks.labels import TOP_K

SIGNIFICANCE_LEVEL = 0.05
TOP_LABEL = re.compile(r"top\d+_label")
PREDICTION_NUMBERS = {"score": float, "correct": bool} | {f"top{rank}_score": float for rank in range(1, TOP_K + 1)}


def read_predictions(path: Path) -> pd.DataFrame:
    """predictions.csv as written: ids, paths, folds and labels as the exact text (`NA`, `None`, `01` stay so),
    scores as floats, correct as bool (the pandas call results/README.md documents)."""
    return pd.read_csv(path, keep_default_na=False, dtype=defaultdict(lambda: str, PREDICTION_NUMBERS))


def run_predictions(run_dir: Path) -> pd.DataFrame:
    """A finished run's predictions.csv (item ids unique, with its top-k labels)."""
    try:
        predictions = read_predictions(run_dir / "predictions.csv")
    except (OSError, ValueError) as error:
        raise UserError(f"{run_dir} is not a finished zsa-eval run (metrics.json, predictions.csv): {error}; "
                        "pass run directories such as results/esc50/clap/sound_of/<timestamp>") from error
    has_top_k = "top5_labels" in predictions or any(map(TOP_LABEL.fullmatch, predictions.columns))
    if predictions["item_id"].duplicated().any() or not has_top_k:
        raise UserError(f"{run_dir / 'predictions.csv'} is not a zsa-eval predictions table (repeated item ids or "
                        "no top-k labels); pass the directory of a zsa-eval run")
    return predictions


def predicted_top_k_hits(predictions: pd.DataFrame) -> np.ndarray:
    """Whether each item's true label is among its top-k labels (top1_label... columns; runs written before those
    existed hold them |-joined in top5_labels)."""
    if "top5_labels" in predictions:
        return np.array([true in ranked.split("|")
                         for true, ranked in zip(predictions["true_label"], predictions["top5_labels"])])
    ranked = predictions[[name for name in predictions.columns if TOP_LABEL.fullmatch(name)]]
    return ranked.eq(predictions["true_label"], axis=0).any(axis=1).to_numpy()


def mcnemar_test(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test: under equal accuracy, the items only one run gets right split 50:50 between them
    (two-sided binomial test on the discordant pairs; p = 1 when there are none)."""
    a_only, b_only = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    p_value = float(binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else 1.0
    return {"a_only_correct": a_only, "b_only_correct": b_only, "p_value": p_value,
            "significant": p_value < SIGNIFICANCE_LEVEL, "alpha": SIGNIFICANCE_LEVEL}


@dataclass(frozen=True)
class ClassificationComparison(Comparison):
    mcnemar: dict = None                 # a_only_correct, b_only_correct, p_value, significant
    recall_deltas: pd.DataFrame = None   # label, recall_a, recall_b, delta (largest change first)
    changed: pd.DataFrame = None         # item_id, true_label, predicted_a, predicted_b, correct_a, correct_b

    def verdict(self) -> str:
        """The accuracy difference, its interval, and whether McNemar's test finds it significant."""
        accuracy = self.metric_deltas.set_index("metric").loc["accuracy"]
        test = self.mcnemar
        significance = "significant" if test["significant"] else "not significant"
        return (f"Accuracy B - A = {accuracy['delta']:+.4f} (95% CI [{accuracy['delta_ci95_low']:+.4f}, "
                f"{accuracy['delta_ci95_high']:+.4f}]) on {self.n_common} common items: {significance} at "
                f"{test['alpha']} (exact McNemar p = {test['p_value']:.4g}; only A right on {test['a_only_correct']}, "
                f"only B right on {test['b_only_correct']}).")

    def shown_tables(self) -> list[tuple[str, pd.DataFrame]]:
        fixed = int((self.changed["correct_b"] & ~self.changed["correct_a"]).sum())
        broken = int((self.changed["correct_a"] & ~self.changed["correct_b"]).sum())
        return [("Per-class recall on the common items, largest change first", self.recall_deltas),
                (f"Items whose prediction changed: {len(self.changed)} ({fixed} now right, {broken} now wrong)",
                 self.changed)]

    def extra_summary(self) -> dict:
        return {"mcnemar": self.mcnemar, "n_changed": len(self.changed)}

    def tests(self) -> list[str]:
        """McNemar's test in words."""
        test = self.mcnemar
        significance = "significant" if test["significant"] else "not significant"
        return [f"Exact McNemar test of the accuracy difference: A alone got {test['a_only_correct']} of the common "
                f"items right, B alone {test['b_only_correct']}; with equal accuracies these would split evenly (a "
                f"two-sided binomial test): p = {test['p_value']:.4g}, {significance} at {test['alpha']}."]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"changed_predictions": self.changed}

    def figures(self) -> dict[str, bytes]:
        return {"compare_recall.png": recall_bars_png(self.recall_deltas.sort_values("label"), self.legend_a,
                                                      self.legend_b)}


def compared_metrics(metrics_a: dict, metrics_b: dict) -> list[str]:
    """The metrics two runs are compared on: top-k only when both took the same k and it is below the class count
    and above 1 (an answer's top-1 beside a likelihood run's top-5 says nothing)."""
    k = {metrics.get("top_k") for metrics in (metrics_a, metrics_b)}  # None: a run from before top_k was recorded
    n_classes = min(len(metrics_a["labels"]), len(metrics_b["labels"]))
    same_k = len(k) == 1 and (None in k or 1 < next(iter(k)) < n_classes)
    return [name for name in INTERVAL_METRICS if name != "top_k_accuracy" or same_k]


def compare_classification(run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                           seed: int) -> ClassificationComparison:
    """Run B against run A on the items both evaluated (refused when there are none, or when the label sets or the
    items' true labels differ)."""
    predictions_a, predictions_b = run_predictions(run_a), run_predictions(run_b)
    labels_a, labels_b = set(metrics_a["labels"]), set(metrics_b["labels"])
    if labels_a != labels_b:
        raise UserError(f"the runs use different class sets ({len(labels_a - labels_b)} only in {run_a}, "
                        f"{len(labels_b - labels_a)} only in {run_b}); compare runs of the same classes")
    both = paired_items(predictions_a.assign(hit=predicted_top_k_hits(predictions_a)),
                        predictions_b.assign(hit=predicted_top_k_hits(predictions_b)), run_a, run_b, "items",
                        "another true label")
    classes = {label: index for index, label in enumerate(sorted(labels_a))}
    y_true = both["true_label_a"].map(classes).to_numpy()
    predicted = {run: both[f"predicted_label_{run}"].map(classes).fillna(len(classes)).to_numpy(dtype=int)
                 for run in "ab"}  # an answer that matched no class: "no match", index len(classes)
    unmatched = any((predicted[run] == len(classes)).any() for run in "ab")
    hits = {run: both[f"hit_{run}"].to_numpy(dtype=bool) for run in "ab"}
    point = {run: point_metrics(y_true, predicted[run], hits[run]) for run in "ab"}
    indices = bootstrap_indices(len(both), resamples, seed)
    samples = {run: resampled_metrics(y_true, predicted[run], hits[run], indices, len(classes) + unmatched)
               for run in "ab"}
    correct = {run: predicted[run] == y_true for run in "ab"}
    recalls = pd.DataFrame({"label": both["true_label_a"], "recall_a": correct["a"], "recall_b": correct["b"]}) \
        .groupby("label", sort=True).mean().reset_index()
    recalls["delta"] = recalls["recall_b"] - recalls["recall_a"]
    recalls = largest_first(recalls, "delta")
    changed = both[both["predicted_label_a"] != both["predicted_label_b"]]
    changed = pd.DataFrame({"item_id": changed["item_id"], "true_label": changed["true_label_a"],
                            "predicted_a": changed["predicted_label_a"], "predicted_b": changed["predicted_label_b"],
                            "correct_a": changed["correct_a"], "correct_b": changed["correct_b"]})
    return ClassificationComparison(
        str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b),
        len(predictions_a), len(predictions_b), len(both), "items",
        paired_deltas(point, samples, compared_metrics(metrics_a, metrics_b)), bootstrap_record(resamples, seed),
        mcnemar=mcnemar_test(correct["a"], correct["b"]), recall_deltas=recalls,
        changed=changed.reset_index(drop=True))
