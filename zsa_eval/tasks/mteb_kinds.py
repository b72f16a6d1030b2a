"""The kinds of mteb evaluation protocol=mteb runs (zsa_eval.tasks.mteb_protocol), and for each how zsa-eval's
evaluated items become the dataset of an mteb task (the `task.dataset` its own `load_data` would fill from the Hub).

- **A kind** (`Kind`): the zsa-eval dataset tasks that can give it, the mteb task types it evaluates, whether it
  compares audio with text, the mteb task whose evaluator a dataset without one of its own borrows (`template`), and
  `build`: (mteb task, evaluated items, class names) -> that task's dataset. KINDS lists them by name (the names of a
  dataset config's `mteb_tasks` keys); `kind_of` names the kind of an mteb task.
- **Clips as mteb sees them**: each audio cell holds the clip's item id, not its samples. The model mteb is handed
  (`EmbeddingLookup`) answers with the embedding zsa-eval already computed for that item (engine and cache), so
  nothing in mteb decodes, resamples or crops a clip: mteb's evaluator sees exactly zsa-eval's embeddings, and the
  texts it asks for (its own prompts, the captions) are embedded by the family as mteb writes them.
- **Splits**: a cross-validation task (`is_cross_validation`) gets every item in its one split; a train/test task the
  items of its train split and of its evaluation split, named by the items' `split` column (dataset=mteb) or their
  fold (a dataset whose folds are named train and test); labels are indices into the dataset's class names.
- **A task built for a local dataset** (`built_task`): the template's class and metadata renamed for the dataset. A
  classification dataset is cross-validated as mteb cross-validates ESC-50 (5 shuffled KFold splits, seed 42, its
  official folds ignored) unless its items name a train and a test split; then mteb's train/test protocol (8 clips
  per label drawn `n_experiments`=10 times). Zero-shot prompts are mteb's ESC-50 form, "This is a sound of {}" with
  the class name as stored (underscores kept, no period)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from zsa_eval.errors import UserError
from zsa_eval.tasks.mteb_embedded import clustering_dataset, in_test_split, pair_dataset, reranking_dataset

TRAIN, TEST = "train", "test"
DEFAULT_SUBSET = "default"
ZERO_SHOT_PROMPT = "This is a sound of {}"  # mteb's ESC50_Zeroshot and UrbanSound8kZeroshot prompt
AUDIO = "audio"  # the column (and modality) of the clips in every dataset built here


def split_names(items: pd.DataFrame) -> pd.Series | None:
    """Each item's split as mteb names it: the `split` column (dataset=mteb), or the fold where the folds are named
    train and test; None when the items name no train split."""
    column = items["split"] if "split" in items else items["fold"].astype("string")
    return column.astype(str) if (column == TRAIN).any() else None


def class_targets(items: pd.DataFrame, class_names: list[str]) -> list[int]:
    """Each item's label as the index of its class."""
    index = {name: position for position, name in enumerate(class_names)}
    return [index[label] for label in items["label"]]


def label_sets(items: pd.DataFrame, class_names: list[str]) -> list[list[int]]:
    """Each item's label set as indices of its classes (multi-label)."""
    index = {name: position for position, name in enumerate(class_names)}
    return [[index[label] for label in labels] for labels in items["labels"]]


def mteb_datasets():
    """The `datasets` classes an mteb task's dataset is made of (imported when a task is built, not with zsa-eval)."""
    from datasets import Dataset, DatasetDict
    return Dataset, DatasetDict


def split_dataset(task: Any, items: pd.DataFrame, columns: dict[str, list], needs_train: bool) -> dict:
    """`task.dataset` of a classification kind: the items' columns per split (a task that needs no train split:
    every item, or the items of its evaluation split where they name splits); one line when a needed split has no
    item."""
    Dataset, DatasetDict = mteb_datasets()
    evaluated = task.metadata.eval_splits[0]
    named = split_names(items)
    splits = [task.train_split, evaluated] if needs_train else [evaluated]
    rows = {split: np.ones(len(items), bool) if named is None else (named == split).to_numpy()
            for split in dict.fromkeys(splits)}
    empty = [split for split, kept in rows.items() if not kept.any()]
    if (needs_train and named is None) or empty:
        held = "name no splits" if named is None else f"hold no clip of {' or '.join(map(repr, empty))}"
        sides = f"trains on its {task.train_split!r} split and tests on {evaluated!r}" if needs_train \
            else f"tests on its {evaluated!r} split"
        raise UserError(f"mteb's {task.metadata.name} {sides}, and this dataset's items {held}: use dataset=mteb "
                        f"dataset.task_name={task.metadata.name}, or a dataset whose folds are named train and test")
    return {DEFAULT_SUBSET: DatasetDict({split: Dataset.from_dict(
        {name: [value for value, row in zip(values, kept) if row] for name, values in columns.items()})
        for split, kept in rows.items()})}


def classification_dataset(task: Any, items: pd.DataFrame, class_names: list[str]) -> dict:
    """AbsTaskClassification: clips and class indices; one split when cross-validated, else train and test."""
    columns = {task.input_column_name: items["item_id"].tolist(),
               task.label_column_name: class_targets(items, class_names)}
    return split_dataset(task, items, columns, needs_train=not task.is_cross_validation)


def multilabel_dataset(task: Any, items: pd.DataFrame, class_names: list[str]) -> dict:
    """AbsTaskMultilabelClassification: clips and their label sets (class indices), train and test."""
    columns = {task.input_column_name: items["item_id"].tolist(),
               task.label_column_name: label_sets(items, class_names)}
    return split_dataset(task, items, columns, needs_train=True)


def normalized_label(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


def candidate_of_class(candidates: list[str], class_names: list[str], task_name: str) -> dict[str, int]:
    """Each class's index among mteb's zero-shot candidate texts: the candidate that is the class name, or that is
    it once the words every candidate shares at its start and end are taken off (compared in lower case,
    underscores as spaces). A class no candidate names is one line."""
    words = [normalized_label(candidate).split() for candidate in candidates]
    start = len(os.path.commonprefix(words)) if len(words) > 1 else 0
    end = len(os.path.commonprefix([list(reversed(candidate)) for candidate in words])) if len(words) > 1 else 0
    cores = {" ".join(candidate[start:len(candidate) - end]): index for index, candidate in enumerate(words)}
    cores |= {" ".join(candidate): index for index, candidate in enumerate(words)}
    found = {name: cores.get(normalized_label(name)) for name in class_names}
    missing = [name for name, index in found.items() if index is None]
    if missing:
        raise UserError(f"mteb's {task_name} has no candidate label for {len(missing)} class(es) of this dataset "
                        f"({', '.join(map(repr, missing[:5]))}): use dataset=mteb dataset.task_name={task_name}, or "
                        "no mteb task (protocol.mteb_task=null, dataset.mteb_tasks.zeroshot=null) for a zero-shot "
                        "task built from this dataset's class names")
    return found


def zero_shot_dataset(task: Any, items: pd.DataFrame, class_names: list[str]) -> dict:
    """AbsTaskZeroShotClassification: clips and the index of their class's candidate text, in the evaluation
    split."""
    position = candidate_of_class(task.get_candidate_labels(), class_names, task.metadata.name)
    columns = {task.input_column_name: items["item_id"].tolist(),
               task.label_column_name: [position[label] for label in items["label"]]}
    return split_dataset(task, items, columns, needs_train=False)


def caption_rows(items: pd.DataFrame) -> pd.DataFrame:
    """One row per (clip, caption) of the items: caption_id, item_id, caption. Captions as mteb holds them where
    the items carry them (dataset=mteb: `caption_ids` and `caption_texts`, blank ones included), else zsa-eval's
    (`captions`, named `<item_id>#<n>` as zsa-eval's retrieval names them)."""
    if "caption_ids" in items:
        clips = zip(items["item_id"], items["caption_ids"], items["caption_texts"])
        rows = [(caption_id, item_id, text) for item_id, ids, texts in clips for caption_id, text in zip(ids, texts)]
    else:
        clips = zip(items["item_id"], items["captions"])
        rows = [(f"{item_id}#{number}", item_id, caption) for item_id, captions in clips
                for number, caption in enumerate(captions)]
    return pd.DataFrame(rows, columns=["caption_id", "item_id", "caption"])


def retrieval_dataset(audio_queries: bool) -> Callable[[Any, pd.DataFrame, list[str]], dict]:
    """AbsTaskRetrieval (Any2AnyRetrieval) over the clips and their captions: audio queries retrieving captions
    (a2t), or caption queries retrieving clips (t2a); each caption is relevant to its clip."""
    def build(task: Any, items: pd.DataFrame, class_names: list[str]) -> dict:
        Dataset, _ = mteb_datasets()
        captions = caption_rows(items)
        clips = Dataset.from_dict({"id": items["item_id"].tolist(), AUDIO: items["item_id"].tolist()})
        distinct = captions.drop_duplicates("caption_id")  # a text relevant to several clips is one text
        texts = Dataset.from_dict({"id": distinct["caption_id"].tolist(), "text": distinct["caption"].tolist()})
        pairs = zip(captions["item_id"], captions["caption_id"])
        relevant: dict[str, dict[str, int]] = {}
        for item_id, caption_id in pairs:
            query, document = (item_id, caption_id) if audio_queries else (caption_id, item_id)
            relevant.setdefault(query, {})[document] = 1
        queries, corpus = (clips, texts) if audio_queries else (texts, clips)
        return {DEFAULT_SUBSET: {task.metadata.eval_splits[0]: {"queries": queries, "corpus": corpus,
                                                                 "relevant_docs": relevant, "top_ranked": None}}}
    return build


@dataclass(frozen=True)
class Kind:
    """One kind of mteb evaluation: which zsa-eval dataset tasks give it, which mteb task types (and categories)
    it evaluates, whether it embeds texts, the mteb task whose evaluator a local dataset borrows, and how the
    items become that task's dataset."""

    name: str
    dataset_tasks: tuple[str, ...]
    mteb_types: tuple[tuple[str, str | None], ...]  # (metadata.type, metadata.category or None for any)
    compares_text: bool
    template: str
    build: Callable[[Any, pd.DataFrame, list[str]], dict]
    local: Callable[[pd.DataFrame, list[str]], dict] = lambda items, class_names: {}  # a built task's attributes
    scores: Callable[[Any], list[str]] = lambda task: [task.metadata.main_score]  # the names of mteb's scalar scores


def typed_scores(module: str, typed_dict: str) -> Callable[[Any], list[str]]:
    """The score names of an mteb evaluator's result type (a TypedDict of mteb.abstasks)."""
    def names(task: Any) -> list[str]:
        from importlib import import_module
        return list(getattr(import_module(f"mteb.abstasks.{module}"), typed_dict).__annotations__)
    return names


def retrieval_scores(task: Any) -> list[str]:
    """The ranking scores mteb's retrieval evaluator gives at each of the task's k."""
    return [f"{name}_at_{k}" for name in ("ndcg", "map", "recall", "precision", "mrr", "hit_rate")
            for k in task.k_values]


def local_classification(items: pd.DataFrame, class_names: list[str]) -> dict:
    """A classification dataset of mteb's making: cross-validated unless its items name train and test splits."""
    splits = split_names(items)
    paired = splits is not None and (splits == TEST).any()
    return {"is_cross_validation": not paired, "eval_splits": [TEST if paired else TRAIN]}


def local_zero_shot(items: pd.DataFrame, class_names: list[str]) -> dict:
    """mteb's ESC-50 prompt around each class name as stored; the evaluation split is every item."""
    candidates = [ZERO_SHOT_PROMPT.format(name) for name in class_names]
    return {"get_candidate_labels": lambda self: candidates, "eval_splits": [TEST if split_names(items) is not None
                                                                             else TRAIN]}


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("zeroshot", ("classification",), (("AudioZeroshotClassification", None),), True, "ESC50_Zeroshot",
         zero_shot_dataset, local_zero_shot, typed_scores("zeroshot_classification", "ZeroShotClassificationMetrics")),
    Kind("classification", ("classification",), (("AudioClassification", None),), False, "ESC50",
         classification_dataset, local_classification, typed_scores("classification", "ClassificationMetrics")),
    Kind("multilabel", ("multilabel",), (("AudioMultilabelClassification", None),), False, "FSD50K",
         multilabel_dataset, in_test_split,
         typed_scores("multilabel_classification", "MultilabelClassificationMetrics")),
    Kind("retrieval_a2t", ("retrieval",), (("Any2AnyRetrieval", "a2t"),), True, "AudioCapsA2TRetrieval",
         retrieval_dataset(audio_queries=True), in_test_split, retrieval_scores),
    Kind("retrieval_t2a", ("retrieval",), (("Any2AnyRetrieval", "t2a"),), True, "AudioCapsT2ARetrieval",
         retrieval_dataset(audio_queries=False), in_test_split, retrieval_scores),
    Kind("clustering", ("clustering",), (("AudioClustering", None),), False, "CREMA_DClustering",
         clustering_dataset, in_test_split),
    Kind("pair_classification", ("pair_classification",), (("AudioPairClassification", None),), False,
         "CREMADPairClassification", pair_dataset, in_test_split),
    Kind("reranking", ("reranking",), (("AudioReranking", None),), False, "GTZANAudioReranking", reranking_dataset,
         in_test_split),
)}
NATURAL_KIND = {"classification": "classification", "multilabel": "multilabel", "retrieval": "retrieval_t2a",
                "clustering": "clustering", "pair_classification": "pair_classification", "reranking": "reranking"}


def kind_of(task: Any) -> Kind | None:
    """The kind of an mteb task (by its type and category), None for one zsa-eval does not evaluate."""
    metadata = task.metadata
    return next((kind for kind in KINDS.values() for mteb_type, category in kind.mteb_types
                 if metadata.type == mteb_type and category in (None, metadata.category)), None)


def built_task(mteb: Any, kind: Kind, dataset_name: str, items: pd.DataFrame, class_names: list[str]) -> Any:
    """An mteb task of `kind` for a local dataset: the template's evaluator, its metadata renamed for the dataset
    and its splits those `kind.local` chooses."""
    template = type(mteb.get_task(kind.template))
    attributes = kind.local(items, class_names)
    metadata = template.metadata.model_copy(update={
        "name": f"{dataset_name}:{kind.name}", "eval_splits": attributes.pop("eval_splits"),
        "description": f"zsa-eval's {dataset_name} evaluated as mteb's {kind.template} is",
        "dataset": {"path": dataset_name, "revision": "local"}})
    return type(template.__name__, (template,), {"metadata": metadata, "input_column_name": AUDIO,
                                                  "label_column_name": "label", **attributes})()


@dataclass
class EmbeddingLookup:
    """An mteb model (mteb's EncoderProtocol) that computes nothing: the audio cells mteb hands it are item ids,
    answered with zsa-eval's embeddings of those clips; texts are embedded by `embed_texts` (the family's text
    tower, as mteb writes them); similarities are mteb's own (`similarity`: cosine or dot, as mteb's ModelMeta
    names them)."""

    audio: dict[str, np.ndarray]
    embed_texts: Callable[[list[str]], np.ndarray]
    mteb_model_meta: Any

    def encode(self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None, prompt_type=None,
               **kwargs) -> np.ndarray:
        """One embedding per input, in order: a clip's as zsa-eval computed it, a text's from the family."""
        parts = [np.stack([self.audio[item_id] for item_id in batch[AUDIO]]) if AUDIO in batch
                 else self.embed_texts(list(batch["text"])) for batch in inputs]
        return np.concatenate(parts)

    def similarity(self, embeddings1, embeddings2):
        from mteb.similarity_functions import select_similarity
        return select_similarity(embeddings1, embeddings2, self.mteb_model_meta.similarity_fn_name)

    def similarity_pairwise(self, embeddings1, embeddings2):
        from mteb.similarity_functions import select_pairwise_similarity
        return select_pairwise_similarity(embeddings1, embeddings2, self.mteb_model_meta.similarity_fn_name)


def lookup_model(audio: dict[str, np.ndarray], embed_texts: Callable[[list[str]], np.ndarray], name: str,
                 similarity: str, with_text: bool) -> EmbeddingLookup:
    """The lookup model, its ModelMeta naming the zsa-eval model, its similarity and modalities."""
    from mteb.models.model_meta import ModelMeta, ScoringFunction
    meta = ModelMeta.create_empty(overwrites={"name": f"zsa-eval/{name}",
                                              "similarity_fn_name": ScoringFunction(similarity),
                                              "modalities": [AUDIO, "text"] if with_text else [AUDIO]})
    return EmbeddingLookup(audio, embed_texts, meta)
