"""Local folders whose items are evaluated in relation to each other, read into the item tables the tasks take
(zsa_eval.tasks.pair_classification, zsa_eval.tasks.reranking; `dataset=mteb` builds the same tables):

- a pairs folder (`load_pairs_folder`): audio files plus a CSV of pairs, one row per pair naming its two files and
  its 0/1 label. Each pair becomes two item rows, `<pair_id>:1` and `<pair_id>:2`, with columns pair_id, pair_side
  ("1" or "2") and the pair's label.
- a reranking folder (`load_rerank_folder`): audio files plus a CSV of queries, one row per query naming its file,
  its positives and (optionally) its candidates, file names joined by "|". Every file named as a positive or a
  candidate is a document (item id: its file name); each query is an item `query:<file>`. Item rows carry `role`
  (query or document); a query row its `positives` and `candidates` (document item ids joined by "|"; empty
  candidates: every document).

Whether the tables hold together (both sides of each pair, positives among the documents) is checked by the tasks,
whatever loader made them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from zsa_eval.data.items import (DOCUMENT, ID_SEPARATOR, PAIR_CLASSIFICATION, QUERY, RERANKING, AudioDataset,
                                 require_path)
from zsa_eval.data.listing import FolderListing, list_folder, unlisted_files
from zsa_eval.errors import UserError

PAIR_LABELS = ("0", "1")
NO_SELECTION = ("classes", "folds", "subset")  # selection keys a linked dataset has nothing to select by


def read_table(file: Path, columns: Sequence[str], keys: Sequence[str], what: str) -> pd.DataFrame:
    """A CSV of text cells (missing cells empty) that has `columns` (named by the config `keys`)."""
    if not file.is_file():
        raise UserError(f"{file} not found: a {what} folder holds its audio and {file.name} (or set the file's "
                        "name in the dataset config)")
    try:
        table = pd.read_csv(file, dtype=str, keep_default_na=False)
    except ValueError as error:
        raise UserError(f"cannot read {file} ({error}); write a CSV with a header row") from error
    for column, key in zip(columns, keys):
        if column not in table.columns:
            raise UserError(f"{file.name} has no column {column!r}; set dataset.{key} to one of "
                            f"{sorted(map(str, table.columns))}")
    return table


def refuse_selection(name: str, selection: dict, task: str, own_task: str) -> None:
    """Class, fold and subset selection have nothing to select in pairs or queries, and their task is their own."""
    if task != own_task:
        raise UserError(f"dataset={name} holds {'pairs' if own_task == PAIR_CLASSIFICATION else 'queries'}: its task "
                        f"is {own_task}, not {task}; drop dataset.task")
    chosen = [key for key in NO_SELECTION if selection.get(key) is not None]
    if chosen:
        raise UserError(f"dataset.{chosen[0]} selects classes or folds, which dataset={name} (pairs or queries) does "
                        f"not have; drop dataset.{chosen[0]} (use limit=N for fewer pairs or queries)")


def dataset_of(name: str, root: Path, items: pd.DataFrame, class_names: list[str], task: str,
               listing: FolderListing, table_file: Path) -> AudioDataset:
    """The AudioDataset of a linked folder's item rows (clips read from their paths)."""
    items = items.assign(fold=pd.NA, group=pd.Series(pd.NA, index=items.index, dtype=object))
    paths = items["path"].tolist()
    return AudioDataset(name, class_names, items.reset_index(drop=True), paths,
                        pd.DataFrame(columns=["item_id", "path", "label"]),
                        ignored_files=unlisted_files(listing, paths, table_file), source=str(root), task=task)


def load_pairs_folder(name: str, path: str | None, pairs_file: str = "pairs.csv", first_column: str = "audio1",
                      second_column: str = "audio2", label_column: str = "label", follow_symlinks: bool = False,
                      extensions: Sequence[str] | None = None, task: str = PAIR_CLASSIFICATION,
                      **selection) -> AudioDataset:
    """Audio files plus `pairs_file`: one row per pair, its two files (relative to the folder) and its label, 1 for
    a matching pair and 0 for another; the pair's id is its `pair_id` column where the file has one, else its row
    number (from 0)."""
    refuse_selection(name, selection, task, PAIR_CLASSIFICATION)
    root = require_path(path, name, "a folder of audio with its pairs.csv")
    table = read_table(root / pairs_file, (first_column, second_column, label_column),
                       ("first_column", "second_column", "label_column"), "pairs")
    pair_ids = table["pair_id"] if "pair_id" in table.columns else pd.Series(map(str, range(len(table))))
    if pair_ids.duplicated().any():
        raise UserError(f"{pairs_file} names pair {pair_ids[pair_ids.duplicated()].iloc[0]!r} twice: give each pair "
                        "its own pair_id")
    rows = []
    for row, (pair_id, first, second, label) in enumerate(zip(pair_ids, table[first_column], table[second_column],
                                                              table[label_column].str.strip())):
        for side, file, column in (("1", first, first_column), ("2", second, second_column)):
            if not file.strip():
                raise UserError(f"{pairs_file} row {row + 2} (pair {pair_id!r}) has no {column}: each pair names "
                                "both of its files")
            rows.append({"item_id": f"{pair_id}:{side}", "path": str(root / file), "label": label,
                         "pair_id": pair_id, "pair_side": side})
        if label not in PAIR_LABELS:
            raise UserError(f"{pairs_file} row {row + 2} (pair {pair_id!r}) has label {label!r}: a pair's "
                            f"{label_column} is 1 (the two clips match) or 0 (they do not)")
    if not rows:
        raise UserError(f"{root / pairs_file} lists no pairs: write one row per pair")
    listing = list_folder(root, follow_symlinks, extensions)
    return dataset_of(name, root, pd.DataFrame(rows), list(PAIR_LABELS), task, listing, root / pairs_file)


def file_names(cell: str) -> list[str]:
    """The file names of one cell, joined by "|" (blank ones dropped)."""
    return [name.strip() for name in cell.split(ID_SEPARATOR) if name.strip()]


def load_rerank_folder(name: str, path: str | None, queries_file: str = "queries.csv", query_column: str = "query",
                       positives_column: str = "positives", candidates_column: str = "candidates",
                       follow_symlinks: bool = False, extensions: Sequence[str] | None = None,
                       task: str = RERANKING, **selection) -> AudioDataset:
    """Audio files plus `queries_file`: one row per query, its file, its positives and its candidates (file names
    relative to the folder, joined by "|"; no candidates column, or an empty cell: the query ranks every
    document). The documents are the files named as positives or candidates, in order of first mention."""
    refuse_selection(name, selection, task, RERANKING)
    root = require_path(path, name, "a folder of audio with its queries.csv")
    table = read_table(root / queries_file, (query_column, positives_column), ("query_column", "positives_column"),
                       "reranking")
    candidates = table[candidates_column] if candidates_column in table.columns else pd.Series([""] * len(table))
    queries, documents = [], {}
    for query, positives, candidates_cell in zip(table[query_column].str.strip(), table[positives_column],
                                                 candidates):
        if not query:
            raise UserError(f"{queries_file} has a row without a {query_column}: each row names its query's file")
        if any(earlier["item_id"] == f"query:{query}" for earlier in queries):
            raise UserError(f"{queries_file} names query {query!r} twice: give each query one row, its positives "
                            "joined by |")
        named = file_names(positives) + file_names(candidates_cell)
        documents |= dict.fromkeys(named)
        queries.append({"item_id": f"query:{query}", "path": str(root / query), "label": "", "role": QUERY,
                        "positives": ID_SEPARATOR.join(file_names(positives)),
                        "candidates": ID_SEPARATOR.join(file_names(candidates_cell))})
    if not queries:
        raise UserError(f"{root / queries_file} lists no queries: write one row per query")
    rows = queries + [{"item_id": file, "path": str(root / file), "label": "", "role": DOCUMENT, "positives": "",
                       "candidates": ""} for file in documents]
    listing = list_folder(root, follow_symlinks, extensions)
    return dataset_of(name, root, pd.DataFrame(rows), [], task, listing, root / queries_file)
