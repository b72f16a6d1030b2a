"""Dataset loading (Hub, ESC-50 folder, audiofolder, synthetic) into one shape: an item table plus lazy audio."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from zsa_eval.audio import AudioSource
from zsa_eval.errors import UserError
from zsa_eval.folders import IGNORED_COLUMNS, FolderListing, list_folder
from zsa_eval.hub import cache_only_unless_reachable, offline_mode

ESC10_SUBSET = "esc10"
CLASSIFICATION, MULTILABEL, RETRIEVAL = "classification", "multilabel", "retrieval"
LABEL_SET_SEPARATOR = "|"  # how a multi-label item's label set is written in one text column (label, true_labels)


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
    """Items to evaluate (table: item_id, path, label, fold; task multilabel adds `labels`, each item's tuple of
    class names, and `label` is that set joined by "|"), their class names, lazily read audio, the items left out
    because no label of theirs is a candidate (table: item_id, path, label), and the files of a local folder that
    are not items (table: path, reason)."""

    name: str
    class_names: list[str]
    items: pd.DataFrame
    clips: Sequence[AudioSource]
    excluded: pd.DataFrame
    ignored_files: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=IGNORED_COLUMNS))
    source: str = ""                 # the Hub id or the local folder
    revision: str | None = None      # the Hub dataset's resolved revision, when known
    task: str = CLASSIFICATION

    def __len__(self) -> int:
        return len(self.items)

    def present_labels(self) -> set[str]:
        """The class names some item carries."""
        if self.task == MULTILABEL:
            return {name for labels in self.items["labels"] for name in labels}
        return set(self.items["label"])

    @property
    def has_folds(self) -> bool:
        return bool(self.items["fold"].notna().any())


class HubAudio(Sequence):
    """The encoded audio of chosen rows of a Hugging Face dataset, read on demand (picklable for workers): an
    Audio column, or a column of the encoded file's bytes (binary, or a list of uint8 as in nguyenvulebinh/fsd50k's
    `mp3`)."""

    def __init__(self, dataset, audio_column: str, rows: Sequence[int]):
        from datasets import Audio, Value

        audio = dataset.select_columns([audio_column])
        feature = audio.features[audio_column]
        self.raw_bytes = isinstance(feature, Value) or hasattr(feature, "feature")  # binary, or a list of uint8
        self.dataset = audio.with_format("numpy") if self.raw_bytes else audio.cast_column(audio_column,
                                                                                          Audio(decode=False))
        self.audio_column = audio_column
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> AudioSource:
        encoded = self.dataset[self.rows[index]][self.audio_column]
        if self.raw_bytes:
            return encoded if isinstance(encoded, bytes) else np.asarray(encoded, dtype=np.uint8).tobytes()
        return encoded["bytes"] if encoded.get("bytes") else encoded["path"]


def readable_label(class_name: str) -> str:
    """Turn a category name into text a text encoder reads: "chirping_birds" -> "chirping birds"."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-]+", " ", str(class_name))).strip()


def candidate_labels(class_names: Sequence[str]) -> list[str]:
    """Readable, unique candidate labels in class order."""
    labels = [readable_label(name) for name in class_names]
    first_with_label: dict[str, str] = {}
    for name, label in zip(class_names, labels):
        if label in first_with_label:
            raise UserError(f"class names {first_with_label[label]!r} and {name!r} collide once made readable "
                            f"(both read {label!r}); rename one of them")
        first_with_label[label] = name
    return labels


def class_label_of(feature):
    """The ClassLabel of a column: the feature itself, or that of a list of ClassLabel (a multi-label column);
    None for other features."""
    from datasets import ClassLabel

    inner = getattr(feature, "feature", None)
    return feature if isinstance(feature, ClassLabel) else inner if isinstance(inner, ClassLabel) else None


def class_label_vocabulary(feature, label_names: Mapping[str, str] | None) -> list[str] | None:
    """Every class a ClassLabel column names, renamed by `label_names`: a multi-label dataset's candidate classes,
    also those without items in this split (single-label datasets take the labels present, as folders do); None
    for other features."""
    found = class_label_of(feature)
    return None if found is None else [(label_names or {}).get(name, name) for name in found.names]


def label_sets(values: pd.Series, delimiter: str | None) -> list[tuple[str, ...]]:
    """Each item's labels, in order and without repeats: a list as it is, a string split at `delimiter` (names
    stripped, empty ones dropped), a missing value none."""
    sets = []
    for value in values:
        if isinstance(value, str):
            names = value.split(delimiter) if delimiter else [value]
        elif isinstance(value, (list, tuple, np.ndarray)):
            names = [str(name) for name in value]
        else:
            names = [] if pd.isna(value) else [str(value)]
        sets.append(tuple(dict.fromkeys(name.strip() for name in names if name.strip())))
    return sets


def multilabel_items(items: pd.DataFrame, table: pd.DataFrame, label_column: str, delimiter: str | None,
                     classes: Sequence[str] | None, label_names: Mapping[str, str] | None = None,
                     ) -> tuple[list[str], pd.Series]:
    """Task multilabel: the class names (`classes`, else the union of every item's labels) and, per item, its
    labels among them (`labels` column; `label` that set joined by "|", or for an item left with none, the labels it
    had); `label_names` renames single labels. Returns the class names and which items keep at least one label."""
    sets = [tuple(dict.fromkeys((label_names or {}).get(name, name) for name in labels))
            for labels in label_sets(table[label_column], delimiter)]
    class_names = [str(name) for name in classes] if classes is not None else sorted({n for s in sets for n in s})
    candidates = set(class_names)
    kept = [tuple(name for name in labels if name in candidates) for labels in sets]
    items["labels"] = pd.Series(kept, dtype=object).to_numpy()
    items["label"] = [LABEL_SET_SEPARATOR.join(chosen or labels) for chosen, labels in zip(kept, sets)]
    return class_names, pd.Series([bool(labels) for labels in kept])


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
    label_names: Mapping[str, str] | None = None,
    task: str = CLASSIFICATION,
    label_delimiter: str | None = None,
) -> AudioDataset:
    """Validate the metadata `table` (one row per item, with its id and path), name its labels (`label_names`
    renames a stored label, e.g. a code, a number or a capitalized name), apply the fold/subset selection and fix
    the class names (before any `limit`): `classes` when given, else every label present. Task multilabel reads a
    label set per item (a list column, or a string split at `label_delimiter`)."""
    require_column(table, label_column, "dataset.label_column")
    if label_delimiter is not None and task != MULTILABEL:
        raise UserError(f"dataset.label_delimiter={label_delimiter!r} splits label sets, which only task: multilabel "
                        "has: set dataset.task=multilabel, or drop dataset.label_delimiter")
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
            "label": named_labels(table[label_column], label_names).to_numpy() if task != MULTILABEL else "",
            "fold": (table[fold_column] if fold_column else pd.Series(pd.NA, index=table.index)).to_numpy(),
        }
    )
    if items.empty:
        raise UserError(f"dataset {name} has no items; check dataset.path")
    check_label_delimiter(table[label_column], task, label_delimiter)
    if task == MULTILABEL:
        class_names, has_candidate = multilabel_items(items, table, label_column, label_delimiter, classes,
                                                      label_names)
    else:
        class_names = [str(label) for label in classes] if classes is not None else sorted(items["label"].unique())
        has_candidate = items["label"].isin(class_names)
    if len(set(class_names)) < 2:
        raise UserError(f"dataset {name} has a single class {class_names}: zero-shot classification needs at "
                        "least two candidate labels (check dataset.label_column, dataset.classes or the folds)")
    candidate = has_candidate.to_numpy()
    if not candidate.any():
        raise no_item_of_classes(name, class_names, items, task)
    clips = clips_for_rows(table.index[candidate].tolist())
    excluded = items.loc[~candidate, ["item_id", "path", "label"]].reset_index(drop=True)
    return AudioDataset(name, class_names, items[candidate].reset_index(drop=True), clips, excluded, task=task)


def no_item_of_classes(name: str, classes: Sequence[str], items: pd.DataFrame, task: str) -> UserError:
    """dataset.classes that no item carries: name them and the classes the items do carry."""
    present = sorted({label for labels in items["labels"] for label in labels} if task == MULTILABEL
                     else set(items["label"]))
    shown = ", ".join(present[:20]) + (f", ... ({len(present)} in all)" if len(present) > 20 else "")
    return UserError(f"none of the {len(items)} items of dataset {name} carries a class of dataset.classes="
                     f"[{','.join(classes)}]; the classes present are: {shown}")


JOINING_CHARACTERS = (",", ";", "|")


def joining_character(labels: pd.Series, pattern: str = "{}") -> str | None:
    """The one of ",", ";" and "|" that most text cells of `labels` hold (matched as `pattern` with the character
    in place of {}), or None when no cell holds any."""
    text = labels[labels.map(lambda value: isinstance(value, str))].astype(str)
    counts = {character: int(text.str.contains(pattern.format(re.escape(character)), regex=True).sum())
              for character in JOINING_CHARACTERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def check_label_delimiter(labels: pd.Series, task: str, delimiter: str | None) -> None:
    """A multi-label column of joined names read without dataset.label_delimiter gives every item one label made
    of several names, silently: refuse it, naming the likely delimiter."""
    if task != MULTILABEL or delimiter is not None:
        return
    joiner = joining_character(labels)
    if joiner is not None:
        example = next(value for value in labels if isinstance(value, str) and joiner in value)
        raise UserError(f"labels such as {example!r} look like several labels joined by {joiner!r}, but "
                        f"dataset.label_delimiter is not set: add 'dataset.label_delimiter=\"{joiner}\"' (quoted as "
                        "shown), or set it to a character the labels do not use")


JOINED_NAME = r"{}\S"  # a joining character directly followed by more text: "speech,human voice"


def joined_labels_hint(class_names: Sequence[str]) -> str | None:
    """A single-label dataset whose class names look like joined label sets ("speech,human voice"; a name such as
    VGGSound's "bird chirping, tweeting" does not): the hint to read them as such."""
    joiner = joining_character(pd.Series(list(class_names), dtype=object), JOINED_NAME)
    if joiner is None:
        return None
    example = next(name for name in class_names if re.search(JOINED_NAME.format(re.escape(joiner)), name))
    return (f"class names such as {example!r} look like several labels joined by {joiner!r}: if items carry several "
            f"labels, set dataset.task=multilabel 'dataset.label_delimiter=\"{joiner}\"'")


def named_labels(labels: pd.Series, label_names: Mapping[str, str] | None) -> pd.Series:
    """Labels as text, each renamed by `label_names` where it has an entry (others kept as they are)."""
    text = labels.astype(str)
    return text.map(lambda label: label_names.get(label, label)) if label_names else text


def row_captions(value) -> list[str]:
    """One table cell's captions: a text is one caption, a list (or array) several; missing or blank ones none."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    return [str(text) for text in values if isinstance(text, str) and text.strip()]


def build_retrieval_dataset(
    name: str,
    table: pd.DataFrame,
    item_ids: Sequence[str],
    paths: Sequence[str],
    clips_for_rows: Callable[[list[int]], Sequence[AudioSource]],
    caption_column: str,
    **selection,
) -> AudioDataset:
    """Clips and their captions for text-audio retrieval: rows sharing an item id are one clip (the first row's
    audio) whose captions are the rows' captions in table order, used as written. Items carry a `captions` list;
    their label is empty (every clip is one stratum for limit_mode=stratified). The config check refuses class and
    fold selections (zsa_eval.config.check_dataset_task)."""
    require_column(table, caption_column, "dataset.caption_column")
    table = table.reset_index(drop=True).assign(_item_id=[str(item) for item in item_ids], _path=list(paths))
    groups = table.groupby("_item_id", sort=False).indices
    first_rows = [int(rows[0]) for rows in groups.values()]
    captions = [[caption for row in rows for caption in row_captions(table[caption_column].iat[row])]
                for rows in groups.values()]
    if not first_rows:
        raise UserError(f"dataset {name} has no items; check dataset.path")
    items = pd.DataFrame({
        "item_id": list(groups),
        "path": table["_path"].iloc[first_rows].astype(str).to_numpy(),
        "label": "",
        "fold": pd.NA,
        "captions": captions,
    })
    if not sum(map(len, captions)):
        raise UserError(f"dataset {name} has no captions in column {caption_column!r}; set dataset.caption_column "
                        "to the column holding the captions")
    return AudioDataset(name, [], items, clips_for_rows(first_rows), pd.DataFrame(columns=["item_id", "path", "label"]))


LIMIT_MODES = ("stratified", "first")


def limit_items(dataset: AudioDataset, limit: int | None, mode: str = "stratified", seed: int = 0) -> AudioDataset:
    """Keep `limit` items: a class-stratified sample drawn with `seed` (each class in proportion to its size,
    kept in dataset order), or the first `limit` items. The candidate labels stay those of the whole selection."""
    if limit is None:
        return dataset
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise UserError(f"limit={limit} selects nothing; use a positive whole number or limit=null for all items")
    if mode not in LIMIT_MODES:
        raise UserError(f"limit_mode={mode} is unknown: use limit_mode=stratified (a seeded sample of every class) "
                        "or limit_mode=first (the first items in dataset order)")
    positions = (stratified_positions(dataset.items["label"], limit, seed) if mode == "stratified"
                 else list(range(min(limit, len(dataset)))))
    return replace(dataset, items=dataset.items.iloc[positions].reset_index(drop=True),
                   clips=Selection(dataset.clips, positions))


def stratified_positions(labels: pd.Series, limit: int, seed: int) -> list[int]:
    """Systematic stratified sampling: each class's items are shuffled and spread evenly over [0, 1) with a random
    offset per class; the `limit` smallest keys are kept, so every class gets its proportional share (+-1) and,
    when `limit` is below the number of classes, a seeded choice of classes gets one item each."""
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    for positions in labels.groupby(labels, sort=True).indices.values():
        shuffled = rng.permutation(positions)
        keys[shuffled] = (np.arange(len(shuffled)) + rng.random()) / len(shuffled)
    return sorted(np.argsort(keys, kind="stable")[:limit].tolist())


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


# Hub datasets built by a loading script, which `datasets` 4+ no longer runs, and the parquet copy to use instead.
SCRIPT_DATASETS = {
    "marsyas/gtzan": "dataset=gtzan (its parquet copy sanchit-gandhi/gtzan)",
    "google/speech_commands": "dataset=speech_commands (its parquet copy mteb/SpeechCommandsZeroshotv0.02)",
    "speech_commands": "dataset=speech_commands (its parquet copy mteb/SpeechCommandsZeroshotv0.02)",
    "narad/ravdess": "dataset=ravdess (its parquet copy mteb/RavdessZeroshot)",
    "myleslinder/crema-d": "dataset=crema_d (its parquet copy mteb/crema-d)",
    "agkphysics/audioset": "a parquet copy of AudioSet (the catalog has none: give a folder or Hub id holding "
                           "data/<split>-*.parquet)",
}
SCRIPTS_REFUSED = "Dataset scripts are no longer supported"  # the RuntimeError `datasets` raises for one


def script_dataset_error(hub_id: str) -> UserError:
    copy = SCRIPT_DATASETS.get(hub_id.lower(), "a parquet copy of it (a folder or Hub id holding "
                                               "data/<split>-*.parquet)")
    return UserError(f"dataset.hub_id={hub_id} is built by a loading script, which the datasets library no longer "
                     f"runs: use {copy}")


# Gated Hub datasets (access granted per account) and an open copy to use instead.
GATED_ALTERNATIVES = {"jp1924/audiocaps": "OpenSound/AudioCaps (the copy mteb uses)"}


def hub_dataset_error(hub_id: str, split: str, error: Exception) -> UserError:
    """One line for a Hub dataset that did not load: gated (naming an open copy where one is known), offline mode
    set, or the Hub unreachable (or without such a dataset) and no cached copy."""
    from huggingface_hub.errors import GatedRepoError

    local_copy = f"set dataset.hub_id to a local copy (a folder holding data/{split}-*.parquet)"
    if isinstance(error, GatedRepoError) or "is a gated dataset" in str(error):  # `datasets` rewords the error
        alternative = GATED_ALTERNATIVES.get(hub_id.lower())
        instead = f"use dataset.hub_id={alternative}" if alternative else local_copy
        return UserError(f"dataset {hub_id!r} is gated on the Hugging Face Hub (its page grants access per account): "
                         f"ask for access there and log in (hf auth login), or {instead}")
    offline = offline_mode()
    if offline:
        return UserError(f"cannot load dataset {hub_id!r} from the Hugging Face Hub: offline mode is set ({offline}) "
                         f"and it is not in the local cache: unset offline mode to download it, or {local_copy}")
    return UserError(f"cannot load dataset {hub_id!r} from the Hugging Face Hub (unreachable or not found) and it is "
                     f"not in the local cache: run once where the Hub is reachable, or {local_copy} "
                     f"({type(error).__name__})")


def load_hub_dataset(
    name: str,
    hub_id: str,
    split: str,
    revision: str | None,
    audio_column: str,
    id_column: str | None,
    task: str = CLASSIFICATION,
    caption_column: str | None = None,
    id_basename: bool = False,
    **selection,
) -> AudioDataset:
    """A labelled (or, for task retrieval, captioned) audio dataset from the Hugging Face Hub (or its local cache,
    or a local copy: a folder, which has no revision), audio left encoded. Class-label integers become their names;
    items are named by `id_column` (its file name alone with `id_basename`), or by their row number when it is
    null."""
    if hub_id.lower() in SCRIPT_DATASETS:
        raise script_dataset_error(hub_id)
    import datasets

    if Path(hub_id).is_dir():  # a local copy: `datasets` reads the folder as it is, whatever the revision
        revision = None
    try:
        with cache_only_unless_reachable():
            hub_dataset = datasets.load_dataset(hub_id, split=split, revision=revision)
    except (OSError, datasets.exceptions.DatasetNotFoundError) as error:
        raise hub_dataset_error(hub_id, split, error) from error
    except RuntimeError as error:
        if SCRIPTS_REFUSED in str(error):
            raise script_dataset_error(hub_id) from error
        raise
    columns = pd.DataFrame(columns=hub_dataset.column_names)
    label_column = selection.get("label_column") if task != RETRIEVAL else None
    keys = {"audio_column": audio_column, "id_column": id_column, "label_column": label_column,
            "caption_column": caption_column if task == RETRIEVAL else None,
            "fold_column": selection.get("fold_column"), "subset_column": selection.get("subset_column")}
    for key, column in keys.items():
        if column:
            require_column(columns, column, f"dataset.{key}")
    # only the columns named: others (a video column, say) are never read into memory
    metadata = [column for key, column in keys.items() if column and key != "audio_column"]
    table = hub_dataset.select_columns(list(dict.fromkeys(metadata))).to_pandas()
    if label_column:
        table[label_column] = class_label_names(hub_dataset.features, table, label_column, selection.get("label_names"))
        if task == MULTILABEL and selection.get("classes") is None:  # a tagging vocabulary is the candidate set
            selection["classes"] = class_label_vocabulary(hub_dataset.features[label_column],
                                                          selection.get("label_names"))
    item_ids = table[id_column].astype(str).tolist() if id_column else [str(row) for row in range(len(table))]
    if id_basename:
        item_ids = file_names(item_ids, id_column)
    builder = (partial(build_dataset, task=task) if task != RETRIEVAL
               else partial(build_retrieval_dataset, caption_column=caption_column))
    dataset = builder(name, table, item_ids, item_ids, lambda rows: HubAudio(hub_dataset, audio_column, rows),
                      **selection)
    return replace(dataset, source=hub_id, revision=resolved_revision(hub_dataset) or revision)


def file_names(ids: Sequence[str], id_column: str | None) -> list[str]:
    """Each id's last path part ("/home/x/genres/blues/blues.00000.wav" -> "blues.00000.wav"), refused when two
    different ids share one (their items would merge into one), or when there is no id column to take it from."""
    if not id_column:
        raise UserError("dataset.id_basename=true names items by the file name in dataset.id_column, which is null: "
                        "set dataset.id_column, or drop dataset.id_basename")
    names = [PurePosixPath(item_id).name for item_id in ids]
    ids_of_name: dict[str, set[str]] = {}
    for item_id, name in zip(ids, names):
        ids_of_name.setdefault(name, set()).add(item_id)
    shared = next((name for name, full in ids_of_name.items() if len(full) > 1), None)
    if shared is not None:
        first, second = sorted(ids_of_name[shared])[:2]
        raise UserError(f"dataset.id_basename=true names items by the file name in {id_column!r}, but {first!r} and "
                        f"{second!r} share {shared!r}: set dataset.id_basename=false to name items by the whole "
                        f"{id_column!r}")
    return names


def class_label_names(features, table: pd.DataFrame, label_column: str,
                      label_names: Mapping[str, str] | None) -> pd.Series:
    """A ClassLabel column's integers as their names (a list of ClassLabel: each item's list); a plain integer
    column must be named by dataset.label_names (a prompt about "3" says nothing)."""
    from datasets import Value

    labels, feature = table[label_column], features[label_column]
    found = class_label_of(feature)
    if found is not None and found is not feature:  # a list of class labels per item: a multi-label column
        return labels.map(lambda indices: [found.names[int(index)] for index in indices if int(index) >= 0])
    if found is not None:
        return labels.map(lambda index: found.names[index] if 0 <= index < found.num_classes else str(index))
    unnamed = sorted(set(labels.astype(str)) - set(label_names or {}), key=lambda label: (len(label), label))
    if isinstance(feature, Value) and feature.dtype.startswith(("int", "uint")) and unnamed:
        raise UserError(f"column {label_column!r} holds integer codes with no names ({', '.join(unnamed[:5])}"
                        f"{', ...' if len(unnamed) > 5 else ''}): name each code in dataset.label_names, or set "
                        "dataset.label_column to a column of names")
    return labels


def resolved_revision(hub_dataset) -> str | None:
    """The commit a Hub dataset was loaded at: `datasets` names the cache folder of a Hub dataset after it."""
    files = getattr(hub_dataset, "cache_files", None) or []
    folder = Path(files[0]["filename"]).parent.name if files else ""
    return folder if re.fullmatch(r"[0-9a-f]{40}", folder) else None


def load_esc50_folder(
    name: str,
    path: str | None,
    follow_symlinks: bool = False,
    extensions: Sequence[str] | None = None,
    task: str = CLASSIFICATION,
    **selection,
) -> AudioDataset:
    """The original ESC-50 layout: meta/esc50.csv (filename, fold, category, esc10, ...) and audio/ (the config
    check refuses task retrieval here)."""
    root = require_path(path, name, "the ESC-50 folder (holding meta/esc50.csv and audio/)")
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise UserError(f"{meta} not found: dataset.path must hold meta/esc50.csv and audio/ as in ESC-50")
    table = pd.read_csv(meta)
    require_column(table, "filename", "meta/esc50.csv's file column (filename)")
    paths = [str(root / "audio" / filename) for filename in table["filename"]]
    listing = list_folder(root, follow_symlinks, extensions)
    dataset = build_dataset(name, table, table["filename"].tolist(), paths, lambda rows: [paths[row] for row in rows],
                            task=task, **selection)
    return replace(dataset, ignored_files=unlisted_files(listing, paths, meta), source=str(root))


def load_audiofolder(
    name: str,
    path: str | None,
    follow_symlinks: bool = False,
    extensions: Sequence[str] | None = None,
    task: str = CLASSIFICATION,
    caption_column: str | None = None,
    split_folder: str | None = None,
    **selection,
) -> AudioDataset:
    """A local folder in Hugging Face's audiofolder layout, listed by zsa-eval itself: class subfolders (audio at
    any depth below its class folder; with `split_folder`, the class subfolders of that top-level folder), or audio
    files with a metadata.csv / metadata.jsonl (`file_name` plus the label column; for task retrieval the caption
    column, one row per caption). Every other file is listed in ignored_files.csv."""
    root = require_path(path, name, "an audiofolder (class subfolders or a metadata.csv)")
    listing = list_folder(root, follow_symlinks, extensions)
    metadata = next((root / file for file in METADATA_FILES if (root / file).is_file()), None)
    if split_folder is not None and metadata is not None:
        raise UserError(f"dataset.split_folder={split_folder} picks class folders, but {root} has a "
                        f"{metadata.name} listing its items: drop dataset.split_folder (or set dataset.path to the "
                        "split's own folder)")
    if task == RETRIEVAL:
        if metadata is None:
            raise UserError(f"{root} has no metadata.csv: a retrieval folder lists its captions there, one row per "
                            f"caption with columns file_name and {caption_column} (several rows per file allowed)")
        table = read_metadata(metadata, caption_column)
        paths = [str(root / file_name) for file_name in table["file_name"]]
        dataset = build_retrieval_dataset(name, table, table["file_name"].tolist(), paths,
                                          lambda rows: [paths[row] for row in rows], caption_column, **selection)
        return replace(dataset, ignored_files=unlisted_files(listing, paths, metadata), source=str(root))
    if metadata is not None:
        table = read_metadata(metadata, selection["label_column"])
        paths = [str(root / file_name) for file_name in table["file_name"]]
        item_ids = table["file_name"].tolist()
        ignored = unlisted_files(listing, paths, metadata)
    else:
        table, paths, ignored = class_folder_table(listing, selection["label_column"], selection.get("classes"),
                                                   split_folder)
        item_ids = [listing.relative(Path(file)) for file in paths]
    dataset = build_dataset(name, table, item_ids, paths, lambda rows: [paths[row] for row in rows], task=task,
                            **selection)
    return replace(dataset, ignored_files=ignored, source=str(root))


METADATA_FILES = ("metadata.csv", "metadata.jsonl")


def read_metadata(metadata: Path, label_column: str) -> pd.DataFrame:
    """metadata.csv or .jsonl: one row per audio file, `file_name` relative to the folder, labels as text."""
    try:
        if metadata.suffix == ".csv":
            table = pd.read_csv(metadata, dtype={"file_name": str, label_column: str}, keep_default_na=False)
        else:
            table = pd.read_json(metadata, lines=True, dtype={"file_name": str, label_column: str})
    except ValueError as error:
        raise UserError(f"cannot read {metadata} ({error}); write one row per audio file with a file_name "
                        "column") from error
    require_column(table, "file_name", f"{metadata.name}'s file column (file_name)")
    return table


def unlisted_files(listing: FolderListing, listed_paths: Sequence[str], metadata: Path) -> pd.DataFrame:
    """The folder's ignored files, plus audio files the metadata does not list; the metadata file is not audio."""
    listed = {os.path.normpath(file) for file in listed_paths}
    unlisted = [(listing.relative(file), f"audio not listed in {listing.relative(metadata)}")
                for file in listing.audio if os.path.normpath(file) not in listed]
    notes = [(file, "dataset metadata" if file == listing.relative(metadata) else reason)
             for file, reason in listing.ignored]
    return pd.DataFrame(sorted(notes + unlisted), columns=IGNORED_COLUMNS)


def class_folder_table(
    listing: FolderListing, label_column: str, classes: Sequence[str] | None, split_folder: str | None = None
) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """Items labelled by their class folder: a top-level folder, or with `split_folder` a folder inside that one.
    Audio lying outside any class folder, or outside the split folder, belongs to no class. Split folders above
    the class folders (train/, test/) without `split_folder` are refused: they are not classes."""
    if not listing.audio and not listing.ignored:
        raise UserError(f"dataset.path {str(listing.root)!r} is empty: put audio files in class subfolders "
                        "(<class>/<file>), or audio files with a metadata.csv")
    check_split_folder(listing, split_folder)
    depth = 0 if split_folder is None else 1  # where the class folder is in a file's relative path
    within = "" if split_folder is None else f"{split_folder}/"
    in_class, labels, outside_classes = [], [], []
    for file, parts in zip(listing.audio, map(listing.parts, listing.audio)):
        if split_folder is not None and parts[0] != split_folder:
            outside_classes.append((listing.relative(file),
                                    f"outside the evaluated split (dataset.split_folder={split_folder})"))
        elif len(parts) > depth + 1:
            in_class.append(file)
            labels.append(parts[depth])
        else:
            outside_classes.append((listing.relative(file),
                                    f"audio outside any class folder (put it in {within}<class>/)"))
    found = sorted(set(labels))
    if not in_class:
        raise UserError(f"no audio files found in class folders under {listing.root / within} "
                        f"({listing.ignored_summary()}): an audiofolder holds <class>/<file> audio, or audio files "
                        "with a metadata.csv; set dataset.extensions if your audio has another extension")
    if len(found) < 2 and classes is None:
        raise UserError(f"{listing.root / within} has audio for one class only ({found[0]!r}; "
                        f"{listing.ignored_summary()}): zero-shot classification needs at least two classes; add "
                        "class folders, or set dataset.extensions if the other folders hold audio of another "
                        "extension")
    ignored = pd.DataFrame(sorted(listing.ignored + outside_classes), columns=IGNORED_COLUMNS)
    return pd.DataFrame({label_column: labels}), [str(file) for file in in_class], ignored


def check_split_folder(listing: FolderListing, split_folder: str | None) -> None:
    """`split_folder` must be a top-level folder holding audio; without it, a folder whose top-level folders are
    all splits (train/<class>/..., test/<class>/...) is refused rather than read as classes named after splits."""
    tops = listing.top_folders()
    if split_folder is not None and split_folder not in tops:
        raise UserError(f"dataset.split_folder={split_folder} is not a top-level folder of {listing.root} holding "
                        f"audio: use one of {', '.join(tops) or '(none: the folder has no sub-folders with audio)'}")
    splits = listing.split_folders()
    if split_folder is None and splits:
        example = next((split for split in splits if split.casefold() == "test"), splits[0])
        raise UserError(f"{listing.root} holds split folders ({', '.join(splits)}) above its class folders: set "
                        f"dataset.split_folder to the split to evaluate (e.g. dataset.split_folder={example}); its "
                        "sub-folders are the classes")


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
