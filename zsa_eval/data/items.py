"""The item model every loader produces (an item table plus lazily read audio) and the label handling shared by
all loaders: readable and candidate labels, label sets, the fold/subset/class selection, retrieval items and the
`limit` sample."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from zsa_eval.audio import AudioSource
from zsa_eval.data.listing import IGNORED_COLUMNS
from zsa_eval.errors import UserError

ESC10_SUBSET = "esc10"
CLASSIFICATION, MULTILABEL, RETRIEVAL = "classification", "multilabel", "retrieval"
CLUSTERING, PAIR_CLASSIFICATION, RERANKING = "clustering", "pair_classification", "reranking"
LABEL_SET_SEPARATOR = "|"  # how a multi-label item's label set is written in one text column (label, true_labels)
ID_SEPARATOR = "|"  # how a reranking query's positives and candidates (document item ids) are joined in one cell
QUERY, DOCUMENT = "query", "document"  # a reranking item's role


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
    """Items to evaluate (table: item_id, path, label, fold, group (the item's recording, or NA); task multilabel
    adds `labels`, each item's tuple of
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
    mteb_task: str | None = None     # dataset=mteb: the mteb task of these data (protocol=mteb runs its evaluator)

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
    group_column: str | None = None,
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
    label set per item (a list column, or a string split at `label_delimiter`). `group_column` names each item's
    recording (the items' `group`: clips cut from one recording)."""
    require_column(table, label_column, "dataset.label_column")
    if group_column and group_column not in table.columns:
        raise UserError(f"column {group_column!r} (dataset.group_column: each clip's recording) not found; set "
                        f"dataset.group_column to one of {sorted(map(str, table.columns))}, or to null when no two "
                        "clips share a recording")
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
            "group": (table[group_column].astype(str) if group_column
                      else pd.Series(pd.NA, index=table.index, dtype=object)).to_numpy(),
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
    candidate = has_candidate.to_numpy()
    if not candidate.any():
        raise no_item_of_classes(name, class_names, items, task)
    if len(set(class_names)) < 2:
        raise UserError(f"dataset {name} has a single class {class_names}: zero-shot classification needs at "
                        "least two candidate labels (check dataset.label_column, dataset.classes or the folds)")
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
    fold selections (zsa_eval.config.checks.check_dataset_task)."""
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
    kept in dataset order), or the first `limit` items (pairs and queries are counted whole: whole_pairs,
    queries_with_their_documents). The candidate labels stay those of the whole selection."""
    if limit is None:
        return dataset
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise UserError(f"limit={limit} selects nothing; use a positive whole number or limit=null for all items")
    if mode not in LIMIT_MODES:
        raise UserError(f"limit_mode={mode} is unknown: use limit_mode=stratified (a seeded sample of every class) "
                        "or limit_mode=first (the first items in dataset order)")
    if dataset.task == PAIR_CLASSIFICATION:
        positions = whole_pairs(dataset.items, limit, mode, seed)
    elif dataset.task == RERANKING:
        positions = queries_with_their_documents(dataset.items, limit, mode, seed)
    else:
        positions = (stratified_positions(dataset.items["label"], limit, seed) if mode == "stratified"
                     else list(range(min(limit, len(dataset)))))
    return replace(dataset, items=dataset.items.iloc[positions].reset_index(drop=True),
                   clips=Selection(dataset.clips, positions))


def whole_pairs(items: pd.DataFrame, limit: int, mode: str, seed: int) -> list[int]:
    """Both rows of `limit` pairs (task pair_classification): a sample stratified by the pair's label, or the first
    pairs in dataset order."""
    pairs = items.drop_duplicates("pair_id").reset_index(drop=True)
    chosen = (stratified_positions(pairs["label"], limit, seed) if mode == "stratified"
              else range(min(limit, len(pairs))))
    return np.flatnonzero(items["pair_id"].isin(set(pairs["pair_id"].iloc[list(chosen)]))).tolist()


def queries_with_their_documents(items: pd.DataFrame, limit: int, mode: str, seed: int) -> list[int]:
    """`limit` queries (task reranking: a seeded sample, or the first in dataset order) and the documents they
    rank: their positives and candidates (every document for a query whose candidates are empty)."""
    queries = np.flatnonzero(items["role"].to_numpy() == QUERY)
    count = min(limit, len(queries))
    chosen = (np.sort(np.random.default_rng(seed).choice(queries, count, replace=False)) if mode == "stratified"
              else queries[:count])
    named = [str(items.at[row, column]) for row in chosen for column in ("positives", "candidates")]
    every = any(not str(items.at[row, "candidates"]) for row in chosen)
    needed = {item_id for cell in named for item_id in cell.split(ID_SEPARATOR) if item_id}
    documents = (items["role"] == DOCUMENT) & (every | items["item_id"].isin(needed))
    return sorted(chosen.tolist() + np.flatnonzero(documents.to_numpy()).tolist())


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
