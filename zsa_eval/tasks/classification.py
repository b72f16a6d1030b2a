"""Single-label zero-shot classification: each clip has one class; the best-scored class is the prediction. Its
metrics are zsa_eval.tasks.accuracy's; comparing two runs is zsa_eval.tasks.classification_compare's.

An audio language model in generate mode (zsa_eval/families/alm.py) names one class per clip, or none: its prediction
is the class its answer matched, an answer that matched none is wrong for every true class (index n_classes, "no
match"), and top-k is top-1 (an answer names one class)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.answers import MATCH_KINDS
from zsa_eval.data import AudioDataset, joined_labels_hint
from zsa_eval.plots import confusion_png
from zsa_eval.results import MetricSpec, Mistake, Mistakes, TaskResults
from zsa_eval.tasks import Evaluated, RunContext, worst_first
from zsa_eval.tasks.accuracy import (NO_MATCH, confusion_table, per_class_table, per_fold_table, predicted_classes,
                                     summary_metrics)
from zsa_eval.tasks.classification_compare import ClassificationComparison, compare_classification
from zsa_eval.tasks.labels import (
    SCORE_COLUMNS,
    LabelTask,
    answer_matching,
    interval,
    predicted_positions,
    recorded_scores,
    top_k_columns,
    top_labels_text,
)



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
        return TaskResults(measured.metrics | answer_counts(answer_columns["match"], answer_matching(context.cfg)),
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


ANSWER_ORDER = {"exact": 0, "fuzzy": 1, "substring": 1, "none": 2}  # wrong answers naming a class first, then none


def answer_mistakes(predictions: pd.DataFrame, positions: list[int], per_class: int, total: int) -> Mistakes:
    """Generate mode's wrong answers, each with its text and the class it matched or none: first the answers that
    named another class (matched exactly, then loosely: the model's confusions), then those that named none, each in
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
                    "first those that named another class (matched exactly, then loosely), then those that matched "
                    "none, each in dataset order.", items)


def answers_matched(evaluated: Evaluated) -> np.ndarray | None:
    """Whether each item's answer matched a class (generate mode: records hold answers), else None."""
    if not evaluated.records or "answer" not in evaluated.records[0]:
        return None
    return np.array([record["match"] != "none" for record in evaluated.records])


def answers_table(evaluated: Evaluated, true_labels: pd.Series) -> pd.DataFrame:
    """Each item's raw answer and how it matched (exact, fuzzy or substring, none), with its id, path and true
    label."""
    return pd.DataFrame({"item_id": evaluated.items["item_id"].to_numpy(), "path": evaluated.items["path"].to_numpy(),
                         "true_label": true_labels.to_numpy(),
                         "answer": [record["answer"] for record in evaluated.records],
                         "match": [record["match"] for record in evaluated.records]})


def answer_counts(matches: pd.Series, rules: str) -> dict:
    """metrics.json's account of the answers: how many matched in each way the `rules` match (exactly, fuzzily or as
    a substring), or not at all (counted wrong)."""
    counts = {kind: int((matches == kind).sum()) for kind in MATCH_KINDS[rules]}
    return {"n_unmatched": counts["none"], "unmatched_fraction": counts["none"] / len(matches),
            "answer_matches": counts}
