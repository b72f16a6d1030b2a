"""Linear probe (protocol=linear_probe): for each test fold (each official fold in turn, or the test side of a
seeded split), logistic regression on the standardized clip embeddings of the other folds predicts the clips of
that fold. Its regularization C is chosen from `protocol.c_grid` by cross-validation inside the training folds
only (whole official folds kept together; see zsa_eval.tasks.probing.inner_splits), then refitted on all of them.
Every test clip is predicted once, by the classifier of its fold, and the predictions are measured as a zero-shot
run's: accuracy and its kin with bootstrap intervals (single-label), or mAP and its kin from a one-vs-rest probe's
logits (multi-label); per_fold.csv adds each fold's score, training size and chosen C."""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy.special import expit
from sklearn.pipeline import Pipeline

from zsa_eval.errors import UserError
from zsa_eval.tasks import Evaluated, RunContext, classification, clip_features, tagging
from zsa_eval.results import TaskResults
from zsa_eval.tasks.classification import class_indices, classification_results
from zsa_eval.tasks.labels import scores_table
from zsa_eval.tasks.probing import (ProbeTask, Training, class_columns, fit_with_chosen_c, fold_spread,
                                    per_fold_scores, standardized_logistic_regression)
from zsa_eval.tasks.splits import Sides, inner_splits, probe_sides, recordings, test_fold_name
from zsa_eval.tasks.tagging import label_matrix, per_class_table, quiet_nanmean, tagging_results


class LinearProbeTask(ProbeTask):
    """Single-label: multinomial logistic regression; its class probabilities are the run's scores."""

    measured_as = classification.TASK
    score_kind = "softmax"
    score_description = ("the probe's logistic-regression class probabilities (softmax over the classes it was "
                         "trained on)")

    def targets(self, items: pd.DataFrame, class_names: list[str]) -> np.ndarray:
        return class_indices(items, class_names)

    def model(self, protocol: DictConfig) -> Pipeline:
        return standardized_logistic_regression(protocol.c_grid[0], protocol.max_iter, protocol.seed)

    def score(self, model: Pipeline, features: np.ndarray, targets: np.ndarray) -> float:
        """What the inner cross-validation maximizes: accuracy."""
        return float((model.predict(features) == targets).mean())

    def test_scores(self, model: Pipeline, features: np.ndarray, n_classes: int) -> np.ndarray:
        """A trained classifier's scores of test clips, a column per class."""
        return class_columns(model.classes_, model.predict_proba(features), n_classes)

    def fold_value(self, targets: np.ndarray, scores: np.ndarray) -> float:
        """The main score of one test fold's clips."""
        return float((scores.argmax(axis=1) == targets).mean())

    def measure(self, items: pd.DataFrame, class_names: list[str], scores: np.ndarray, seed: int) -> TaskResults:
        """The test clips measured as a zero-shot run's, and the full score matrix (scores.parquet)."""
        measured = classification_results(items, class_names, scores, self.score_kind, None, seed)
        table = scores_table(items, class_names, self.score_kind, scores, None)
        return TaskResults(measured.metrics, measured.tables, measured.figures, parquet={"scores.parquet": table})

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """Train per test fold, predict its clips, measure every test clip; per_fold.csv and the chosen Cs."""
        cfg, class_names = context.cfg, context.dataset.class_names
        sides = probe_sides(context.dataset, cfg.protocol, self.stratified)
        test_fold = sides.test_fold[evaluated.positions]
        features = clip_features(context.loaded.family, evaluated.audio)
        training = Training()
        scores, rows = self.probe(features, self.targets(evaluated.items, class_names), class_names, test_fold,
                                  sides, evaluated.items, cfg.protocol, training)
        training.warn(cfg.protocol.max_iter)
        tested = pd.notna(test_fold)
        measured = self.measure(evaluated.items[tested].reset_index(drop=True), class_names, scores[tested], cfg.seed)
        per_fold = per_fold_scores(rows, self.main_score)
        kept = self.kept_files(context, evaluated, features)
        metrics = (measured.metrics | self.run_fields(context, sides, tested)
                   | {"per_fold": fold_spread(per_fold, self.main_score), "chosen_c": [row["c"] for row in rows],
                      "classes_without_training_clips": {name: [str(fold) for fold in folds]
                                                         for name, folds in training.untrained.items()},
                      "score_kind": self.score_kind, "score_kind_description": self.score_description})
        return TaskResults(metrics, measured.tables | {"per_fold": per_fold} | kept.tables, measured.figures,
                           kept.arrays, measured.parquet)

    def probe(self, features: np.ndarray, targets: np.ndarray, class_names: list[str], test_fold: np.ndarray,
              sides: Sides, items: pd.DataFrame, protocol: DictConfig,
              training: Training) -> tuple[np.ndarray, list[dict]]:
        """Every test clip's scores from the classifier trained without its fold (training clips' rows stay 0),
        and a per_fold.csv row per fold (fold, n, main score, n_train, c); `training` notes the classes a training
        side lacks."""
        n_classes = len(class_names)
        scores = np.zeros((len(items), n_classes))
        official = items["fold"].to_numpy(dtype=object)
        recorded = recordings(items)
        rows = []
        for fold in sides.folds:
            train, test = sides.masks(fold, test_fold, items["item_id"].to_numpy(dtype=object))
            if len(np.unique(targets[train], axis=0)) < 2:
                raise UserError(f"the training side of {test_fold_name(fold)} holds clips of one class (or label set) only: "
                                "a probe needs two or more; select more classes or folds")
            training.note_untrained(fold, targets[train], class_names)
            splits = (inner_splits(targets[train], official[train], protocol.inner_folds, protocol.seed,
                                   self.stratified, None if recorded is None else recorded[train])
                      if len(protocol.c_grid) > 1 else [])
            model, c = training(fit_with_chosen_c, self.model(protocol), features[train], targets[train],
                                list(protocol.c_grid), splits, self.score)
            scores[test] = self.test_scores(model, features[test], n_classes)
            rows.append({"fold": fold, "n": int(test.sum()), self.main_score: self.fold_value(targets[test],
                                                                                               scores[test]),
                         "n_train": int(train.sum()), "c": c})
        return scores, rows

    def protocol_label(self, metrics: dict) -> str:
        return "linear_probe"


def mean_average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """mAP over the classes with a positive among `targets` (0 when none has)."""
    per_class = per_class_table(targets.astype(bool), scores, [str(column) for column in range(targets.shape[1])])
    value = quiet_nanmean(per_class["ap"].to_numpy())
    return float(value) if np.isfinite(value) else 0.0


class MultilabelProbeTask(LinearProbeTask):
    """Multi-label: one binary logistic regression per class (one-vs-rest) on the same standardized embeddings; its
    logits rank the clips, as a zero-shot tagging run's do; C maximizes the inner folds' mAP."""

    measured_as = tagging.TASK
    score_kind = "sigmoid"
    score_description = "sigmoid of the probe's one-vs-rest logistic-regression logits (each class on its own)"
    stratified = False  # label sets: a seeded split draws items, not classes

    def check(self, cfg: DictConfig) -> None:
        """There is no accuracy to gate."""
        super().check(cfg)
        if cfg.gate.min_accuracy is not None or cfg.gate.baseline is not None:
            raise UserError(f"dataset={cfg.dataset.name} is multi-label and has no accuracy for gate.min_accuracy or "
                            "gate.baseline to check; drop the gate settings")

    def targets(self, items: pd.DataFrame, class_names: list[str]) -> np.ndarray:
        return label_matrix(items["labels"], class_names).astype(np.int64)

    def model(self, protocol: DictConfig) -> Pipeline:
        return standardized_logistic_regression(protocol.c_grid[0], protocol.max_iter, protocol.seed,
                                                one_vs_rest=True)

    def score(self, model: Pipeline, features: np.ndarray, targets: np.ndarray) -> float:
        """mAP."""
        return mean_average_precision(targets, model.decision_function(features))

    def test_scores(self, model: Pipeline, features: np.ndarray, n_classes: int) -> np.ndarray:
        return model.decision_function(features)

    def fold_value(self, targets: np.ndarray, scores: np.ndarray) -> float:
        return mean_average_precision(targets, scores)

    def measure(self, items: pd.DataFrame, class_names: list[str], scores: np.ndarray, seed: int) -> TaskResults:
        """mAP and its kin of the logits, and scores.parquet with the sigmoid scores and the logits (what compare
        ranks by)."""
        measured = tagging_results(items, class_names, scores, seed, "the probe's one-vs-rest logistic-regression "
                                   "logits")
        table = scores_table(items, class_names, self.score_kind, expit(scores), scores)
        return TaskResults(measured.metrics, measured.tables, measured.figures, parquet={"scores.parquet": table})
