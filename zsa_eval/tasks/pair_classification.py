"""Pair classification (task: pair_classification): each pair of clips is a match (label 1: same speaker, same
emotion, ...) or not (0). Every pair is two item rows (columns pair_id, pair_side "1"/"2", the pair's label in
`label`). The pair is scored by its two pooled audio embeddings four ways, as mteb's PairClassificationEvaluator
scores it: cosine similarity, euclidean and manhattan distance (smaller: more alike), dot product. For each:

- `<score>_ap`: average precision of the matches ranked by the score (scikit-learn's);
- `<score>_accuracy`, `<score>_f1` (with its `_precision`, `_recall`): the best over thresholds cut between two
  different scores of the ranked pairs (never through tied scores, nor above all or below all pairs), as mteb
  defines them: chosen on the evaluated pairs themselves, so an optimistic figure;
- `max_<metric>`: the best of the four scores, mteb's `max_ap` its main score.

zsa-eval's main score is `cosine_ap`, the one similarity fixed in advance (mteb's `max_ap` picks the best of four on
the test pairs; protocol=mteb gives it as mteb does). Intervals: percentile bootstrap over pairs, centred on the
median bias (average precision's resamples are biased upward), for every AP and max_ap (each resample's maximum);
none for the threshold metrics, whose threshold is itself fitted on the pairs. A pair with a skipped clip is left
out (n_pairs_incomplete)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from zsa_eval.data import AudioDataset
from zsa_eval.errors import UserError
from zsa_eval.results import Comparison, MetricSpec, Mistake, Mistakes, TaskResults
from zsa_eval.stats import median_centred_interval
from zsa_eval.tasks import Evaluated, RunContext, clip_features, skipped_note, timing_note, worst_first
from zsa_eval.tasks.comparing import bootstrap_record, largest_first, legend, paired_deltas, paired_items, run_table
from zsa_eval.tasks.embedded import RESAMPLES, AudioEmbeddingTask, require_columns, saved_embeddings
from zsa_eval.tasks.tagging import resample_counts, resampled_ap_auc
from zsa_eval.text import counted

SIMILAR_WHEN_HIGHER = {"cosine": True, "euclidean": False, "manhattan": False, "dot": True}
THRESHOLD_METRICS = ("accuracy", "f1", "precision", "recall")
PAIR_METRICS = (*THRESHOLD_METRICS, "ap")
SIDES = ("1", "2")
SIMILARITY = ("cosine similarity of the two clips' pooled audio embeddings (and, as mteb scores pairs, euclidean and "
              "manhattan distance and dot product)")


def pair_scores(first: np.ndarray, second: np.ndarray) -> dict[str, np.ndarray]:
    """Each pair's cosine similarity, euclidean and manhattan distance and dot product (rows of `first` and
    `second` are the pairs' two embeddings)."""
    dot = np.einsum("ij,ij->i", first, second)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return {"cosine": dot / np.where(norms > 0, norms, 1.0), "euclidean": np.linalg.norm(first - second, axis=1),
            "manhattan": np.abs(first - second).sum(axis=1), "dot": dot}


def best_threshold_metrics(similar: np.ndarray, matches: np.ndarray) -> dict[str, float]:
    """Best accuracy and best F1 (with that cut's precision and recall) over the cuts between consecutive distinct
    values of `similar` (larger: more alike), pairs above a cut predicted matches; 0 where no cut exists."""
    order = np.argsort(-similar, kind="stable")
    ranked, positive = similar[order], matches[order].astype(np.float64)
    cuts = np.flatnonzero(ranked[:-1] != ranked[1:])  # a cut after position i
    above_positive = np.cumsum(positive)[cuts]
    above_negative = cuts + 1 - above_positive
    n_positive = positive.sum()
    accuracy = (above_positive + (len(positive) - n_positive - above_negative)) / len(positive)
    best = {"accuracy": float(accuracy.max()) if len(cuts) else 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    counted_cuts = above_positive > 0
    if counted_cuts.any():
        precision = above_positive[counted_cuts] / (cuts[counted_cuts] + 1)
        recall = above_positive[counted_cuts] / n_positive
        f1 = 2 * precision * recall / (precision + recall)
        top = int(np.argmax(f1))
        best |= {"f1": float(f1[top]), "precision": float(precision[top]), "recall": float(recall[top])}
    return best


def ap_interval(samples: np.ndarray, estimate: float) -> list[float] | None:
    """An AP's 95% interval from the resamples that drew a match (None when none did), centred on their median
    bias."""
    drawn = samples[np.isfinite(samples)]
    return median_centred_interval(drawn, estimate, bounds=(0.0, 1.0)) if len(drawn) else None


def pair_metrics(scores: dict[str, np.ndarray], matches: np.ndarray, resamples: int, seed: int) -> dict:
    """Every score's threshold metrics and AP, the best of each over the scores (max_*), and 95% intervals over
    pairs for the APs and max_ap."""
    counts = resample_counts(len(matches), resamples, seed)
    metrics, ap_samples = {}, []
    for name, values in scores.items():
        similar = values if SIMILAR_WHEN_HIGHER[name] else -values
        measured = best_threshold_metrics(similar, matches) | {"ap": float(average_precision_score(matches,
                                                                                                   similar))}
        metrics |= {f"{name}_{metric}": value for metric, value in measured.items()}
        samples, _ = resampled_ap_auc(matches.astype(bool), similar, counts)
        metrics[f"{name}_ap_ci95"] = ap_interval(samples, measured["ap"])
        ap_samples.append(samples)
    metrics |= {f"max_{metric}": max(metrics[f"{name}_{metric}"] for name in scores) for metric in PAIR_METRICS}
    metrics["max_ap_ci95"] = ap_interval(np.max(ap_samples, axis=0), metrics["max_ap"])
    return metrics | {"bootstrap": bootstrap_record(resamples, seed) | {"over": "pairs"}}


def complete_pairs(items: pd.DataFrame) -> pd.DataFrame:
    """One row per pair both of whose clips were evaluated, in the order of their first sides: pair_id, label,
    row_1, row_2 (the sides' rows in `items`)."""
    rows = items.reset_index(drop=True)
    side = rows["pair_side"].astype(str)
    first = pd.DataFrame({"pair_id": rows["pair_id"], "label": rows["label"].astype(str), "row_1": rows.index})
    second = pd.DataFrame({"pair_id": rows["pair_id"], "row_2": rows.index})
    return first[side == SIDES[0]].merge(second[side == SIDES[1]], on="pair_id")


def check_pairs(items: pd.DataFrame, name: str) -> None:
    """Every pair has one item of each side and one 0/1 label; item ids are unique; some pair is a match."""
    require_columns(items, ("pair_id", "pair_side"), name, "pair_classification",
                    "two item rows per pair, pair_side 1 and 2, the pair's 0/1 label in the label column")
    duplicated = items["item_id"][items["item_id"].duplicated()]
    if len(duplicated):
        raise UserError(f"dataset {name}: item id {duplicated.iloc[0]!r} is used twice; give each item of a pair its "
                        "own id")
    for pair_id, rows in items.groupby("pair_id", sort=False):
        sides = sorted(rows["pair_side"].astype(str))
        if sides != list(SIDES):
            missing = [side for side in SIDES if side not in sides]
            problem = (f"no {'first' if missing[0] == '1' else 'second'} side (pair_side {missing[0]})" if missing
                       else f"sides {', '.join(sides)}")
            raise UserError(f"pair {pair_id!r} of dataset {name} has {problem}: every pair is two items, pair_side 1 "
                            "and 2")
        labels = set(rows["label"].astype(str))
        if len(labels) != 1 or not labels <= {"0", "1"}:
            raise UserError(f"pair {pair_id!r} of dataset {name} has label(s) {', '.join(sorted(labels))}: a pair "
                            "carries one label on both items, 1 (a match) or 0")
    if not items["label"].astype(str).eq("1").any():
        raise UserError(f"dataset {name} has no matching pair (label 1): average precision ranks the matches; add "
                        "some")


class PairClassificationTask(AudioEmbeddingTask):
    name = "pair_classification"
    kind = "a pair-classification dataset"
    main_score = "cosine_ap"
    chance_metric = "chance_ap"
    metrics = (MetricSpec("cosine_ap", "cosine AP"), MetricSpec("max_ap", "max AP"),
               MetricSpec("cosine_accuracy", "cosine acc.", interval=False),
               MetricSpec("cosine_f1", "cosine F1", interval=False))

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """The pairs hold together (check_pairs); pairs of one label only are a warning."""
        check_pairs(dataset.items, dataset.name)
        if dataset.items["label"].astype(str).eq("1").all():
            return ["every pair is a match (label 1): every AP is 1 and the threshold metrics say nothing; add pairs "
                    "that do not match"]
        return []

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """Every complete pair scored four ways; the metrics, pairs.csv (each pair's scores)."""
        cfg, items = context.cfg, evaluated.items
        pairs = complete_pairs(items)
        if pairs.empty or not pairs["label"].eq("1").any():
            raise UserError(f"no matching pair has both clips evaluated ({counted(len(pairs), 'complete pair')}); see "
                            "errors.csv")
        features = clip_features(context.loaded.family, evaluated.audio)
        scores = pair_scores(features[pairs["row_1"]], features[pairs["row_2"]])
        matches = pairs["label"].eq("1").to_numpy()
        n_pairs = context.dataset.items["pair_id"].nunique()
        table = pd.DataFrame({"pair_id": pairs["pair_id"], "item_id_1": items["item_id"].to_numpy()[pairs["row_1"]],
                              "item_id_2": items["item_id"].to_numpy()[pairs["row_2"]], "label": pairs["label"],
                              **scores})
        tables, arrays = saved_embeddings(cfg, evaluated, features)
        metrics = pair_metrics(scores, matches, RESAMPLES, cfg.seed) | {
            "chance_ap": float(matches.mean()), "n_pairs": n_pairs, "n_pairs_evaluated": len(pairs),
            "n_pairs_incomplete": n_pairs - len(pairs), "n_matching_pairs": int(matches.sum()),
            "similarity": SIMILARITY, "template": None,
            "metrics_cover": "the pairs both of whose clips were evaluated (a skipped clip's pair is left out: see "
                             "errors.csv)"}
        return TaskResults(metrics, {"pairs": table} | tables, arrays=arrays)

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes:
        """The pairs ranked furthest on the wrong side by cosine similarity: matches that the most non-matches
        outrank, non-matches that outrank the most matches (as shares of the other kind)."""
        cfg, pairs = context.cfg, results.tables["pairs"]
        matches = pairs["label"].eq("1").to_numpy()
        cosine = pairs["cosine"].to_numpy()
        non_matches_not_above = np.searchsorted(np.sort(cosine[~matches]), cosine, side="right")
        matches_below = np.searchsorted(np.sort(cosine[matches]), cosine, side="left")
        wrongness = np.where(matches, 1 - non_matches_not_above / max((~matches).sum(), 1),
                             matches_below / max(matches.sum(), 1))
        ranked = pairs.assign(wrongness=wrongness, kind=np.where(matches, "match", "no match"))
        chosen = worst_first(ranked[ranked["wrongness"] > 0], "wrongness", "kind", cfg.report_mistakes_per_class,
                             cfg.report_mistakes)
        row_of = {item_id: row for row, item_id in enumerate(evaluated.items["item_id"])}
        items = [Mistake(f"pair {pair.pair_id}", (("first", evaluated.positions[row_of[pair.item_id_1]]),
                                                  ("second", evaluated.positions[row_of[pair.item_id_2]])),
                         {"label": pair.kind, "cosine": float(pair.cosine),
                          "share of the other kind ranked on its wrong side": float(pair.wrongness)})
                 for pair in chosen.itertuples(index=False)]
        return Mistakes(f"The {len(items)} pairs ranked furthest on the wrong side by cosine similarity (a match "
                        "below non-matches, a non-match above matches; at most "
                        f"{cfg.report_mistakes_per_class} of each kind, {cfg.report_mistakes} in all), worst first.",
                        items)

    def compare(self, run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                seed: int) -> PairComparison:
        return compare_pairs(run_a, metrics_a, run_b, metrics_b, resamples, seed)

    def summary_line(self, metrics: dict, wall_s: float) -> str:
        low, high = metrics["cosine_ap_ci95"]
        return (f"{metrics['dataset']} | {metrics['model']} | pair classification: cosine AP "
                f"{metrics['cosine_ap']:.4f} [{low:.4f}, {high:.4f}] (max AP {metrics['max_ap']:.4f}, cosine "
                f"accuracy {metrics['cosine_accuracy']:.4f}, F1 {metrics['cosine_f1']:.4f}; chance AP "
                f"{metrics['chance_ap']:.4f}) on {metrics['n_pairs_evaluated']} of "
                f"{counted(metrics['n_pairs'], 'pair')} ({metrics['n_matching_pairs']} matching)"
                f"{skipped_note(metrics)}{timing_note(metrics, wall_s)}")


TASK = PairClassificationTask()
COMPARED_PAIRS = 20  # compare.md lists the pairs whose cosine similarity changed most


@dataclass(frozen=True)
class PairComparison(Comparison):
    pair_changes: pd.DataFrame = None  # item_id_1, item_id_2, label, cosine_a, cosine_b, change (largest first)

    def shown_tables(self) -> list[tuple[str, pd.DataFrame]]:
        return [(f"The {min(len(self.pair_changes), COMPARED_PAIRS)} pairs whose cosine similarity changed most (all "
                 "in pair_changes.csv)", self.pair_changes.head(COMPARED_PAIRS))]

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"pair_changes": self.pair_changes}


def compare_pairs(run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int,
                  seed: int) -> PairComparison:
    """Run B against run A on the pairs both scored, matched by their two clips (a pairs file reordered still pairs
    the same clips; refused where a common pair's label differs): cosine AP and max AP, with paired bootstrap deltas
    over those pairs (each resample's AP of both runs on the same pairs; none for the threshold metrics, fitted on
    the pairs)."""
    text = ("pair_id", "item_id_1", "item_id_2", "label")
    pairs_a, pairs_b = (run_table(run, "pairs.csv", "pair_classification", text, tuple(SIMILAR_WHEN_HIGHER))
                        for run in (run_a, run_b))
    both = paired_items(pairs_a.drop(columns="pair_id"), pairs_b.drop(columns="pair_id"), run_a, run_b, "pairs",
                        "another label", key=["item_id_1", "item_id_2"], label="label")  # by clips: not by row
    both = both.rename(columns={"label_a": "label"})
    matches = both["label"].eq("1").to_numpy()
    counts = resample_counts(len(both), resamples, seed)
    point, samples = {}, {}
    for run in "ab":
        similar = {name: both[f"{name}_{run}"].to_numpy(dtype=np.float64) * (1 if higher else -1)
                   for name, higher in SIMILAR_WHEN_HIGHER.items()}
        aps = {name: float(average_precision_score(matches, values)) for name, values in similar.items()}
        resampled = {name: resampled_ap_auc(matches, values, counts)[0] for name, values in similar.items()}
        point[run] = {"cosine_ap": aps["cosine"], "max_ap": max(aps.values())}
        samples[run] = {"cosine_ap": resampled["cosine"], "max_ap": np.max(list(resampled.values()), axis=0)}
    changes = pd.DataFrame({"item_id_1": both["item_id_1"], "item_id_2": both["item_id_2"], "label": both["label"],
                            "cosine_a": both["cosine_a"], "cosine_b": both["cosine_b"],
                            "change": both["cosine_b"] - both["cosine_a"]})
    return PairComparison(
        str(run_a), str(run_b), legend("A", run_a, metrics_a), legend("B", run_b, metrics_b), len(pairs_a),
        len(pairs_b), len(both), "pairs", paired_deltas(point, samples, ["cosine_ap", "max_ap"]),
        bootstrap_record(resamples, seed), pair_changes=largest_first(changes, "change"))

