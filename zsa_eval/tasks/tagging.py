"""Multi-label zero-shot tagging (task: multilabel): each clip carries a set of classes and every class ranks all
clips. Metrics come from the raw scores, the family's logits (a softmax across classes would reorder the clips
within a class): per-class average precision and ROC AUC, their means mAP and mAUC, d-prime, label ranking average
precision. Point estimates by scikit-learn; 95% bootstrap intervals over the clips from all resamples at once (each
resample as per-clip draw counts), checked against scikit-learn with those counts as sample weights in the tests.
Comparing two runs: the same metrics on the clips both evaluated, with paired bootstrap deltas, and per-class AP
deltas."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy import sparse
from scipy.special import digamma
from scipy.stats import norm
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score, roc_auc_score

from zsa_eval.data import LABEL_SET_SEPARATOR
from zsa_eval.errors import UserError
from zsa_eval.plots import ap_bars_png, recall_bars_png
from zsa_eval.stats import bootstrap_indices, median_centred_interval, percentile_interval
from zsa_eval.tasks import Evaluated, RunContext, worst_first
from zsa_eval.results import MetricSpec, Mistake, Mistakes, TaskResults
from zsa_eval.tasks.comparing import bootstrap_record, largest_first, legend, paired_deltas, paired_items
from zsa_eval.results import Comparison
from zsa_eval.tasks.labels import (LabelTask, interval, number, predicted_positions, recorded_scores, top_k_columns,
                                  top_labels_text)

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
    zsa_eval.stats.bootstrap_indices, so a seed gives the same resamples as the single-label intervals)."""
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


def with_measured_where_undefined(samples: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """(resamples, classes) per-class values with each value a resample cannot define (it drew none of the class's
    clips, or for AUC none of its non-clips) replaced by the class's value measured on every clip: each resample's
    mean then covers the same classes as the estimate's (a resample's mean over only the classes it drew would shift
    with which rare classes it missed, and could leave the estimate outside the interval)."""
    return np.where(np.isnan(samples), measured[None, :], samples)


def resampled_class_means(y_true: np.ndarray, scores: np.ndarray, per_class: pd.DataFrame,
                          counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mAP and mAUC on every resample (`counts`: each clip's draws per resample), over the classes the estimates
    cover (with_measured_where_undefined)."""
    resampled = [resampled_ap_auc(y_true[:, column], scores[:, column], counts) for column in range(y_true.shape[1])]
    ap = with_measured_where_undefined(np.stack([ap for ap, _ in resampled], axis=1), per_class["ap"].to_numpy())
    auc = with_measured_where_undefined(np.stack([auc for _, auc in resampled], axis=1), per_class["auc"].to_numpy())
    return quiet_nanmean(ap, axis=1), quiet_nanmean(auc, axis=1)


CLASS_MEANS = {"map": (0.0, 1.0), "mauc": (0.0, 1.0), "d_prime": (-np.inf, np.inf)}  # means over classes: ranges


def bootstrap_interval(name: str, samples: np.ndarray, estimate: float) -> list[float] | None:
    """A metric's 95% interval from its finite resampled values (None when it has none, or no estimate): for the
    means over classes, whose resamples are biased (a clip drawn twice lifts its own precision), the percentile
    interval moved by the median bias, which holds the estimate (zsa_eval.stats.median_centred_interval); for
    LRAP, a mean over clips, the percentile interval."""
    finite = samples[np.isfinite(samples)]
    if not len(finite) or not np.isfinite(estimate):
        return None
    if name in CLASS_MEANS:
        return median_centred_interval(finite, float(estimate), bounds=CLASS_MEANS[name])
    return percentile_interval(finite)


def summary_metrics(y_true: np.ndarray, scores: np.ndarray, per_class: pd.DataFrame, resamples: int = 1000,
                    seed: int = 0) -> dict:
    """mAP (macro over the classes with at least one clip), mAUC (over the classes with clips and non-clips),
    d-prime of the mAUC, LRAP, each with a 95% bootstrap interval that holds the estimate (bootstrap_interval; each
    resample's means cover the same classes as the estimates: a class the resample drew no clip of counts at its
    measured value), and micro mAP (every item-class pair one ranking; no interval). Undefined values are null."""
    counts = resample_counts(len(y_true), resamples, seed)
    map_samples, mauc_samples = resampled_class_means(y_true, scores, per_class, counts)
    samples = {"map": map_samples, "mauc": mauc_samples, "d_prime": d_prime(mauc_samples),
               "lrap": ranking_precisions(y_true, scores) @ counts / len(y_true)}
    counted = per_class["support"] > 0
    mauc = quiet_nanmean(per_class["auc"].to_numpy())
    point = {"map": quiet_nanmean(per_class["ap"].to_numpy()), "mauc": mauc, "d_prime": d_prime(mauc),
             "lrap": label_ranking_average_precision_score(y_true, scores)}
    return {
        **{name: finite_or_none(value) for name, value in point.items()},
        **{f"{name}_ci95": bootstrap_interval(name, samples[name], point[name]) for name in point},
        "micro_map": float(average_precision_score(y_true.ravel(), scores.ravel())),
        "n_classes_counted": int(counted.sum()),
        "n_classes_auc": int(per_class["auc"].notna().sum()),
        "chance_map": float(per_class.loc[counted, "support"].mean() / len(y_true)),
        "label_cardinality": float(y_true.sum(axis=1).mean()),
        "bootstrap": bootstrap_record(resamples, seed),
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


def worst_ranked_labels(y_true: np.ndarray, scores: np.ndarray, per_class: int, total: int) -> pd.DataFrame:
    """Each clip's true labels that a false label outranks (ranked below the clip's count of true labels), worst rank
    first (equal ranks in clip, then class, order), at most `per_class` of one class and `total` in all: clip (row
    of `scores`), label (column), rank (1-based among all classes, equal scores in class order, as the top-k
    columns rank them) and score."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :], axis=1)
    clips, labels = np.nonzero(y_true)
    pairs = pd.DataFrame({"clip": clips, "label": labels, "rank": ranks[clips, labels], "score": scores[clips, labels]})
    return worst_first(pairs[pairs["rank"] > y_true.sum(axis=1)[clips]], "rank", "label", per_class, total)


def tagging_results(items: pd.DataFrame, class_names: Sequence[str], scores: np.ndarray, seed: int,
                    ranking_scores: str) -> TaskResults:
    """What a multi-label run reports of its clips' class scores (whatever scored them: the prompts, or a probe;
    `ranking_scores` says what they are): mAP and its kin with intervals; predictions and per-class AP tables; the
    AP bars."""
    y_true = label_matrix(items["labels"], class_names)
    per_class = per_class_table(y_true, scores, class_names)
    return TaskResults(
        summary_metrics(y_true, scores, per_class, seed=seed) | {"ranking_scores": ranking_scores},
        {"predictions": predictions_table(items, y_true, scores, class_names), "per_class": per_class},
        {"per_class_ap.png": ap_bars_png(per_class)})


class TaggingTask(LabelTask):
    name = "multilabel"
    main_score = "map"
    chance_metric = "chance_map"
    metrics = (MetricSpec("map", "mAP"), MetricSpec("mauc", "mAUC", shown=False), MetricSpec("d_prime", "d'", shown=False),
               MetricSpec("lrap", "LRAP", shown=False))  # the page shows all; leaderboard.md mAP, its CSV all
    missing_score = "AP (left out of mAP)"

    def check(self, cfg: DictConfig) -> None:
        """Ranking needs the embed engine's logits (the pipeline gives softmax scores; an audio language model's
        answer names one label); there is no accuracy to gate."""
        if cfg.engine == "pipeline":
            raise UserError(f"dataset={cfg.dataset.name} is multi-label: its metrics rank clips by the model's logits, "
                            "which only engine=embed gives; use engine=embed")
        if cfg.gate.min_accuracy is not None or cfg.gate.baseline is not None:
            raise UserError(f"dataset={cfg.dataset.name} is multi-label and has no accuracy for gate.min_accuracy or "
                            "gate.baseline to check; drop the gate settings")
        if cfg.model.get("scoring") == "generate":
            raise UserError(f"dataset={cfg.dataset.name} is multi-label: its metrics rank every label of every clip, "
                            "and model.scoring=generate gives one answer per clip; use model.scoring=likelihood")
        super().check(cfg)

    def measure(self, context: RunContext, evaluated: Evaluated, probabilities: np.ndarray,
                logits: np.ndarray | None) -> TaskResults:
        """mAP and its kin with intervals, ranked by the logits; predictions and per-class AP tables; the AP bars."""
        return tagging_results(evaluated.items, context.dataset.class_names, logits, context.cfg.seed,
                               "logits (the family's scaled audio-text similarity, before softmax or sigmoid)")

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes | None:
        """The true labels ranked worst among their clip's classes by its logits (scores.parquet; a probe's: its tested
        clips), with the clip's true labels and its best three classes; none for a run without logits."""
        cfg, class_names = context.cfg, context.dataset.class_names
        predictions = results.tables["predictions"]
        logits = recorded_scores(results, predictions["item_id"], class_names, ["logit"])
        if logits is None:
            return None
        label_sets = evaluated.items.set_index("item_id").loc[predictions["item_id"], "labels"]
        chosen = worst_ranked_labels(label_matrix(label_sets, class_names), logits, cfg.report_mistakes_per_class,
                                     cfg.report_mistakes)
        positions = predicted_positions(evaluated, predictions)
        items = [Mistake(predictions.at[clip, "item_id"], (("clip", positions[clip]),),
                         {"true label": class_names[label], "its rank": int(rank), "its logit": float(score),
                          "true labels": predictions.at[clip, "true_labels"],
                          "top 3 (logits)": top_labels_text(predictions.loc[clip], separator="\n")})
                 for clip, label, rank, score in chosen.itertuples(index=False)]
        return Mistakes(f"The {len(items)} worst-ranked true labels among the {len(class_names)} classes (a label "
                        "ranked below its clip's count of true labels: a false label outranks it), at most "
                        f"{cfg.report_mistakes_per_class} per class and {cfg.report_mistakes} in all, worst first.",
                        items)

    def headline(self, metrics: dict) -> str:
        return (f"mAP {number(metrics['map'])} {interval(metrics['map_ci95'])} over the "
                f"{metrics['n_classes_counted']} of {metrics['n_classes']} classes with clips "
                f"(mAUC {number(metrics['mauc'])}, d' {number(metrics['d_prime'])}, LRAP {number(metrics['lrap'])}, "
                f"chance mAP {metrics['chance_map']:.4f})")

    def compare(self, run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                seed: int) -> TaggingComparison:
        return compare_tagging(run_a, metrics_a, run_b, metrics_b, resamples, seed)


TASK = TaggingTask()
COMPARED_METRICS = ("map", "mauc", "lrap")  # d' is a function of mAUC; micro mAP has no interval


@dataclass(frozen=True)
class TaggingComparison(Comparison):
    ap_deltas: pd.DataFrame = None  # label, support, ap_a, ap_b, delta (largest change first)

    def shown_tables(self) -> list[tuple[str, pd.DataFrame]]:
        return [("Per-class AP on the common clips, largest change first", self.ap_deltas)]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"ap_deltas": self.ap_deltas}

    def figures(self) -> dict[str, bytes]:
        counted = self.ap_deltas.dropna(subset=["ap_a", "ap_b"]).sort_values("label")
        return {"compare_ap.png": recall_bars_png(counted, self.legend_a, self.legend_b, metric="ap")}


def run_scores(run_dir: Path) -> pd.DataFrame:
    """A finished tagging run's scores.parquet: item_id, true_label (the set joined by "|"), logit:<class>."""
    try:
        scores = pd.read_parquet(run_dir / "scores.parquet")
    except (OSError, ValueError) as error:
        raise UserError(f"{run_dir} is not a finished zsa-eval tagging run (scores.parquet): {error}; pass the "
                        "directories of two multi-label runs") from error
    return scores


def tagging_metrics(y_true: np.ndarray, logits: np.ndarray, counts: np.ndarray) -> tuple[dict, dict]:
    """mAP, mAUC and LRAP of one run on the common clips, and the same on every paired resample (`counts`: each
    clip's draws per resample, the same for both runs)."""
    per_class = per_class_table(y_true, logits, [str(column) for column in range(y_true.shape[1])])
    point = {"map": quiet_nanmean(per_class["ap"].to_numpy()), "mauc": quiet_nanmean(per_class["auc"].to_numpy()),
             "lrap": label_ranking_average_precision_score(y_true, logits)}
    map_samples, mauc_samples = resampled_class_means(y_true, logits, per_class, counts)
    samples = {"map": map_samples, "mauc": mauc_samples,
               "lrap": ranking_precisions(y_true, logits) @ counts / len(y_true)}
    return point, samples


def compare_tagging(run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                    seed: int) -> TaggingComparison:
    """Run B against run A on the clips both evaluated: mAP, mAUC and LRAP with paired bootstrap deltas (refused
    when the class sets or a common clip's labels differ)."""
    classes = list(metrics_a["labels"])
    if set(classes) != set(metrics_b["labels"]):
        raise UserError(f"the runs use different class sets; compare runs of the same classes ({run_a}, {run_b})")
    scores_a, scores_b = run_scores(run_a), run_scores(run_b)
    both = paired_items(scores_a, scores_b, run_a, run_b, "clips", "other labels")
    y_true = label_matrix([labels.split(LABEL_SET_SEPARATOR) if labels else [] for labels in both["true_label_a"]],
                          classes)
    logits = {run: both[[f"logit:{name}_{run}" for name in classes]].to_numpy(dtype=np.float64) for run in "ab"}
    counts = resample_counts(len(both), resamples, seed)
    measured = {run: tagging_metrics(y_true, logits[run], counts) for run in "ab"}
    point = {run: measured[run][0] for run in "ab"}
    samples = {run: measured[run][1] for run in "ab"}
    ap = {run: per_class_table(y_true, logits[run], classes)["ap"].to_numpy() for run in "ab"}
    ap_deltas = pd.DataFrame({"label": classes, "support": y_true.sum(axis=0), "ap_a": ap["a"], "ap_b": ap["b"],
                              "delta": ap["b"] - ap["a"]})
    ap_deltas = largest_first(ap_deltas, "delta")
    return TaggingComparison(
        str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b),
        len(scores_a), len(scores_b), len(both), "clips", paired_deltas(point, samples, list(COMPARED_METRICS)),
        bootstrap_record(resamples, seed), ap_deltas=ap_deltas)
