"""Tasks: what a run measures, one module each, behind this small interface (zsa_eval.tasks.registry maps a
dataset's `task` key to its task). A task says which dataset shape it needs, which texts it embeds, how each batch of clips becomes
logged outcomes, how the evaluated items become metrics with intervals, tables and figures, its summary line, and
which of its metrics a leaderboard shows (declared in every run's metrics.json, so that the report layer reads runs
without knowing their task), and which items it got most wrong (report.html plays them). Nothing outside a task module imports its internals.

- `classification` (zsa_eval.tasks.classification): one label per clip; accuracy and its kin.
- `multilabel` (zsa_eval.tasks.tagging): a label set per clip; mAP and its kin.
- `retrieval` (zsa_eval.tasks.retrieval): captions per clip; recall at k both ways.
- `clustering` (zsa_eval.tasks.clustering): one label per clip; V-measure of k-means of the audio embeddings.
- `pair_classification` (zsa_eval.tasks.pair_classification): pairs of clips, matching or not; AP of their cosine.
- `reranking` (zsa_eval.tasks.reranking): query clips rank candidate clips; MAP, MRR, nDCG.
(The last three use the audio embeddings alone, zsa_eval.tasks.embedded: an audio encoder runs them too.)

Under a probe protocol (the run's `protocol`: zsa_eval.tasks.registry picks the task from the dataset's task and
the protocol) a classification or multilabel dataset is evaluated by a classifier trained on the clips' embeddings:
- `linear_probe` (zsa_eval.tasks.linear_probe): logistic regression per official fold (one-vs-rest: multilabel).
- `few_shot` (zsa_eval.tasks.few_shot): k clips of each class, drawn again and again; three classifiers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from zsa_eval.data import Selection
from zsa_eval.engine import embed_clips
from zsa_eval.errors import UserError
from zsa_eval.families.contract import calling
from zsa_eval.results import MetricSpec, Mistakes, TaskResults
from zsa_eval.long_audio import summary_note

if TYPE_CHECKING:
    from zsa_eval.cache import EmbeddingCache
    from zsa_eval.families import Family
    from zsa_eval.data import AudioDataset
    from zsa_eval.long_audio import LongAudio
    from zsa_eval.models import LoadedModel


@dataclass(frozen=True)
class RunContext:
    """What a task works with: the checked config, the dataset (already limited), the loaded model, its
    audio-embedding cache, the prompts (tasks that embed class labels), the DataLoader's worker count, whether to
    show progress, and how long clips are heard (the engine takes it)."""

    cfg: DictConfig
    dataset: AudioDataset
    loaded: LoadedModel
    cache: EmbeddingCache | None
    prompts: list[str] | None
    num_workers: int
    progress: bool
    long_audio: LongAudio

    def item_ids(self, positions: list[int]) -> list[str]:
        ids = self.dataset.items["item_id"]
        return [ids.iat[position] for position in positions]


@dataclass
class LoggedBatch:
    """One batch's outcomes: for each finished clip (its row in the batch's positions, `rows`) the fields its
    progress-log record holds (`records`, each with the task's finished key), the clips skipped as (row, reason,
    detail), which rows came from the embedding cache, and the audio embeddings to keep (one array per finished clip,
    when the run keeps them)."""

    rows: list[int]
    records: list[dict]
    skipped: list[tuple[int, str, str]]
    cached_rows: list[int] = field(default_factory=list)
    kept_embeddings: list[np.ndarray] | None = None


def check_embedding_run(cfg: DictConfig, kind: str, compares: str, instead: str) -> None:
    """A task measured on embeddings: the embed engine gives them (the pipeline does not), there is no accuracy to
    gate, and an audio language model's one answer per clip is no embedding. `kind`: what the dataset is ("a
    retrieval dataset"); `compares`: what the task does with embeddings; `instead`: the models to use."""
    name = cfg.dataset.name
    if cfg.engine != "embed":
        raise UserError(f"dataset={name} is {kind}: it needs engine=embed (the pipeline engine exposes no embeddings)")
    if cfg.gate.min_accuracy is not None or cfg.gate.baseline is not None:
        raise UserError(f"gate.min_accuracy and gate.baseline bound a classification accuracy, which dataset={name} "
                        f"({kind}) does not have; drop them")
    if cfg.model.get("scoring") == "generate":
        raise UserError(f"dataset={name} is {kind}: it {compares}, and model.scoring=generate gives one answer per "
                        f"clip; {instead}")


def embedding_batches(context: RunContext, positions: list[int], finished_key: str) -> Iterator[LoggedBatch]:
    """Each clip's audio embedding as the family returns it (frames for frame-level models; a long clip's windows
    pooled), kept for the end: the batches of a task that works on every clip's embedding once all are done (its
    records hold `finished_key`, and how many windows the clip took)."""
    cfg, dataset = context.cfg, context.dataset
    for batch in embed_clips(context.loaded, Selection(dataset.clips, positions), context.item_ids(positions),
                             cfg.batch_size, context.num_workers, cfg.seed, context.progress, context.cache,
                             cfg.featurizer, context.long_audio):
        yield LoggedBatch(batch.indices, [{finished_key: True, **windows} for windows in batch.clip_windows],
                          batch.skipped, batch.cached_rows, [embedding.cpu().numpy() for embedding in batch.audio])


def clip_features(family: Family, audio: Sequence[np.ndarray]) -> np.ndarray:
    """One vector per clip (the family's pooled clip embedding: frames and windows pooled), float64 for
    scikit-learn."""
    with calling(family, "clip_embedding"):
        return np.stack([family.clip_embedding(torch.from_numpy(embedding)).numpy() for embedding in audio]) \
            .astype(np.float64)


def check_text_tower(loaded: LoadedModel, needs: str) -> None:
    """What compares audio with text (`needs` names it) is refused for an audio encoder, which has no text tower."""
    if loaded.family.kind == "audio_encoder":
        raise UserError(f"{needs} compares audio with text embeddings, and {loaded.family.name} models are audio "
                        "encoders with no text tower: use protocol=linear_probe, or protocol=few_shot without "
                        "text_init, with this model")


@dataclass(frozen=True)
class Evaluated:
    """The items a run evaluated: their dataset positions, their rows of the item table, their logged records, and
    (for a run that keeps them) their audio embeddings, in the same order."""

    positions: list[int]
    items: pd.DataFrame
    records: list[dict]
    audio: list[np.ndarray] | None


def skipped_note(metrics: dict) -> str:
    """The summary line's word on skipped items (nothing when none was)."""
    return f", {metrics['n_skipped']} skipped (see errors.csv)" if metrics["n_skipped"] else ""


def timing_note(metrics: dict, wall_s: float, stage: str = "scoring") -> str:
    """The end of a summary line: how long clips were heard, the wall time since the process started (imports,
    config and model load included: metrics.json's elapsed_s counts from the run's own start), the time `stage`
    took, the encoder's speed, what came from the cache and what an interrupted run had finished, and where the
    results are."""
    speed = (f"{metrics['encoded_clips_per_s']} clips/s encoded" if metrics.get("encoded_clips_per_s") is not None
             else "nothing encoded")
    resumed = f", {metrics['resumed_items']} restored from the earlier run" if metrics.get("resumed_items") else ""
    return (f"{summary_note(metrics.get('long_audio'))} in {wall_s:.1f} s ({metrics['scoring_s']:.1f} s {stage}, "
            f"{speed}, {metrics['cache_hits']} from the cache{resumed}) -> {metrics['output_dir']}")


def worst_first(table: pd.DataFrame, by: str, group: str, per_group: int, total: int) -> pd.DataFrame:
    """The rows of `table` by their `by` value, largest first (equal values in table order), at most `per_group`
    rows of one `group` value and `total` in all; rows keep their index."""
    ranked = table.sort_values(by, ascending=False, kind="stable")
    return ranked.groupby(group, sort=False).head(per_group).head(total)


class Task(ABC):
    """A kind of evaluation. Subclasses declare their names and metrics and implement the steps below."""

    name: ClassVar[str]                   # the dataset config's `task` and metrics.json's
    finished_key: ClassVar[str]           # the progress-log field of a clip it finished
    main_score: ClassVar[str]             # the metric a leaderboard ranks its runs by
    chance_metric: ClassVar[str | None] = None  # the metrics.json key of the main score's chance level
    metrics: ClassVar[tuple[MetricSpec, ...]]  # what a leaderboard shows of it, in order

    def check(self, cfg: DictConfig) -> None:
        """Refuse, in one line, settings this task cannot honour (before anything is loaded)."""

    def check_model(self, cfg: DictConfig, loaded: LoadedModel) -> None:
        """Refuse, in one line, a loaded model this task cannot evaluate (before the run directory exists)."""

    @abstractmethod
    def prompts(self, cfg: DictConfig) -> list[str] | None:
        """The prompts the run fills with class labels, checked; None for a task that embeds no label."""

    @abstractmethod
    def identity(self, base: dict, cfg: DictConfig) -> dict:
        """The run identity from the common one (model, dataset, selection, prompts, engine, precision)."""

    def check_dataset(self, dataset: AudioDataset) -> list[str]:
        """Refuse, in one line, a dataset this task cannot evaluate; return what a user should know about the
        selection before its results (warnings)."""
        return []

    @abstractmethod
    def keeps_embeddings(self, cfg: DictConfig) -> bool:
        """Whether the run stores each clip's audio embedding in its directory (resumable) for the end."""

    @abstractmethod
    def batches(self, context: RunContext, positions: list[int]) -> Iterator[LoggedBatch]:
        """Stream the clips at dataset `positions` through the engine, one LoggedBatch per batch."""

    @abstractmethod
    def results(self, context: RunContext, evaluated: Evaluated) -> TaskResults:
        """Metrics with intervals, tables, figures and arrays of the evaluated items."""

    @abstractmethod
    def summary_line(self, metrics: dict, wall_s: float) -> str:
        """A finished run in one line (`wall_s`: seconds since the process started)."""

    def mistakes(self, context: RunContext, evaluated: Evaluated, results: TaskResults) -> Mistakes | None:
        """The evaluated items the run got most wrong, worst first, at most `report_mistakes_per_class` of a class
        and `report_mistakes` in all (report.html); None for a task that has none to show."""
        return None

    def compare(self, run_a: Path, metrics_a: dict, run_b: Path, metrics_b: dict, resamples: int, seed: int):
        """Two runs of this task on the items both evaluated (zsa_eval.report.compare writes what it returns)."""
        raise UserError(f"compare cannot compare {self.name} runs yet")

    def shown_metrics(self, metrics: dict) -> tuple[MetricSpec, ...]:
        """The metrics a leaderboard shows of this run (all the task's, unless a run's own values say otherwise)."""
        return self.metrics

    def declaration(self, metrics: dict) -> dict:
        """metrics.json's account of the task for readers that do not know it (the leaderboard, compare, gates)."""
        return {"main_score": self.main_score, "chance_metric": self.chance_metric,
                "leaderboard_metrics": [spec.declared() for spec in self.shown_metrics(metrics)]}
