"""protocol=mteb for the kinds measured on audio embeddings alone (zsa_eval.tasks.mteb_kinds lists them): how the
evaluated items of a clustering, pair-classification or reranking dataset become the dataset of an mteb task of that
kind (AbsTaskClustering; AbsTaskPairClassification; AbsTaskRetrieval of type AudioReranking), as its own load_data
would leave it.

Audio cells hold item ids (mteb_kinds.EmbeddingLookup answers each with zsa-eval's embedding of that clip); cluster
labels are class indices, pair labels 0/1 integers. Each subset of the task holds the items of that `hf_subset`
(dataset=mteb's column), a task of one subset all of them; the split is the task's evaluation split. A pair with a
skipped clip is left out; a reranking query ranks its evaluated candidates (every evaluated document when it lists
none) and counts its evaluated positives."""

from __future__ import annotations

from typing import Any

import pandas as pd

from zsa_eval.data.items import DOCUMENT, QUERY
from zsa_eval.tasks.pair_classification import complete_pairs
from zsa_eval.tasks.reranking import ids_of


def by_subset(task: Any, items: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The items of each of the task's subsets: by their `hf_subset` where they name one, else every item in the
    task's one subset."""
    if "hf_subset" in items:
        return {str(subset): rows.reset_index(drop=True) for subset, rows in items.groupby("hf_subset", sort=False)}
    return {task.hf_subsets[0]: items.reset_index(drop=True)}


def in_eval_split(task: Any, columns: dict[str, list]):
    """A DatasetDict holding `columns` as the task's evaluation split."""
    from datasets import Dataset, DatasetDict
    return DatasetDict({task.metadata.eval_splits[0]: Dataset.from_dict(columns)})


def clustering_dataset(task: Any, items: pd.DataFrame, class_names: list[str]) -> dict:
    """AbsTaskClustering: each clip and its label's class index."""
    return {subset: in_eval_split(task, {
        task.input_column_name: rows["item_id"].tolist(),
        task.label_column_name: pd.Categorical(rows["label"], categories=class_names).codes.tolist()})
        for subset, rows in by_subset(task, items).items()}


def pair_dataset(task: Any, items: pd.DataFrame, class_names: list[str]) -> dict:
    """AbsTaskPairClassification: each complete pair's two clips and its 0/1 label."""
    datasets = {}
    for subset, rows in by_subset(task, items).items():
        pairs = complete_pairs(rows)
        ids = rows["item_id"].to_numpy(dtype=object)
        datasets[subset] = in_eval_split(task, {task.input1_column_name: ids[pairs["row_1"]].tolist(),
                                                task.input2_column_name: ids[pairs["row_2"]].tolist(),
                                                task.label_column_name: pairs["label"].astype(int).tolist()})
    return datasets


def reranking_split(modality: str, rows: pd.DataFrame) -> dict:
    """One subset's queries, corpus, relevant documents and candidates (top_ranked) in mteb's retrieval format."""
    from datasets import Dataset
    documents = rows.loc[rows["role"] == DOCUMENT, "item_id"].tolist()
    evaluated = set(documents)
    queries = rows[rows["role"] == QUERY]
    return {
        "queries": Dataset.from_dict({"id": queries["item_id"].tolist(), modality: queries["item_id"].tolist()}),
        "corpus": Dataset.from_dict({"id": documents, modality: documents}),
        "relevant_docs": {query.item_id: {document: 1 for document in ids_of(query.positives) if document in evaluated}
                          for query in queries.itertuples(index=False)},
        "top_ranked": {query.item_id: [document for document in ids_of(query.candidates) if document in evaluated]
                       or documents for query in queries.itertuples(index=False)},
    }


def reranking_dataset(task: Any, items: pd.DataFrame, class_names: list[str]) -> dict:
    """AbsTaskRetrieval (AudioReranking): the query clips, the document clips, each query's positives and its
    candidates."""
    return {subset: {task.metadata.eval_splits[0]: reranking_split(task.metadata.modalities[0], rows)}
            for subset, rows in by_subset(task, items).items()}


def in_test_split(items: pd.DataFrame, class_names: list[str]) -> dict:
    """A task built for a local dataset evaluates every item as its test split."""
    return {"eval_splits": ["test"]}
