"""Dataset loading into one shape: an item table plus lazily read audio (`AudioDataset`).

What lives where:
- `items`: the item model (`AudioDataset`, `Selection`, the task names), label handling (readable and candidate
  labels, label sets, joined-label checks), `build_dataset` / `build_retrieval_dataset` and the `limit` sample;
- `listing`: every file below a local folder, sorted into audio or ignored with a reason;
- one module per loader, each a config `_target_` under this package's name: `hub` (`load_hub_dataset`),
  `folders` (`load_audiofolder`), `esc50` (`load_esc50_folder`), `synthetic` (`load_synthetic`, and the sound
  writer behind it), `linked` (`load_pairs_folder`, `load_rerank_folder`: pairs and reranking queries),
  `mteb_tasks` (`load_mteb_task`: an mteb task's data, loaded by mteb; `mteb_items` makes its item table).

Every loader takes the item selection (label_column, fold_column, subset_column, folds, subset, classes) from its
dataset config and hands it to `build_dataset` unchanged. Loaders import from `items` and `listing`, never from
this facade, and import `datasets` only when called.
"""

from zsa_eval.data.esc50 import load_esc50_folder
from zsa_eval.data.folders import load_audiofolder
from zsa_eval.data.hub import load_hub_dataset
from zsa_eval.data.items import (
    CLASSIFICATION,
    LABEL_SET_SEPARATOR,
    MULTILABEL,
    RETRIEVAL,
    AudioDataset,
    Selection,
    build_dataset,
    candidate_labels,
    joined_labels_hint,
    label_sets,
    limit_items,
    readable_label,
    stratified_positions,
)
from zsa_eval.data.linked import load_pairs_folder, load_rerank_folder
from zsa_eval.data.mteb_tasks import load_mteb_task
from zsa_eval.data.synthetic import load_synthetic

__all__ = [
    "CLASSIFICATION",
    "LABEL_SET_SEPARATOR",
    "MULTILABEL",
    "RETRIEVAL",
    "AudioDataset",
    "Selection",
    "build_dataset",
    "candidate_labels",
    "joined_labels_hint",
    "label_sets",
    "limit_items",
    "load_audiofolder",
    "load_esc50_folder",
    "load_hub_dataset",
    "load_mteb_task",
    "load_pairs_folder",
    "load_rerank_folder",
    "load_synthetic",
    "readable_label",
    "stratified_positions",
]
