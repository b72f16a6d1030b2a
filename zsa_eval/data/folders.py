"""The audiofolder loader: a local folder in Hugging Face's audiofolder layout (class folders, optionally below a
split folder, or a metadata.csv / metadata.jsonl; for retrieval, captions in the metadata) read into items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from zsa_eval.data.items import (
    CLASSIFICATION,
    RETRIEVAL,
    AudioDataset,
    build_dataset,
    build_retrieval_dataset,
    require_column,
    require_path,
)
from zsa_eval.data.listing import IGNORED_COLUMNS, FolderListing, list_folder, unlisted_files
from zsa_eval.errors import UserError


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
        elsewhere = (f"{len(outside_classes)} audio file{'s' if len(outside_classes) > 1 else ''} outside any class "
                     f"folder, e.g. {outside_classes[0][0]}; " if outside_classes else "")
        raise UserError(f"no audio files found in class folders under {listing.root / within} "
                        f"({elsewhere}{listing.ignored_summary()}): an audiofolder holds <class>/<file> audio (move "
                        "each file into a folder named by its class), or audio files with a metadata.csv; set "
                        "dataset.extensions if your audio has another extension")
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
