"""Single-label zero-shot classification: each clip has one class; the best-scored class is the prediction.
Metrics from true labels and class probabilities: point estimates by scikit-learn, bootstrap intervals from
per-class counts of all resamples at once (checked against scikit-learn in the tests). Comparing two runs: paired
bootstrap deltas, an exact McNemar test of the accuracy difference, per-class recall deltas, changed predictions.

An audio language model in generate mode (zsa_eval/families/alm.py) names one class per clip, or none: its prediction
is the class its answer matched, an answer that matched none is wrong for every true class (index n_classes, "no
match"), and top-k is top-1 (an answer names one class)."""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from zsa_eval.data import AudioDataset, joined_labels_hint
from zsa_eval.errors import UserError
from zsa_eval.plots import confusion_png, recall_bars_png
from zsa_eval.stats import bootstrap_indices, percentile_interval
from zsa_eval.tasks import Evaluated, RunContext, worst_first
from zsa_eval.results import MetricSpec, Mistake, Mistakes, TaskResults
from zsa_eval.tasks.comparing import bootstrap_record, legend, paired_deltas, paired_items
from zsa_eval.results import Comparison
from zsa_eval.tasks.labels import (
    SCORE_COLUMNS,
    TOP_K,
    LabelTask,
    interval,
    predicted_positions,
    recorded_scores,
    top_k,
    top_k_columns,
    top_k_indices,
    top_labels_text,
)

INTERVAL_METRICS = ("accuracy", "top_k_accuracy", "balanced_accuracy", "macro_f1")  # each gets <name>_ci95
SIGNIFICANCE_LEVEL = 0.05
TOP_LABEL = re.compile(r"top\d+_label")
PREDICTION_NUMBERS = {"score": float, "correct": bool} | {f"top{rank}_score": float for rank in range(1, TOP_K + 1)}
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


def predictions_table(
    items: pd.DataFrame, y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
    answered: np.ndarray | None = None, ranking: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per evaluated item: ids, true and predicted label, its score, then the top-k classes as columns
    top1_label, top1_score, ..., topK_label, topK_score (k = min(5, classes); scores at full precision; classes
    ordered by `ranking` where given). With `answered` (generate mode): only top1, the answer's class, empty where
    it matched none."""
    true_labels = np.asarray(class_names, dtype=object)[y_true]
    ranked = top_k_columns(probabilities, class_names, None if answered is None else 1, ranking)
    if answered is not None:
        ranked["top1_label"] = np.where(answered, ranked["top1_label"], "")
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


def confident_mistakes(predictions: pd.DataFrame, per_class: int, total: int) -> pd.DataFrame:
    """The wrong predictions, most confident first (equal scores in dataset order), at most `per_class` of one true
    label and `total` in all; rows keep their index in `predictions`."""
    return worst_first(predictions[~predictions["correct"].astype(bool)], "score", "true_label", per_class, total)


def read_predictions(path: Path) -> pd.DataFrame:
    """predictions.csv as written: ids, paths, folds and labels as the exact text (`NA`, `None`, `01` stay so),
    scores as floats, correct as bool (the pandas call results/README.md documents)."""
    return pd.read_csv(path, keep_default_na=False, dtype=defaultdict(lambda: str, PREDICTION_NUMBERS))


def class_indices(items: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    """Each item's true class as its index in `class_names`."""
    return items["label"].map({name: index for index, name in enumerate(class_names)}).to_numpy()


def classification_results(items: pd.DataFrame, class_names: Sequence[str], probabilities: np.ndarray,
                           score_kind: str, folds: np.ndarray | None, seed: int,
                           answered: np.ndarray | None = None, ranking: np.ndarray | None = None) -> TaskResults:
    """What a single-label run reports of its items' class scores (whatever scored them: the prompts, a probe, or
    an audio language model's matched answers, `answered` saying which matched a class): accuracy and its kin with
    intervals; predictions (`score_kind` says what the scores are), per-class, per-fold (with `folds`, each item's
    fold) and confusion tables; the confusion matrix figure. Classes are ranked by `ranking` where given: the
    logits behind sigmoid scores, which keep the order float32 sigmoids round away (every score 1.0)."""
    n_classes = len(class_names)
    y_true = class_indices(items, class_names)
    order = probabilities if ranking is None else ranking
    y_pred = predicted_classes(order, answered)
    confusion = confusion_table(y_true, y_pred, class_names)
    predictions = predictions_table(items, y_true, probabilities, class_names, answered, ranking)
    predictions.insert(predictions.columns.get_loc("score") + 1, "score_kind", score_kind)
    tables = {"predictions": predictions, "per_class": per_class_table(y_true, y_pred, class_names)}
    if folds is not None:
        tables["per_fold"] = per_fold_table(y_true, y_pred, folds)
    tables["confusion_matrix"] = confusion.reset_index()
    summary = summary_metrics(y_true, order, n_classes, seed=seed, answered=answered)
    return TaskResults(summary | {"chance_accuracy": 1 / n_classes}, tables,
                       {"confusion_matrix.png": confusion_png(confusion)})


class ClassificationTask(LabelTask):
    name = "classification"
    main_score = "accuracy"
    chance_metric = "chance_accuracy"
    metrics = (MetricSpec("accuracy", "accuracy"), MetricSpec("top_k", "k", interval=False, whole=True),
               MetricSpec("top_k_accuracy", "top-k"), MetricSpec("balanced_accuracy", "balanced acc."),
               MetricSpec("macro_f1", "macro F1"))
    missing_score = "recall"

    def shown_metrics(self, metrics: dict) -> tuple[MetricSpec, ...]:
        """Top-k only where k is below the class count (with k = every class it is always 1) and above 1 (answers:
        top-1 is the accuracy)."""
        if 1 < metrics["top_k"] < metrics["n_classes"]:
            return self.metrics
        return tuple(spec for spec in self.metrics if spec.name not in ("top_k", "top_k_accuracy"))

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """Also a hint when class names look like joined label sets."""
        joined = joined_labels_hint(dataset.class_names)
        return super().check_dataset(dataset) + ([joined] if joined else [])

    def measure(self, context: RunContext, evaluated: Evaluated, probabilities: np.ndarray,
                logits: np.ndarray | None) -> TaskResults:
        """Accuracy and its kin with intervals; predictions, per-class, per-fold and confusion tables; the confusion
        matrix figure."""
        folds = evaluated.items["fold"].to_numpy() if context.dataset.has_folds else None
        answered = answers_matched(evaluated)
        score_kind = context.loaded.family.score_kind
        measured = classification_results(evaluated.items, context.dataset.class_names, probabilities, score_kind,
                                          folds, context.cfg.seed, answered,
                                          logits if score_kind == "sigmoid" else None)
        if answered is None:
            return measured
        predictions = measured.tables["predictions"]
        answer_columns = answers_table(evaluated, predictions["true_label"])
        for position, column in enumerate(("answer", "match")):
            predictions.insert(predictions.columns.get_loc("correct") + 1 + position, column,
                               answer_columns[column].to_numpy())
        unmatched = answer_columns[~answered].drop(columns="match").reset_index(drop=True)
        return TaskResults(measured.metrics | answer_counts(answer_columns["match"]),
                           measured.tables | {"unmatched": unmatched}, measured.figures)

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes:
        """The wrong predictions of predictions.csv (a probe's: its tested clips): the most confident first, each with
        the true label's score (from scores.parquet, where the run writes it) and the best three classes; in
        generate mode the wrong answers (answer_mistakes)."""
        cfg = context.cfg
        predictions = results.tables["predictions"]
        positions = predicted_positions(evaluated, predictions)
        if "answer" in predictions:
            return answer_mistakes(predictions, positions, cfg.report_mistakes_per_class, cfg.report_mistakes)
        scores = recorded_scores(results, predictions["item_id"], context.dataset.class_names,
                                 [SCORE_COLUMNS["softmax"], SCORE_COLUMNS["sigmoid"]])
        column = {name: index for index, name in enumerate(context.dataset.class_names)}
        chosen = confident_mistakes(predictions, cfg.report_mistakes_per_class, cfg.report_mistakes)
        items = [Mistake(row["item_id"], (("clip", positions[index]),),
                         {"true label": row["true_label"], "predicted": row["predicted_label"],
                          f"score ({row['score_kind']})": row["score"],
                          **({"true label's score": scores[index, column[row["true_label"]]]}
                             if scores is not None else {}),
                          "top 3": top_labels_text(row, separator="\n")})
                 for index, row in chosen.iterrows()]
        wrong = int((~predictions["correct"]).sum())
        if not wrong:
            return Mistakes(f"Every one of the {len(predictions)} predictions is right.", items)
        return Mistakes(f"The {len(items)} most confident of the {wrong} wrong predictions (at most "
                        f"{cfg.report_mistakes_per_class} per true label, {cfg.report_mistakes} in all), most confident "
                        "first.", items)

    def headline(self, metrics: dict) -> str:
        top = (f"top-{metrics['top_k']} {metrics['top_k_accuracy']:.4f}, "
               if 1 < metrics["top_k"] < metrics["n_classes"] else "")  # k = every class: always 1; k = 1: accuracy
        return (f"accuracy {metrics['accuracy']:.4f} {interval(metrics['accuracy_ci95'])} "
                f"({top}balanced {metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f})")

    def compare(self, run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                seed: int) -> ClassificationComparison:
        return compare_classification(run_a, metrics_a, run_b, metrics_b, resamples, seed)


TASK = ClassificationTask()


ANSWER_ORDER = {"exact": 0, "fuzzy": 1, "none": 2}  # wrong answers that named a class first, then those naming none


def answer_mistakes(predictions: pd.DataFrame, positions: list[int], per_class: int, total: int) -> Mistakes:
    """Generate mode's wrong answers, each with its text and the class it matched or none: first the answers that
    named another class (matched exactly, then fuzzily: the model's confusions), then those that named none, each in
    dataset order; at most `per_class` of one true label and `total` in all."""
    wrong = predictions[~predictions["correct"].astype(bool)]
    chosen = worst_first(wrong.assign(priority=-wrong["match"].map(ANSWER_ORDER)), "priority", "true_label", per_class,
                         total)
    items = [Mistake(row["item_id"], (("clip", positions[index]),),
                     {"true label": row["true_label"], "answer": row["answer"] or "(empty)",
                      "matched": row["predicted_label"] or NO_MATCH, "match": row["match"]})
             for index, row in chosen.iterrows()]
    named = int((wrong["match"] != "none").sum())
    return Mistakes(f"{len(items)} of the {len(wrong)} wrong answers ({named} named another class, "
                    f"{len(wrong) - named} matched no class; at most {per_class} per true label, {total} in all): "
                    "first those that named another class (matched exactly, then fuzzily), then those that matched "
                    "none, each in dataset order.", items)


def answers_matched(evaluated: Evaluated) -> np.ndarray | None:
    """Whether each item's answer matched a class (generate mode: records hold answers), else None."""
    if not evaluated.records or "answer" not in evaluated.records[0]:
        return None
    return np.array([record["match"] != "none" for record in evaluated.records])


def answers_table(evaluated: Evaluated, true_labels: pd.Series) -> pd.DataFrame:
    """Each item's raw answer and how it matched (exact, fuzzy, none), with its id, path and true label."""
    return pd.DataFrame({"item_id": evaluated.items["item_id"].to_numpy(), "path": evaluated.items["path"].to_numpy(),
                         "true_label": true_labels.to_numpy(),
                         "answer": [record["answer"] for record in evaluated.records],
                         "match": [record["match"] for record in evaluated.records]})


def answer_counts(matches: pd.Series) -> dict:
    """metrics.json's account of the answers: how many matched exactly, fuzzily, or not at all (counted wrong)."""
    counts = {kind: int((matches == kind).sum()) for kind in ("exact", "fuzzy", "none")}
    return {"n_unmatched": counts["none"], "unmatched_fraction": counts["none"] / len(matches),
            "answer_matches": counts}


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
    recalls = recalls.reindex(recalls["delta"].abs().sort_values(ascending=False, kind="stable").index)
    changed = both[both["predicted_label_a"] != both["predicted_label_b"]]
    changed = pd.DataFrame({"item_id": changed["item_id"], "true_label": changed["true_label_a"],
                            "predicted_a": changed["predicted_label_a"], "predicted_b": changed["predicted_label_b"],
                            "correct_a": changed["correct_a"], "correct_b": changed["correct_b"]})
    return ClassificationComparison(
        str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b),
        len(predictions_a), len(predictions_b), len(both), "items",
        paired_deltas(point, samples, compared_metrics(metrics_a, metrics_b)), bootstrap_record(resamples, seed),
        mcnemar=mcnemar_test(correct["a"], correct["b"]), recall_deltas=recalls.reset_index(drop=True),
        changed=changed.reset_index(drop=True))
