"""What the probes share (zsa_eval.tasks.linear_probe, zsa_eval.tasks.few_shot): instead of scoring clips against
prompts, a classifier is trained on some clips' audio embeddings and tested on others.

- **Same embeddings, same cache.** Every clip's audio embedding comes through the engine and the audio-embedding
  cache that zero-shot runs use (a probe after a zero-shot run of the same model and clips encodes nothing), kept
  until every clip is done, then pooled to one vector per clip by the family (`clip_embedding`: frame-level models
  average their frames).
- **Test items** (zsa_eval.tasks.splits): each of the dataset's official folds in turn, the classifier trained on the
  other folds; a dataset without folds is split once, seeded and stratified by class (`protocol.split_fraction` of
  each class tested), each recording's clips on one side.
- **No leakage**: a clip id on both sides of a test fold is refused in one line, before anything is embedded.
- **Training**: scikit-learn on the CPU, on rank 0 only (the other processes of a data-parallel run only embed),
  single-threaded: deterministic for a seed, and on shared cores far faster than BLAS threads waiting on each
  other (measured: 16x for ESC-50-sized logistic regressions on 2 cores at load average 8).

The probes' runs keep their dataset's task (`classification`, `multilabel`): the same metrics, tables, leaderboard
declarations and `compare` as zero-shot runs, so a probe run and a zero-shot run pair on their common test items.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from zsa_eval.data import AudioDataset, candidate_labels
from zsa_eval.errors import UserError
from zsa_eval.models import LoadedModel
from zsa_eval.store.embeddings import EMBEDDINGS_DIR
from zsa_eval.tasks import Evaluated, LoggedBatch, RunContext, Task, embedding_batches, skipped_note, timing_note
from zsa_eval.results import MetricSpec, Mistakes, TaskResults
from zsa_eval.text import counted
from zsa_eval.tasks.labels import classes_without_items
from zsa_eval.tasks.splits import Sides, probe_sides, recordings_across_folds

NOT_IN_IDENTITY = ("folder",)  # protocol keys that do not change results
Score = Callable[[Pipeline, np.ndarray, np.ndarray], float]  # a fitted probe, held-out features and targets -> score


@torch.inference_mode()
def standardized_logistic_regression(c: float, max_iter: int, seed: int, one_vs_rest: bool = False) -> Pipeline:
    """Logistic regression (lbfgs, L2, inverse strength `c`; one binary classifier per class with `one_vs_rest`)
    on features standardized with the training clips' means and deviations."""
    regression = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(regression) if one_vs_rest else regression)


def regularization_parameter(model: Pipeline) -> str:
    """The name of a probe pipeline's C (its logistic regression's, or the one every one-vs-rest copy takes)."""
    step = model.steps[-1][0]
    return f"{step}__estimator__C" if step == "onevsrestclassifier" else f"{step}__C"


def chosen_c(model: Pipeline, features: np.ndarray, targets: np.ndarray, c_grid: Sequence[float], splits: list,
             score: Score) -> float:
    """The C of `c_grid` whose fits on the inner `splits`' training clips `score` best on average on their held-out
    clips (ties: the smaller C). Within a split the Cs are fitted in ascending order, each fit starting from the
    previous one's weights (warm start: the same optimum in fewer iterations)."""
    grid = sorted(c_grid)
    totals = np.zeros(len(grid))
    parameter = regularization_parameter(model)
    for train, held_out in splits:
        path = clone(model).set_params(**{parameter.replace("__C", "__warm_start"): True})
        for index, c in enumerate(grid):
            path.set_params(**{parameter: c}).fit(features[train], targets[train])
            totals[index] += score(path, features[held_out], targets[held_out])
    return float(grid[int(np.argmax(totals))])


def fit_with_chosen_c(model: Pipeline, features: np.ndarray, targets: np.ndarray, c_grid: Sequence[float],
                      splits: list, score: Score) -> tuple[Pipeline, float]:
    """`model` fitted on every training clip with the C that `chosen_c` picks (a single C is used as it is)."""
    c = float(c_grid[0]) if len(c_grid) == 1 else chosen_c(model, features, targets, c_grid, splits, score)
    return clone(model).set_params(**{regularization_parameter(model): c}).fit(features, targets), c


class Training:
    """Fitting in one place: single-threaded (see the module), scikit-learn's convergence warnings counted (a
    summary warning tells how many fits stopped at protocol.max_iter) and its other warnings (a class missing from
    an inner fold) kept quiet."""

    def __init__(self):
        self.fits = 0
        self.not_converged = 0
        self.untrained: dict[str, list] = {}  # a class without a training clip -> the test folds it was unseen in

    def __call__(self, fit: Callable, *args):
        with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fit(*args)
        self.fits += 1
        self.not_converged += any(issubclass(warning.category, ConvergenceWarning) for warning in caught)
        return result

    def note_untrained(self, fold, targets: np.ndarray, class_names: list[str]) -> None:
        """Record the classes of which a training side holds no clip (labels, or label-set columns): the probe
        learns nothing of them, and a multi-label one still ranks its test clips for them (by a constant)."""
        present = (targets.any(axis=0) if targets.ndim == 2
                   else np.isin(np.arange(len(class_names)), targets))
        for index in np.flatnonzero(~present):
            self.untrained.setdefault(class_names[index], []).append(fold)

    def warn(self, max_iter: int) -> None:
        if self.not_converged:
            print(f"zsa-eval: warning: logistic regression stopped at protocol.max_iter={max_iter} before converging "
                  f"in {self.not_converged} of {self.fits} trainings; raise protocol.max_iter", file=sys.stderr)
        if self.untrained:
            shown = ", ".join(f"{name!r} (test fold {', '.join(map(str, folds))})"
                              for name, folds in list(self.untrained.items())[:5])
            print(f"zsa-eval: warning: {len(self.untrained)} class(es) had no training clip where they were tested: "
                  f"{shown}{' ...' if len(self.untrained) > 5 else ''}; the probe learned nothing of them, and their "
                  "test clips count in the metrics (metrics.json classes_without_training_clips)", file=sys.stderr)


def class_columns(classes: np.ndarray, scores: np.ndarray, n_classes: int) -> np.ndarray:
    """A classifier's probabilities for the classes it was trained on, as columns of every class (0 for a class
    with no training clip: it is never predicted)."""
    full = np.zeros((len(scores), n_classes))
    full[:, classes] = scores
    return full


def per_fold_scores(rows: list[dict], metric: str) -> pd.DataFrame:
    """per_fold.csv of a probe: fold, n (its test clips), `metric` of the classifier tested on it, n_train, c (the
    chosen C); then rows `mean` and `std` (ddof=1) of the fold values."""
    values = pd.Series([row[metric] for row in rows], dtype=float)
    rows = rows + [{"fold": "mean", metric: values.mean()}, {"fold": "std", metric: values.std(ddof=1)}]
    return pd.DataFrame(rows, columns=["fold", "n", metric, "n_train", "c"]).astype({"n": "Int64", "n_train": "Int64"})


def fold_spread(table: pd.DataFrame, metric: str) -> dict:
    """metrics.json `per_fold`: the mean and std of the per-fold values of the main score."""
    summary = table.set_index("fold")[metric]
    std = summary["std"]
    return {"metric": metric, "mean": float(summary["mean"]), "std": None if pd.isna(std) else float(std)}


def protocol_settings(protocol: DictConfig) -> dict:
    """The protocol's result-determining settings, as the identity and metrics.json record them."""
    return {key: value for key, value in OmegaConf.to_container(protocol).items() if key not in NOT_IN_IDENTITY}


class ProbeTask(Task):
    """A protocol that trains on the kept audio embeddings. It measures as its dataset's zero-shot task
    (`measured_as`): the same name in metrics.json, metrics, declarations and comparison."""

    finished_key = "embedded"
    measured_as: Task
    stratified = True  # whether a split draws each class's share

    def __init__(self, settings: DictConfig | None = None):
        """`settings`: the run's protocol config (None for readers of finished runs: summary lines, compare)."""
        self.settings = settings

    @property
    def name(self) -> str:
        return self.measured_as.name

    @property
    def main_score(self) -> str:
        return self.measured_as.main_score

    @property
    def chance_metric(self) -> str | None:
        return self.measured_as.chance_metric

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return self.measured_as.metrics

    def shown_metrics(self, metrics: dict) -> tuple[MetricSpec, ...]:
        return self.measured_as.shown_metrics(metrics)

    def compare(self, run_a, metrics_a: dict, run_b, metrics_b: dict, resamples: int, seed: int):
        return self.measured_as.compare(run_a, metrics_a, run_b, metrics_b, resamples, seed)

    def check(self, cfg: DictConfig) -> None:
        """Probes train on embeddings, which only the embed engine gives."""
        if cfg.engine != "embed":
            raise UserError(f"protocol={cfg.protocol.name} trains on the audio embeddings, which only engine=embed "
                            "gives (the pipeline engine exposes none): use engine=embed")

    def check_model(self, cfg: DictConfig, loaded: LoadedModel) -> None:
        """An audio language model scores labels by its answers and gives no audio embedding to train on."""
        if loaded.family.kind == "scoring":
            raise UserError(f"protocol={cfg.protocol.name} trains on audio embeddings, and {loaded.family.name} "
                            "models give none (they score labels by their answers): use protocol=zeroshot with "
                            "this model, or an embedding model (model=clap, model=pe_av_small, ...) for a probe")

    def prompts(self, cfg: DictConfig) -> list[str] | None:
        """A probe embeds no label."""
        return None

    def identity(self, base: dict, cfg: DictConfig) -> dict:
        """The common identity and the protocol with its settings (no template: nothing is prompted), and the
        recordings column that keeps clips together, when the dataset names one."""
        group_column = cfg.dataset.get("group_column")
        return {**base, "protocol": protocol_settings(cfg.protocol),
                **({"group_column": group_column} if group_column else {})}

    def sides(self, dataset: AudioDataset) -> Sides:
        return probe_sides(dataset, self.settings, self.stratified)

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """The test items can be made and no clip id is on both sides of a test fold; classes without clips are a
        warning (a probe cannot learn them)."""
        sides = self.sides(dataset)
        item_ids = dataset.items["item_id"].to_numpy(dtype=object)
        for fold in sides.folds:
            sides.masks(fold, sides.test_fold, item_ids)
        warnings = recordings_across_folds(dataset.items) if dataset.has_folds and self.trains_on_clips else []
        untested = sides.record.get("classes_not_tested")
        if untested:
            warnings.append(f"the seeded split, keeping recordings whole, tests no clip of {counted(len(untested), 'class')} "
                            f"({', '.join(map(repr, untested[:5]))}{', ...' if len(untested) > 5 else ''}): they have "
                            "too few recordings; their recall is missing from the metrics (another protocol.seed or "
                            "protocol.split_fraction may test them; metrics.json split.classes_not_tested)")
        empty = classes_without_items(dataset)
        if empty:
            warnings.append(f"{len(empty)} of the {counted(len(dataset.class_names), 'candidate class')} "
                            f"{'has' if len(empty) == 1 else 'have'} no clips in this selection "
                            f"({', '.join(map(repr, empty[:5]))}{', ...' if len(empty) > 5 else ''}): no probe learns "
                            "them, so they are never predicted (metrics.json: classes_without_items)")
        return warnings

    @property
    def trains_on_clips(self) -> bool:
        """Whether a classifier is fitted on the clips' embeddings (a recording heard in training can leak)."""
        return True

    def keeps_embeddings(self, cfg: DictConfig) -> bool:
        return True

    def batches(self, context: RunContext, positions: list[int]) -> Iterator[LoggedBatch]:
        """Each clip's audio embedding, kept for training at the end."""
        return embedding_batches(context, positions, self.finished_key)

    def run_fields(self, context: RunContext, sides: Sides, tested: np.ndarray) -> dict:
        """metrics.json's account of a probe run: the protocol, its settings and split, the classes, what the
        scores are."""
        dataset, cfg = context.dataset, context.cfg
        return {
            "protocol": cfg.protocol.name,
            "protocol_settings": protocol_settings(cfg.protocol),
            "split": sides.record,
            "n_tested": int(tested.sum()),
            "n_classes": len(dataset.class_names),
            "metrics_cover": "the evaluated items on the test side (skipped items are listed in errors.csv)",
            "n_excluded": len(dataset.excluded),
            "classes_without_items": classes_without_items(dataset),
            "template": None,
            "labels": dataset.class_names,
            "candidate_labels": candidate_labels(dataset.class_names),
        }

    def kept_files(self, context: RunContext, evaluated: Evaluated, features: np.ndarray) -> TaskResults:
        """What every probe run writes besides its results: excluded.csv and, with save_embeddings, the pooled
        audio embeddings (embeddings/audio.npy + audio_items.csv)."""
        tables = {"excluded": context.dataset.excluded}
        if not context.cfg.save_embeddings:
            return TaskResults({}, tables)
        items = evaluated.items[["item_id", "label"]].rename(columns={"label": "true_label"})
        return TaskResults({}, tables | {f"{EMBEDDINGS_DIR}/audio_items": items},
                           arrays={f"{EMBEDDINGS_DIR}/audio.npy": features.astype(np.float32)})

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes | None:
        """The tested clips' mistakes as the task the probe measures as names them (few-shot: those of the draw that
        predictions.csv holds), said to be a probe's."""
        found = self.measured_as.mistakes(context, evaluated, results)
        if found is None:
            return None
        drawn = results.metrics.get("predictions_from")
        return Mistakes(f"{found.description} The probe's predictions of its {len(results.tables['predictions'])} "
                        f"tested clips{f' ({drawn})' if drawn else ''}.", found.items)

    def protocol_label(self, metrics: dict) -> str:
        """The protocol and its defining settings in a few words (the leaderboard's `protocol` column)."""
        return metrics["protocol"]

    def declaration(self, metrics: dict) -> dict:
        return super().declaration(metrics) | {"protocol_label": self.protocol_label(metrics)}

    def headline(self, metrics: dict) -> str:
        """The run's main figures, for the summary line."""
        return self.measured_as.headline(metrics)

    def summary_line(self, metrics: dict, wall_s: float) -> str:
        return (f"{metrics['dataset']} | {metrics['model']} | {metrics['protocol_label']} on "
                f"{metrics['split']['description']}: {self.headline(metrics)}, tested on {metrics['n_tested']} of "
                f"{counted(metrics['n_evaluated'], 'clip')} ({metrics['n_items']} selected){skipped_note(metrics)}"
                f"{timing_note(metrics, wall_s, 'embedding')}")
