"""Dataset loading (Hub, ESC-50 folder, audiofolder, synthetic) into one shape: an item table plus lazy audio."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zsa_eval.audio import AudioSource
from zsa_eval.errors import UserError
from zsa_eval.hub import cache_only_unless_reachable

ESC10_SUBSET = "esc10"
LABEL_NOT_CANDIDATE = "label not in candidate set"


class Selection(Sequence):
    """A read-only view of chosen positions of a sequence of clips (nothing is loaded)."""

    def __init__(self, clips: Sequence[AudioSource], positions: Sequence[int]):
        self.clips = clips
        self.positions = list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> AudioSource:
        return self.clips[self.positions[index]]


@dataclass(frozen=True)
class AudioDataset:
    """Items to evaluate (table: item_id, path, label, fold), their class names, lazily read audio, and the
    items left out because their label is not a candidate (table: item_id, path, label)."""

    name: str
    class_names: list[str]
    items: pd.DataFrame
    clips: Sequence[AudioSource]
    excluded: pd.DataFrame

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_folds(self) -> bool:
        return bool(self.items["fold"].notna().any())


class HubAudio(Sequence):
    """The encoded audio of chosen rows of a Hugging Face dataset, read on demand (picklable for workers)."""

    def __init__(self, dataset, audio_column: str, rows: Sequence[int]):
        from datasets import Audio

        self.dataset = dataset.select_columns([audio_column]).cast_column(audio_column, Audio(decode=False))
        self.audio_column = audio_column
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> AudioSource:
        encoded = self.dataset[self.rows[index]][self.audio_column]
        return encoded["bytes"] if encoded.get("bytes") else encoded["path"]


def readable_label(class_name: str) -> str:
    """Turn a category name into text a text encoder reads: "chirping_birds" -> "chirping birds"."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-]+", " ", str(class_name))).strip()


def candidate_labels(class_names: Sequence[str]) -> list[str]:
    """Readable, unique candidate labels in class order."""
    labels = [readable_label(name) for name in class_names]
    if len(set(labels)) != len(labels):
        raise UserError(
            f"class names collide once made readable ({labels}); rename the dataset's categories"
        )
    return labels


def build_dataset(
    name: str,
    table: pd.DataFrame,
    item_ids: Sequence[str],
    paths: Sequence[str],
    clips_for_rows: Callable[[list[int]], Sequence[AudioSource]],
    *,
    label_column: str,
    fold_column: str | None = None,
    subset_column: str | None = None,
    folds: Sequence[int] | None = None,
    subset: str | None = None,
    classes: Sequence[str] | None = None,
) -> AudioDataset:
    """Validate the metadata `table` (one row per item, with its id and path), apply the fold/subset
    selection and fix the class names (before any `limit`): `classes` when given, else every label present."""
    require_column(table, label_column, "dataset.label_column")
    table = table.reset_index(drop=True).assign(_item_id=list(item_ids), _path=list(paths))
    if subset is not None:
        if subset != ESC10_SUBSET or not subset_column:
            raise UserError(f"unknown dataset.subset={subset!r} for dataset {name}: use subset=esc10 or null")
        require_column(table, subset_column, "dataset.subset_column")
        table = table[table[subset_column].astype(bool)]
    fold = table[fold_column] if fold_column else pd.Series(pd.NA, index=table.index)
    if folds is not None:
        if not fold_column:
            raise UserError(f"dataset {name} has no folds; drop dataset.folds")
        require_column(table, fold_column, "dataset.fold_column")
        table = table[fold.isin(list(folds))]
        if table.empty:
            raise UserError(f"no items in folds {list(folds)}; folds present: {sorted(fold.unique().tolist())}")
    items = pd.DataFrame(
        {
            "item_id": table["_item_id"].astype(str).to_numpy(),
            "path": table["_path"].astype(str).to_numpy(),
            "label": table[label_column].astype(str).to_numpy(),
            "fold": (table[fold_column] if fold_column else pd.Series(pd.NA, index=table.index)).to_numpy(),
        }
    )
    if items.empty:
        raise UserError(f"dataset {name} has no items; check dataset.path")
    class_names = [str(label) for label in classes] if classes is not None else sorted(items["label"].unique())
    if len(set(class_names)) < 2:
        raise UserError(f"dataset {name} has a single class {class_names}: zero-shot classification needs at "
                        "least two candidate labels (check dataset.label_column, dataset.classes or the folds)")
    candidate = items["label"].isin(class_names).to_numpy()
    clips = clips_for_rows(table.index[candidate].tolist())
    excluded = items.loc[~candidate, ["item_id", "path", "label"]].reset_index(drop=True)
    return AudioDataset(name, class_names, items[candidate].reset_index(drop=True), clips, excluded)


def limit_items(dataset: AudioDataset, limit: int | None) -> AudioDataset:
    """Keep the first `limit` items; the candidate labels stay those of the whole selection."""
    if limit is None:
        return dataset
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise UserError(f"limit={limit} selects nothing; use a positive whole number or limit=null for all items")
    return AudioDataset(dataset.name, dataset.class_names, dataset.items.head(limit),
                        Selection(dataset.clips, range(min(limit, len(dataset)))), dataset.excluded)


def require_column(table: pd.DataFrame, column: str, key: str) -> None:
    if column not in table.columns:
        raise UserError(f"column {column!r} not found; set {key} to one of {sorted(map(str, table.columns))}")


def require_path(path: str | None, name: str, what: str) -> Path:
    if not path:
        raise UserError(f"dataset={name} needs dataset.path: add dataset.path=/path/to/{what}")
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"dataset.path {str(folder)!r} is not a directory; point it at {what}")
    return folder


# Every loader takes the item selection (label_column, fold_column, subset_column, folds, subset, classes) from
# its dataset config and hands it to build_dataset unchanged.


def load_hub_dataset(
    name: str,
    hub_id: str,
    split: str,
    revision: str | None,
    audio_column: str,
    id_column: str,
    **selection,
) -> AudioDataset:
    """A labelled audio dataset from the Hugging Face Hub (or its local cache), audio left encoded."""
    import datasets

    try:
        with cache_only_unless_reachable():
            hub_dataset = datasets.load_dataset(hub_id, split=split, revision=revision)
    except (OSError, datasets.exceptions.DatasetNotFoundError) as error:
        raise UserError(
            f"cannot load dataset {hub_id!r} from the Hugging Face Hub (unreachable or not found) "
            f"and it is not in the local cache: run once where the Hub is reachable, or use "
            f"dataset=esc50_folder dataset.path=/path/to/ESC-50 ({type(error).__name__})"
        ) from error
    require_column(pd.DataFrame(columns=hub_dataset.column_names), audio_column, "dataset.audio_column")
    table = hub_dataset.remove_columns([audio_column]).to_pandas()
    require_column(table, id_column, "dataset.id_column")
    item_ids = table[id_column].tolist()
    return build_dataset(name, table, item_ids, item_ids, lambda rows: HubAudio(hub_dataset, audio_column, rows),
                         **selection)


def load_esc50_folder(
    name: str,
    path: str | None,
    **selection,
) -> AudioDataset:
    """The original ESC-50 layout: meta/esc50.csv (filename, fold, category, esc10, ...) and audio/."""
    root = require_path(path, name, "the ESC-50 folder (holding meta/esc50.csv and audio/)")
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise UserError(f"{meta} not found: dataset.path must hold meta/esc50.csv and audio/ as in ESC-50")
    table = pd.read_csv(meta)
    require_column(table, "filename", "meta/esc50.csv's file column (filename)")
    paths = [str(root / "audio" / filename) for filename in table["filename"]]
    return build_dataset(name, table, table["filename"].tolist(), paths, lambda rows: [paths[row] for row in rows],
                         **selection)


def load_audiofolder(
    name: str,
    path: str | None,
    **selection,
) -> AudioDataset:
    """Hugging Face's audiofolder layout: class subfolders, or audio files with a metadata.csv."""
    import datasets

    root = require_path(path, name, "an audiofolder (class subfolders or a metadata.csv)")
    try:
        splits = datasets.load_dataset("audiofolder", data_dir=str(root))
    except FileNotFoundError as error:
        raise UserError(f"no audio files found in {root}: an audiofolder holds class subfolders of audio files, "
                        "or audio files with a metadata.csv") from error
    folder = datasets.concatenate_datasets(list(splits.values()))
    folder = folder.cast_column("audio", datasets.Audio(decode=False))
    table = folder.remove_columns(["audio"]).to_pandas()
    label_column = selection.get("label_column")
    label_feature = folder.features.get(label_column)
    if isinstance(label_feature, datasets.ClassLabel):
        table[label_column] = [label_feature.int2str(int(index)) for index in table[label_column]]
    paths = [encoded["path"] for encoded in folder["audio"]]
    item_ids = [str(Path(file).relative_to(root)) for file in paths]
    return build_dataset(name, table, item_ids, paths, lambda rows: [paths[row] for row in rows], **selection)


def load_synthetic(
    name: str,
    path: str,
    clips_per_class: int,
    sample_rate: int,
    duration_s: float,
    **selection,
) -> AudioDataset:
    """Synthesized sounds written once (ESC-50 folder layout) and loaded like a real ESC-50 folder."""
    from zsa_eval.synthetic import write_synthetic_esc50

    folder = write_synthetic_esc50(Path(path), clips_per_class, sample_rate, duration_s)
    return load_esc50_folder(name, str(folder), **selection)
