"""The Hugging Face Hub loader: a Hub dataset (or its cache, or a local parquet copy) read into items, its
class-label integers named, its audio left encoded; one-line errors for script-built, gated or unreachable
datasets."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from zsa_eval.audio import AudioSource
from zsa_eval.data.items import (
    CLASSIFICATION,
    MULTILABEL,
    RETRIEVAL,
    AudioDataset,
    build_dataset,
    build_retrieval_dataset,
    require_column,
)
from zsa_eval.errors import UserError
from zsa_eval.hub import cache_only_unless_reachable, offline_mode


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
            "fold_column": selection.get("fold_column"), "subset_column": selection.get("subset_column"),
            "group_column": selection.get("group_column") if task != RETRIEVAL else None}
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
