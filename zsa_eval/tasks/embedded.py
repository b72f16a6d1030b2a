"""What the tasks measured on audio embeddings alone share (zsa_eval.tasks.clustering, pair_classification,
reranking): no prompt and no text tower (an audio encoder runs them as an audio-text model does), every clip's audio
embedding kept until all are done, then pooled to one vector per clip by the family (`clip_embedding`), in float64;
the embed engine only, no accuracy gate, no generated answers. Their intervals are percentile bootstraps over the
task's units (items, pairs, queries), seeded by the run's seed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from zsa_eval.errors import UserError
from zsa_eval.models import LoadedModel
from zsa_eval.store.embeddings import EMBEDDINGS_DIR
from zsa_eval.tasks import Evaluated, LoggedBatch, RunContext, Task, check_embedding_run, embedding_batches

RESAMPLES = 1000  # bootstrap resamples of every interval


class AudioEmbeddingTask(Task):
    """A task that needs each clip's audio embedding and nothing else."""

    finished_key = "embedded"
    kind: ClassVar[str]  # what the dataset is, for messages: "a clustering dataset"

    def check(self, cfg: DictConfig) -> None:
        check_embedding_run(cfg, self.kind, "compares audio embeddings", "use an embedding model")

    def check_model(self, cfg: DictConfig, loaded: LoadedModel) -> None:
        """Any family with audio embeddings (an audio encoder too); an audio language model has none."""
        if loaded.family.kind == "scoring":
            raise UserError(f"dataset={cfg.dataset.name} is {self.kind}: it compares audio embeddings, which "
                            f"{loaded.family.name} models do not give (they score labels by their answers); use an "
                            "embedding model or an audio encoder")

    def prompts(self, cfg: DictConfig) -> None:
        """Nothing is prompted."""
        return None

    def identity(self, base: dict, cfg: DictConfig) -> dict:
        """The common identity and the task (no template: nothing is prompted)."""
        return {"task": self.name, **base}

    def keeps_embeddings(self, cfg: DictConfig) -> bool:
        return True

    def batches(self, context: RunContext, positions: list[int]) -> Iterator[LoggedBatch]:
        """Each clip's audio embedding, kept for the end."""
        return embedding_batches(context, positions, self.finished_key)


def require_columns(items: pd.DataFrame, columns: tuple[str, ...], name: str, kind: str, shape: str) -> None:
    """An item table of `kind` (task) must have `columns`; `shape` says what they hold."""
    missing = [column for column in columns if column not in items.columns]
    if missing:
        raise UserError(f"dataset {name} has task {kind} but its items lack column(s) {', '.join(missing)}: "
                        f"{shape}")


def saved_embeddings(cfg: DictConfig, evaluated: Evaluated, features: np.ndarray) -> tuple[dict, dict]:
    """With save_embeddings, the pooled audio embeddings (embeddings/audio.npy) and their items
    (embeddings/audio_items.csv): (tables, arrays); nothing otherwise."""
    if not cfg.save_embeddings:
        return {}, {}
    items: pd.DataFrame = evaluated.items[["item_id"]]
    return {f"{EMBEDDINGS_DIR}/audio_items": items}, {f"{EMBEDDINGS_DIR}/audio.npy": features.astype(np.float32)}
