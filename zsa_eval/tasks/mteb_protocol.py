"""protocol=mteb: mteb's own evaluation of the dataset's kind (zsa_eval.tasks.mteb_kinds) run on zsa-eval's
embeddings, so that its figures are mteb's, exactly, beside zsa-eval's own protocols on the same embeddings.

- **Embeddings**: every clip's audio embedding comes through the engine and the audio-embedding cache, as for the
  probes (a protocol=mteb run after a zero-shot or probe run of the same model and clips encodes nothing), pooled to
  one vector per clip by the family (`clip_embedding`).
- **mteb runs itself**: the mteb task is built (`mteb.get_task`, or one built for a local dataset), its dataset is
  injected from the evaluated items instead of downloaded, and `mteb.evaluate` runs it with a model that answers
  with those embeddings (mteb_kinds.EmbeddingLookup) and embeds the texts mteb asks for with the family.
- **Which mteb task**: `protocol.mteb_task`; else, of the kind `protocol.kind` (null: the dataset's natural kind:
  classification -> the probe, multilabel, retrieval -> t2a), the task dataset=mteb loaded, or the one the dataset
  config's `mteb_tasks` names for that kind, or one built for the dataset.
- **Recorded**: metrics.json `mteb_scores` is mteb's own result (TaskResult.scores: per split, per subset, every
  score under its mteb name, scores_per_experiment included), `mteb_main_score` names mteb's main score, and each
  scalar score is also at `mteb_<name>` (what the leaderboard shows; no intervals: mteb gives none)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from omegaconf import DictConfig
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from zsa_eval.data import AudioDataset
from zsa_eval.engine import caption_embeddings
from zsa_eval.errors import TaskUnavailable, UserError
from zsa_eval.families.mteb_model import mteb_similarity
from zsa_eval.integrations import import_mteb
from zsa_eval.models import LoadedModel
from zsa_eval.results import MetricSpec, TaskResults
from zsa_eval.store.embeddings import EMBEDDINGS_DIR
from zsa_eval.tasks import Evaluated, RunContext, Task, check_text_tower, clip_features, skipped_note, timing_note
from zsa_eval.tasks.mteb_compare import compare_protocols
from zsa_eval.tasks.mteb_kinds import (DEFAULT_SUBSET, KINDS, NATURAL_KIND, Kind, built_task, kind_of,
                                      lookup_model)
from zsa_eval.tasks.probing import ProbeTask, protocol_settings
from zsa_eval.text import counted

FEATURE = "protocol=mteb"
EVALUATOR_SETTINGS = ("is_cross_validation", "n_splits", "n_experiments", "samples_per_label", "train_split",
                      "k_values", "max_eval_samples", "seed")


def named_task(mteb: Any, name: str, setting: str) -> Any:
    """mteb's task `name` (a fresh instance: its random state is the task's own), one line when mteb has none."""
    try:
        return mteb.get_task(name)
    except (KeyError, ValueError) as error:
        raise UserError(f"{setting}={name} is not an mteb {mteb.__version__} task ({error}): name one, e.g. "
                        "ESC50, ESC50_Zeroshot, FSD50K, AudioCapsT2ARetrieval") from None


def task_kind(mteb_task: Any, setting: str) -> Kind:
    """The kind of a named mteb task, one line for a kind zsa-eval does not evaluate."""
    kind = kind_of(mteb_task)
    if kind is None:
        raise UserError(f"{setting}={mteb_task.metadata.name} is an mteb {mteb_task.metadata.type} task "
                        f"({mteb_task.metadata.category}), which protocol=mteb does not evaluate: it evaluates "
                        f"{', '.join(KINDS)}")
    return kind


def chosen_task(cfg: DictConfig, mteb: Any) -> tuple[Kind, str | None]:
    """The kind protocol=mteb evaluates and the mteb task it names (None: one is built for the dataset); one line
    when the dataset cannot give that kind."""
    protocol, dataset = cfg.protocol, cfg.dataset
    dataset_task = dataset.get("task", "classification")
    own = dataset.get("task_name")  # dataset=mteb's task
    if protocol.mteb_task:
        kind, name = task_kind(named_task(mteb, protocol.mteb_task, "protocol.mteb_task"), "protocol.mteb_task"), \
            protocol.mteb_task
    else:
        mapped = dict(dataset.get("mteb_tasks") or {})
        if own:
            mapped[task_kind(named_task(mteb, own, "dataset.task_name"), "dataset.task_name").name] = own
        kind_name = protocol.kind or (kind_of(mteb.get_task(own)).name if own else NATURAL_KIND.get(dataset_task))
        if kind_name not in KINDS:
            raise UserError(f"protocol.kind={kind_name} is not a kind protocol=mteb evaluates: choose one of "
                            f"{', '.join(KINDS)}")
        kind, name = KINDS[kind_name], mapped.get(kind_name)
    if dataset_task not in kind.dataset_tasks:
        what = f"mteb's {name}" if name else f"protocol.kind={kind.name}"
        fitting = [other for other, candidate in KINDS.items() if dataset_task in candidate.dataset_tasks]
        raise UserError(f"{what} is an mteb {kind.name} evaluation, which dataset={dataset.name} (a {dataset_task} "
                        f"dataset) cannot give: choose an mteb task of kind {', '.join(fitting) or '(none)'} "
                        "(protocol.mteb_task=NAME, or protocol.kind)")
    return kind, name


def finite(value: Any) -> Any:
    """mteb's scores with NaN (a score mteb leaves undefined, e.g. AP of a multi-class task) as None (JSON null)."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value.item() if isinstance(value, np.generic) else value


def scalar_scores(scores: dict) -> dict[str, float]:
    """The numeric scores of one mteb result entry (one split and subset), by name."""
    return {name: value for name, value in scores.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and name != "main_score"}


def evaluator_settings(task: Any) -> dict:
    """mteb's evaluator: its abstract task class and the settings of it that make its figures (those the task has;
    a cross-validated one draws no `n_experiments`), its classifier with every parameter."""
    settings = {name: finite(list(value) if name == "k_values" else value) for name in EVALUATOR_SETTINGS
                if (value := getattr(task, name, None)) is not None}
    if settings.get("is_cross_validation"):
        settings.pop("n_experiments")
    model = getattr(task, "evaluator_model", None)
    if model is not None:
        settings["evaluator_model"] = {"class": type(model).__name__, **{
            name: value if value is None or isinstance(value, bool | int | float | str) else repr(value)
            for name, value in model.get_params(deep=False).items()}}
    abstract = next(cls.__name__ for cls in type(task).__mro__ if cls.__name__.startswith("AbsTask"))
    return {"class": abstract, **settings}


def cutoff(score: str) -> int:
    """The k of a score at k (`hit_rate_at_5`: 5), 0 for another score."""
    _, at, k = score.rpartition("_at_")
    return int(k) if at and k.isdigit() else 0


def evaluated_by_mteb(mteb: Any, model: Any, task: Any, encode_kwargs: dict) -> Any:
    """mteb.evaluate of `task` with `model` (no result cache): its TaskResult. mteb failing on these clips (e.g. a
    cross-validation fold whose test clips hold two classes other than 0 and 1: its binary AP refuses them) is one
    line; debug=true shows its traceback."""
    try:
        return mteb.evaluate(model, task, cache=None, overwrite_strategy="always", co2_tracker=False,
                             show_progress_bar=False, encode_kwargs=encode_kwargs).task_results[0]
    except Exception as error:  # mteb's own failure, on data zsa-eval evaluates with its other protocols
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(f"mteb {mteb.__version__}'s {task.metadata.name} evaluator failed on these clips: "
                        f"{type(error).__name__}: {message} (mteb's own error; more clips or classes may avoid it, "
                        "debug=true shows where)") from error


def evaluator_description(evaluator: dict, version: str) -> str:
    """What mteb's evaluator did, in a sentence (report.html's protocol)."""
    model = evaluator.get("evaluator_model")
    classifier = f"; {model['class']}(max_iter={model.get('max_iter')}) on the raw embeddings" \
        if model and "max_iter" in model else (f"; {model['class']}" if model else "")
    if evaluator.get("is_cross_validation"):
        sides = (f": {evaluator['n_splits']} shuffled KFold splits (seed {evaluator['seed']}) of every clip, "
                 f"{evaluator['samples_per_label']} clips per label drawn for training in each")
    elif "n_experiments" in evaluator:
        sides = (f": {evaluator['n_experiments']} draws of {evaluator['samples_per_label']} clips per label from "
                 f"its {evaluator.get('train_split')!r} split")
    else:
        sides = ""
    return (f"mteb {version}'s own {evaluator['class']} evaluator, run by mteb on the clips' embeddings"
            f"{sides}{classifier}")


def subsets_dataset(kind: Kind, task: Any, items, class_names: list[str]) -> dict:
    """`task.dataset` of the items, one subset per `hf_subset` of theirs (dataset=mteb's items of a task with
    several, e.g. FSD2019Kaggle's curated and noisy, which mteb evaluates apart), else the default one."""
    if "hf_subset" not in items or items["hf_subset"].nunique() < 2:
        return kind.build(task, items, class_names)
    return {subset: kind.build(task, items[items["hf_subset"] == subset], class_names)[DEFAULT_SUBSET]
            for subset in dict.fromkeys(items["hf_subset"])}


def recorded(mteb: Any, task: Any, kind: Kind, result: Any) -> dict:
    """metrics.json's account of mteb's result: the task, its evaluator, its main score's name and value, its
    scores whole (`mteb_scores`) and each scalar one at `mteb_<name>` (`mteb_metrics`: their names, main first;
    `mteb_headline`: those leaderboard.md shows)."""
    scores = finite(result.scores)
    entries = [entry for split in scores.values() for entry in split]
    named = scalar_scores(entries[0]) if len(entries) == 1 else {}
    main, evaluator = task.metadata.main_score, evaluator_settings(task)
    return {
        "mteb_task": task.metadata.name,
        "mteb_kind": kind.name,
        "mteb_version": mteb.__version__,
        "mteb_evaluator": evaluator,
        "protocol_description": evaluator_description(evaluator, mteb.__version__),
        "intervals": "none: mteb gives no interval (its score of each split or experiment is in mteb_scores)",
        "mteb_main_score": main,
        "mteb_scores": scores,
        "mteb_metrics": [main, *(name for name in named if name != main)],
        "mteb_headline": [main, *(name for name in kind.scores(task)
                                  if name in named and name != main and cutoff(name) <= 10)],
        **{f"mteb_{name}": value for name, value in named.items()},
        f"mteb_{main}": finite(result.get_score()),
    }


class MtebTask(ProbeTask):
    """mteb's evaluation of a dataset's kind on the kept audio embeddings; its metrics.json keeps the dataset's
    task name (`measured_as`), and declares mteb's scores (their names and main score come from the run)."""

    def __init__(self, measured_as: Task, settings: DictConfig | None = None):
        super().__init__(settings)
        self.measured_as = measured_as
        self.choice: tuple[Kind, str | None] | None = None

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """Before a run (once `check` chose the kind): every scalar score the chosen mteb evaluator gives, its main
        score first (what a dataset's published mteb figures may name); none for a finished run's reader."""
        if self.choice is None:
            return ()
        kind, name = self.choice
        task = import_mteb(FEATURE).get_task(name or kind.template)
        names = [task.metadata.main_score, *kind.scores(task)]
        return tuple(MetricSpec(f"mteb_{score}", f"{score} (mteb)", interval=False) for score in dict.fromkeys(names))

    def shown_metrics(self, metrics: dict) -> tuple[MetricSpec, ...]:
        """Every scalar mteb score of the run; leaderboard.md shows its main score and those the evaluator's
        result type names (retrieval: at k up to 10), the CSV and JSON all."""
        headline = set(metrics.get("mteb_headline", metrics["mteb_metrics"]))
        return tuple(MetricSpec(f"mteb_{name}", f"{name} (mteb)", interval=False, shown=name in headline)
                     for name in metrics["mteb_metrics"])

    def declaration(self, metrics: dict) -> dict:
        return {"main_score": f"mteb_{metrics['mteb_main_score']}", "chance_metric": None,
                "leaderboard_metrics": [spec.declared() for spec in self.shown_metrics(metrics)],
                "protocol_label": self.protocol_label(metrics)}

    def protocol_label(self, metrics: dict) -> str:
        return f"mteb {metrics['mteb_task']}"

    def check(self, cfg: DictConfig) -> None:
        """mteb is installed, the engine gives embeddings, and the dataset can give the chosen kind."""
        super().check(cfg)
        self.choice = chosen_task(cfg, import_mteb(FEATURE))

    def check_model(self, cfg: DictConfig, loaded: LoadedModel) -> None:
        """A kind that compares audio with text needs the family's text tower; without one the task is unavailable
        to the model (as mteb leaves out a task of modalities the model lacks: suite=maeb skips its job)."""
        super().check_model(cfg, loaded)
        kind, name = self.choice
        if kind.compares_text:
            try:
                check_text_tower(loaded, f"protocol=mteb ({name or kind.name}, mteb's {kind.name} evaluation)")
            except UserError as refusal:
                raise TaskUnavailable(str(refusal)) from None

    def mteb_task(self, dataset: AudioDataset, items) -> Any:
        """A fresh mteb task (its random state untouched) of the chosen kind, its dataset built from `items`."""
        mteb = import_mteb(FEATURE)
        kind, name = self.choice
        task = (named_task(mteb, name, "protocol.mteb_task") if name
                else built_task(mteb, kind, dataset.name, items, dataset.class_names))
        task.dataset = subsets_dataset(kind, task, items, dataset.class_names)
        task.hf_subsets = list(task.dataset)
        task.data_loaded = True
        return task

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """The dataset's task accepts the items (pairs, queries, classes), and they make the mteb task's dataset (its
        splits, its candidate labels); a cross-validated probe on a dataset with official folds is said to ignore
        them."""
        warnings = self.measured_as.check_dataset(dataset)
        task = self.mteb_task(dataset, dataset.items)
        if getattr(task, "is_cross_validation", False) and dataset.has_folds:
            warnings.append(f"mteb's {task.metadata.name} cross-validates over {task.n_splits} shuffled KFold splits "
                            f"(seed {task.seed}) of every clip, ignoring the dataset's official folds: clips of one "
                            "recording can be on both sides (protocol=linear_probe tests each official fold)")
        return warnings

    def identity(self, base: dict, cfg: DictConfig) -> dict:
        """The probe identity, with the mteb task chosen and mteb's version."""
        kind, name = self.choice
        return super().identity(base, cfg) | {"mteb_task": name or f"{cfg.dataset.name}:{kind.name}",
                                              "mteb_version": import_mteb(FEATURE).__version__}

    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """mteb.evaluate on the evaluated items' embeddings; mteb's result recorded whole."""
        mteb = import_mteb(FEATURE)
        cfg, loaded, kind = context.cfg, context.loaded, self.choice[0]
        task = self.mteb_task(context.dataset, evaluated.items)
        features = clip_features(loaded.family, evaluated.audio).astype(np.float32)
        similarity = mteb_similarity(loaded.family) if cfg.protocol.similarity == "auto" else cfg.protocol.similarity
        model = lookup_model(dict(zip(evaluated.items["item_id"], features)),
                             lambda texts: caption_embeddings(loaded, texts, cfg.batch_size).float().cpu().numpy(),
                             str(cfg.model.name), similarity, kind.compares_text)
        with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluated_by_mteb(mteb, model, task, {"batch_size": cfg.batch_size,
                                                           "show_progress_bar": context.progress})
        metrics = recorded(mteb, task, kind, result) | {
            "protocol": "mteb",
            "protocol_settings": protocol_settings(cfg.protocol),
            "mteb_task_built": self.choice[1] is None,
            "split": {"kind": "mteb", "description": f"mteb {task.metadata.name}'s own splits"},
            "n_tested": len(evaluated.items),
            "n_classes": len(context.dataset.class_names),
            "labels": context.dataset.class_names,
            "similarity": f"mteb's {similarity} similarity of the family's embeddings",
            "not_converged_fits": sum(issubclass(warning.category, ConvergenceWarning) for warning in caught),
            "template": None,
        }
        kept = self.kept_files(context, evaluated, features)
        return TaskResults(metrics, kept.tables, arrays=kept.arrays)

    def kept_files(self, context: RunContext, evaluated: Evaluated, features: np.ndarray) -> TaskResults:
        """excluded.csv and, with save_embeddings, the pooled audio embeddings mteb was given (embeddings/audio.npy
        + audio_items.csv: item_id, path, and a classification item's label)."""
        tables = {"excluded": context.dataset.excluded}
        if not context.cfg.save_embeddings:
            return TaskResults({}, tables)
        columns = ["item_id", "path", *(["label"] if self.measured_as.name == "classification" else [])]
        return TaskResults({}, tables | {f"{EMBEDDINGS_DIR}/audio_items": evaluated.items[columns]},
                           arrays={f"{EMBEDDINGS_DIR}/audio.npy": features})

    def compare(self, run_a, metrics_a: dict, run_b, metrics_b: dict, resamples: int, seed: int):
        """By their figures, each mteb score beside the zsa-eval metric measuring the same, and why they differ."""
        return compare_protocols(run_a, metrics_a, run_b, metrics_b, resamples, seed)

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> None:
        """mteb keeps its predictions to itself: nothing to play."""
        return None

    def summary_line(self, metrics: dict, wall_s: float) -> str:
        main = metrics["mteb_main_score"]
        others = ", ".join(f"{name} {metrics[f'mteb_{name}']:.4f}" for name in metrics["mteb_metrics"][1:4]
                           if metrics.get(f"mteb_{name}") is not None)
        return (f"{metrics['dataset']} | {metrics['model']} | mteb {metrics['mteb_task']} "
                f"({metrics['mteb_evaluator']['class']}, mteb {metrics['mteb_version']}): {main} "
                f"{metrics[f'mteb_{main}']:.4f}{f' ({others})' if others else ''} on "
                f"{counted(metrics['n_tested'], 'clip')} of {metrics['n_items']}{skipped_note(metrics)}"
                f"{timing_note(metrics, wall_s, 'embedding')}")
