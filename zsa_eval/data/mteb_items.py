"""An mteb task's loaded data (`task.dataset` after mteb's own `load_data`) as the item table of its zsa-eval task.

Every table adds `split` (mteb's split of the row) and `hf_subset` (its subset, "default" for a task without);
item ids are `<split>/<row>` (`<subset>/<split>/<row>` when the task has several subsets), or mteb's own ids for
retrieval and reranking. Per kind:
- zeroshot: the eval split; class names are mteb's candidate texts (`get_candidate_labels()`), in label order;
- classification, multilabel: the eval split, and for a train/test task (not cross-validation) the train split
  too, its `fold` the split's name; class names are the label column's ClassLabel names in index order (class i is
  mteb's label i), else the labels present as text;
- clustering: the eval split, labelled as classification;
- a2t/t2a retrieval: one item per audio, its `caption_ids` the ids of the texts mteb's qrels relate to it and
  `caption_texts` those texts as mteb has them, its `captions` the same without blank texts (zsa-eval's retrieval
  drops those; mteb's ClothoT2ARetrieval has some); an audio query without any text (mteb drops those) is left out;
- pair_classification: two rows per pair (`<pair_id>:1`, `<pair_id>:2`), label "0" or "1";
- reranking: query rows (`query:<id>`, their `positives` and `candidates` by mteb's qrels and top_ranked) and
  document rows (`<id>`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from zsa_eval.audio import AudioSource
from zsa_eval.data.hub import HubAudio, class_label_of
from zsa_eval.data.items import (CLASSIFICATION, CLUSTERING, DOCUMENT, ID_SEPARATOR, MULTILABEL, PAIR_CLASSIFICATION,
                                 QUERY, RERANKING, RETRIEVAL, AudioDataset, Selection, build_dataset,
                                 build_retrieval_dataset)
from zsa_eval.errors import UserError

ZEROSHOT, A2T, T2A = "zeroshot", "retrieval_a2t", "retrieval_t2a"
TASK_OF_KIND = {  # an mteb kind (a catalog config's `mteb_tasks:` key) -> the zsa-eval task (dataset `task:`)
    ZEROSHOT: CLASSIFICATION, "classification": CLASSIFICATION, MULTILABEL: MULTILABEL, A2T: RETRIEVAL,
    T2A: RETRIEVAL, CLUSTERING: CLUSTERING, PAIR_CLASSIFICATION: PAIR_CLASSIFICATION, RERANKING: RERANKING,
}
MTEB_COLUMNS = ["split", "hf_subset"]
NO_EXCLUDED = ["item_id", "path", "label"]


class Stacked(Sequence):
    """Several sequences of clips read as one, in order (picklable when they are)."""

    def __init__(self, parts: Sequence[Sequence[AudioSource]]):
        self.parts = list(parts)
        self.ends = np.cumsum([len(part) for part in self.parts], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, index: int) -> AudioSource:
        part = int(np.searchsorted(self.ends, index, side="right"))
        return self.parts[part][index - (int(self.ends[part - 1]) if part else 0)]


def all_rows(data) -> range:
    return range(len(data))


def subset_data(task, subset: str):
    """A subset's splits, as mteb's evaluate finds them (a task without subsets keeps its splits at the top)."""
    return task.dataset if subset not in task.dataset and subset == "default" else task.dataset[subset]


def parts_of(task, splits: Sequence[str]) -> list[tuple[str, str, Any]]:
    """(subset, split, data) for every chosen subset and each of `splits`."""
    return [(subset, split, subset_data(task, subset)[split]) for subset in task.hf_subsets for split in splits]


def id_prefix(task, subset: str, split: str) -> str:
    return f"{subset}/{split}/" if len(task.hf_subsets) > 1 else f"{split}/"


def class_names_of(feature, labels: pd.Series) -> list[str]:
    """A ClassLabel's names in index order, else the labels present in their order (integer codes by value, so that
    codes 0..n-1 keep their index), as text."""
    found = class_label_of(feature)
    return list(found.names) if found is not None else [str(label) for label in sorted(set(labels))]


def label_texts(labels: pd.Series, feature, candidates: list[str] | None) -> pd.Series:
    """Each row's label as its class name: a candidate text (zero-shot), a ClassLabel name, or the value as text."""
    found = class_label_of(feature)
    names = candidates if candidates is not None else found.names if found is not None else None
    return labels.map(lambda value: names[int(value)]) if names is not None else labels.astype(str)


def labelled_table(task, kind: str, label_column: str, splits: Sequence[str], candidates: list[str] | None,
                   ) -> tuple[pd.DataFrame, Sequence[AudioSource], list[str]]:
    """One row per clip of the chosen subsets and splits (item_id, label, split, hf_subset), their clips, and the
    class names."""
    tables, clips, names = [], [], []
    for subset, split, data in parts_of(task, splits):
        feature = data.features[label_column]
        labels = pd.Series(data[label_column], dtype=object)
        if kind == MULTILABEL:
            inner = class_label_of(feature)
            labels = labels.map(lambda row: [inner.names[int(i)] if inner else str(i) for i in row])
            names += inner.names if inner else sorted({label for row in labels for label in row})
        else:
            names += candidates if candidates is not None else class_names_of(feature, labels)
            labels = label_texts(labels, feature, candidates)
        prefix = id_prefix(task, subset, split)
        tables.append(pd.DataFrame({"item_id": [f"{prefix}{row}" for row in all_rows(data)], "label": labels,
                                    "split": split, "hf_subset": subset}))
        clips.append(HubAudio(data, task.input_column_name, all_rows(data)))
    return pd.concat(tables, ignore_index=True), Stacked(clips), list(dict.fromkeys(names))


def with_mteb_columns(dataset: AudioDataset, table: pd.DataFrame, columns: Sequence[str] = ()) -> AudioDataset:
    """The dataset's items with the table's split and hf_subset (and `columns`) of each item id."""
    extra = table.set_index("item_id")[[*MTEB_COLUMNS, *columns]]
    return replace(dataset, items=dataset.items.join(extra, on="item_id"))


def labelled_items(kind: str, name: str, task, label_column: str | None, selection: dict) -> AudioDataset:
    """Zero-shot, classification, multi-label and clustering tasks: clips with one label (or a label set)."""
    column = label_column or task.label_column_name
    eval_splits = list(task.eval_splits)
    train_test = kind in ("classification", MULTILABEL) and not getattr(task, "is_cross_validation", False)
    splits = [task.train_split, *eval_splits] if train_test and task.train_split not in eval_splits else eval_splits
    candidates = list(task.get_candidate_labels()) if kind == ZEROSHOT else None
    table, clips, names = labelled_table(task, kind, column, splits, candidates)
    classes = selection.pop("classes", None) or names
    dataset = build_dataset(name, table, table["item_id"], table["item_id"], lambda rows: Selection(clips, rows),
                            label_column="label", fold_column="split" if len(splits) > 1 else None,
                            task=TASK_OF_KIND[kind], classes=classes, **selection)
    return with_mteb_columns(dataset, table)


def pair_items(name: str, task, label_column: str | None) -> AudioDataset:
    """Pair classification: both clips of each pair, as two rows (the pair's first clip, then its second)."""
    tables, clips, positions = [], [], []
    for subset, split, data in parts_of(task, task.eval_splits):
        pairs = [f"{id_prefix(task, subset, split)}{row}" for row in all_rows(data)]
        labels = [str(int(label)) for label in data[label_column or task.label_column_name]]
        tables.append(pd.DataFrame({"item_id": [f"{pair}:{side}" for pair in pairs for side in ("1", "2")],
                                    "label": np.repeat(labels, 2), "pair_id": np.repeat(pairs, 2),
                                    "pair_side": ["1", "2"] * len(pairs), "split": split, "hf_subset": subset}))
        start = sum(map(len, clips))
        positions += [start + side * len(pairs) + row for row in all_rows(data) for side in (0, 1)]
        clips += [HubAudio(data, column, all_rows(data))
                  for column in (task.input1_column_name, task.input2_column_name)]
    items = pd.concat(tables, ignore_index=True)
    items = items.assign(path=items["item_id"], fold=pd.NA, group=pd.Series(pd.NA, index=items.index, dtype=object))
    return AudioDataset(name, ["0", "1"], items, Selection(Stacked(clips), positions),
                        pd.DataFrame(columns=NO_EXCLUDED), task=PAIR_CLASSIFICATION)


def relevant(scores: dict) -> list[str]:
    """The ids mteb's qrels mark relevant (a score above 0), in their order."""
    return [str(doc) for doc, score in scores.items() if score > 0]


def retrieval_parts(task) -> list[tuple[str, str, dict]]:
    return [(subset, split, subset_data(task, subset)[split]) for subset in task.hf_subsets
            for split in task.eval_splits]


def retrieval_items(kind: str, name: str, task, caption_column: str) -> AudioDataset:
    """a2t or t2a retrieval: each audio with the texts mteb's qrels relate to it."""
    tables, clips = [], []
    for subset, split, data in retrieval_parts(task):
        audio, texts = (data["queries"], data["corpus"]) if kind == A2T else (data["corpus"], data["queries"])
        text_of = dict(zip(map(str, texts["id"]), texts["text"]))
        captions_of: dict[str, list[str]] = {str(audio_id): [] for audio_id in audio["id"]}
        for query, scores in data["relevant_docs"].items():
            pairs = [(str(query), doc) for doc in relevant(scores)] if kind == A2T else \
                [(doc, str(query)) for doc in relevant(scores)]
            for audio_id, text_id in pairs:
                captions_of.setdefault(audio_id, []).append(text_id)
        audio_ids = [str(audio_id) for audio_id in audio["id"]]
        rows = [row for row, audio_id in enumerate(audio_ids) if kind != A2T or captions_of[audio_id]]
        ids = [audio_ids[row] for row in rows]
        prefix = f"{subset}/" if len(task.hf_subsets) > 1 else ""
        tables.append(pd.DataFrame({"item_id": [prefix + audio_id for audio_id in ids],
                                    "caption_ids": [captions_of[audio_id] for audio_id in ids],
                                    "caption_texts": [[text_of[text] for text in captions_of[audio_id]]
                                                      for audio_id in ids],
                                    "split": split, "hf_subset": subset}))
        clips.append(HubAudio(audio, "audio", rows))
    table, stacked = pd.concat(tables, ignore_index=True), Stacked(clips)
    table[caption_column] = table["caption_texts"]  # build_retrieval_dataset drops the blank ones
    dataset = build_retrieval_dataset(name, table, table["item_id"], table["item_id"],
                                      lambda rows: Selection(stacked, rows), caption_column=caption_column)
    return with_mteb_columns(replace(dataset, task=RETRIEVAL), table, ["caption_ids", "caption_texts"])


def reranking_items(name: str, task) -> AudioDataset:
    """Reranking: each query (with positives among its candidates) and every document, as rows with a role."""
    tables, clips = [], []
    for subset, split, data in retrieval_parts(task):
        prefix = f"{subset}/" if len(task.hf_subsets) > 1 else ""
        queries, corpus, ranked = data["queries"], data["corpus"], data.get("top_ranked") or {}
        positives = {str(query): relevant(scores) for query, scores in data["relevant_docs"].items()}
        query_ids = [str(query) for query in queries["id"]]
        kept = [row for row, query in enumerate(query_ids) if positives.get(query)]

        def joined(ids: Sequence[str]) -> str:
            return ID_SEPARATOR.join(prefix + str(doc) for doc in ids)

        kept_ids = [query_ids[row] for row in kept]
        tables += [pd.DataFrame({"item_id": [f"query:{prefix}{query}" for query in kept_ids], "role": QUERY,
                                 "positives": [joined(positives[query]) for query in kept_ids],
                                 "candidates": [joined(ranked.get(query, [])) for query in kept_ids]}),
                   pd.DataFrame({"item_id": [prefix + str(doc) for doc in corpus["id"]], "role": DOCUMENT,
                                 "positives": "", "candidates": ""})]
        for table in tables[-2:]:
            table[MTEB_COLUMNS] = split, subset
        clips += [HubAudio(queries, "audio", kept), HubAudio(corpus, "audio", all_rows(corpus))]
    items = pd.concat(tables, ignore_index=True).assign(
        path=lambda rows: rows["item_id"], label="", fold=pd.NA,
        group=lambda rows: pd.Series(pd.NA, index=rows.index, dtype=object))
    return AudioDataset(name, [], items, Stacked(clips), pd.DataFrame(columns=NO_EXCLUDED), task=RERANKING)


def items_of_kind(kind: str, name: str, task, label_column: str | None, caption_column: str,
                  selection: dict) -> AudioDataset:
    """The item table of a loaded mteb task of `kind` (zsa_eval.data.mteb_tasks.mteb_kind)."""
    if kind in (A2T, T2A):
        return retrieval_items(kind, name, task, caption_column)
    chosen = [key for key in ("classes", "folds", "subset") if selection.get(key) is not None]
    if kind in (PAIR_CLASSIFICATION, RERANKING) and chosen:
        raise UserError(f"dataset.{chosen[0]} selects classes or folds, which mteb task {task.metadata.name} "
                        f"({kind}: pairs or queries) does not have; drop dataset.{chosen[0]}")
    if kind == PAIR_CLASSIFICATION:
        return pair_items(name, task, label_column)
    if kind == RERANKING:
        return reranking_items(name, task)
    return labelled_items(kind, name, task, label_column, selection)
