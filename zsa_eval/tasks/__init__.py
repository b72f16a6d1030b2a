"""Tasks: what a run measures, one module each, behind this small interface (zsa_eval.tasks.registry maps a
dataset's `task` key to its task). A task says which dataset shape it needs, which texts it embeds, how each batch of clips becomes
logged outcomes, how the evaluated items become metrics with intervals, tables and figures, its summary line, and
which of its metrics a leaderboard shows (declared in every run's metrics.json, so that the report layer reads runs
without knowing their task). Nothing outside a task module imports its internals.

- `classification` (zsa_eval.tasks.classification): one label per clip; accuracy and its kin.
- `multilabel` (zsa_eval.tasks.tagging): a label set per clip; mAP and its kin.
- `retrieval` (zsa_eval.tasks.retrieval): captions per clip; recall at k both ways.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from zsa_eval.errors import UserError

if TYPE_CHECKING:
    from zsa_eval.cache import EmbeddingCache
    from zsa_eval.data import AudioDataset
    from zsa_eval.models import LoadedModel


@dataclass(frozen=True)
class MetricSpec:
    """A metric a run reports (its value at `name` in metrics.json, its 95% interval at `<name>_ci95` when
    `interval`), the column title a leaderboard gives it, and which way is better. `shown`: in leaderboard.md too,
    not only in its CSV and JSON; `whole`: a count, shown as a whole number."""

    name: str
    label: str
    higher_is_better: bool = True
    interval: bool = True
    shown: bool = True
    whole: bool = False

    def declared(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunContext:
    """What a task works with: the checked config, the dataset (already limited), the loaded model, its
    audio-embedding cache, the prompts (tasks that embed class labels) and the DataLoader's worker count."""

    cfg: DictConfig
    dataset: AudioDataset
    loaded: LoadedModel
    cache: EmbeddingCache | None
    prompts: list[str] | None
    num_workers: int
    progress: bool

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


@dataclass(frozen=True)
class Evaluated:
    """The items a run evaluated: their dataset positions, their rows of the item table, their logged records, and
    (for a run that keeps them) their audio embeddings, in the same order."""

    positions: list[int]
    items: pd.DataFrame
    records: list[dict]
    audio: list[np.ndarray] | None


@dataclass(frozen=True)
class TaskResults:
    """What a task makes of the evaluated items: the metrics.json fields it owns, CSV tables and PNG figures (bytes),
    arrays written as .npy and tables as parquet (by relative path: embeddings/audio.npy, scores.parquet), and what
    it adds to metrics.json's provenance."""

    metrics: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    parquet: dict[str, pd.DataFrame] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


class Task(ABC):
    """A kind of evaluation. Subclasses declare their names and metrics and implement the steps below."""

    name: ClassVar[str]                   # the dataset config's `task` and metrics.json's
    shape: ClassVar[str]                  # the items it needs: "label" | "label set" | "captions"
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
