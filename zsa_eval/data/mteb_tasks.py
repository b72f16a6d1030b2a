"""`dataset=mteb dataset.task_name=<mteb task>`: any mteb audio task of a kind zsa-eval evaluates, loaded by mteb
itself (`task.load_data()`: the task's Hub path and pinned revision, its subsets and splits, its own transforms and
subsampling), so the items are exactly the set mteb evaluates; zsa_eval.data.mteb_items turns them into item tables.

Where the data come from, first found: `dataset.path` (a local copy of this task's Hub dataset, its repository's
files as they are: data/*.parquet, README.md), `dataset.mirror` (a folder of such copies named by Hub path,
<mirror>/mteb/crema-d), else the Hugging Face cache at the pinned revision, else the Hub. Without the Hub and
without a copy the load is one line (`TaskUnavailable`), which a sweep such as suite=maeb reports and skips."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from zsa_eval.data.items import AudioDataset
from zsa_eval.data.mteb_items import A2T, T2A, TASK_OF_KIND, ZEROSHOT, items_of_kind
from zsa_eval.errors import TaskUnavailable, UserError
from zsa_eval.hub import cache_only_unless_reachable, offline_mode
from zsa_eval.integrations import import_mteb

FEATURE = "dataset=mteb"
KIND_OF_TYPE = {  # mteb's TaskMetadata.type of an audio task -> its kind
    "AudioZeroshotClassification": ZEROSHOT, "AudioClassification": "classification",
    "AudioMultilabelClassification": "multilabel", "AudioClustering": "clustering",
    "AudioPairClassification": "pair_classification", "AudioReranking": "reranking",
}
RETRIEVAL_CATEGORIES = {"a2t": A2T, "t2a": T2A}  # Any2AnyRetrieval between audio and text


def mteb_kind(metadata) -> str | None:
    """The kind of an mteb task (its TaskMetadata) as zsa-eval evaluates it, or None for a kind it does not (audio
    to audio retrieval, video, image, text-only tasks)."""
    if not set(metadata.modalities) <= {"audio", "text"} or "audio" not in metadata.modalities:
        return None
    if metadata.type == "Any2AnyRetrieval":
        return RETRIEVAL_CATEGORIES.get(metadata.category)
    return KIND_OF_TYPE.get(metadata.type)


def kinds_line() -> str:
    """The mteb task types dataset=mteb takes, as a message names them."""
    return ", ".join(KIND_OF_TYPE) + ", and Any2AnyRetrieval between audio and text (a2t, t2a)"


def named_task(task_name: str | None, benchmark: str | None = None):
    """mteb's task object of that name (as `benchmark` defines it: its subsets and splits, when given), of a kind
    zsa-eval evaluates; one line (with close matches) otherwise."""
    mteb = import_mteb(FEATURE)
    if not task_name:
        raise UserError("dataset=mteb needs the mteb task to load: add dataset.task_name=<mteb task name>, e.g. "
                        "dataset.task_name=CREMA_D (`suite=maeb` lists the MAEB(v1) tasks)")
    try:
        task = benchmark_task(mteb, benchmark, str(task_name)) if benchmark else mteb.get_task(str(task_name))
    except KeyError:
        raise unknown_task(mteb, str(task_name)) from None
    if mteb_kind(task.metadata) is None:
        metadata = task.metadata
        raise TaskUnavailable(f"mteb task {task_name} ({metadata.type}, {metadata.category}, modalities "
                        f"{'+'.join(metadata.modalities)}) is of a kind zsa-eval does not evaluate; dataset=mteb "
                        f"takes mteb's audio tasks of kinds {kinds_line()}")
    return task


def benchmark_task(mteb, benchmark: str, task_name: str):
    """A task of an mteb benchmark, as the benchmark defines it (a copy: loading data changes it)."""
    try:
        tasks = {task.metadata.name: task for task in mteb.get_benchmark(benchmark).tasks}
    except KeyError:
        raise UserError(f"mteb {mteb.__version__} has no benchmark {benchmark!r}: set dataset.benchmark to one of "
                        "mteb.get_benchmarks()' names (e.g. 'MAEB(v1)'), or to null") from None
    if task_name not in tasks:
        raise UserError(f"benchmark {benchmark} has no task {task_name!r}: choose one of {', '.join(tasks)}, or set "
                        "dataset.benchmark=null")
    return copy.deepcopy(tasks[task_name])


def unknown_task(mteb, task_name: str) -> UserError:
    """An mteb task name mteb does not know: the closest names of the audio tasks zsa-eval evaluates."""
    names = [task.metadata.name for task in mteb.get_tasks(modalities=["audio"], exclude_superseded=False)
             if mteb_kind(task.metadata) is not None]
    folded = {name.lower(): name for name in names}
    close = [folded[name] for name in difflib.get_close_matches(task_name.lower(), list(folded), n=5, cutoff=0.5)]
    hint = f"did you mean {', '.join(close)}?" if close else "none of mteb's audio task names is close"
    return UserError(f"mteb {mteb.__version__} has no task {task_name!r} ({hint}); mteb.get_tasks(modalities="
                     "['audio']) lists them")


def task_kind(task_name: str | None) -> str:
    """The zsa-eval task (dataset `task:`) of an mteb task: conf/dataset/mteb.yaml resolves `task` with it."""
    return TASK_OF_KIND[mteb_kind(named_task(task_name).metadata)]


def local_copy(hub_path: str, path: str | None, mirror: str | None) -> Path | None:
    """The local copy to read: dataset.path (which must exist), else <mirror>/<hub path> when the mirror has it."""
    if path:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise UserError(f"dataset.path {str(folder)!r} is not a directory: point it at a local copy of "
                            f"{hub_path} (its Hub repository's files), or drop dataset.path to read the Hub's")
        return folder.resolve()
    if mirror:
        folder = Path(mirror).expanduser() / hub_path
        return folder.resolve() if folder.is_dir() else None
    return None


def chosen_subsets(task, hf_subsets: Sequence[str] | None) -> list[str]:
    """The task's subsets to load (languages, or "default"): dataset.hf_subsets, each one the task has, or the
    task's own (all of them, or those its benchmark keeps)."""
    if hf_subsets is None:
        return list(task.hf_subsets)
    available = list(task.metadata.hf_subsets)
    unknown = [subset for subset in hf_subsets if subset not in available]
    if unknown:
        raise UserError(f"mteb task {task.metadata.name} has no subset {unknown[0]!r}: dataset.hf_subsets takes "
                        f"some of {', '.join(available[:30])}{', ...' if len(available) > 30 else ''}")
    return [str(subset) for subset in hf_subsets]


def absent(task, copy_hint: str, error: Exception) -> TaskUnavailable:
    """One line for a task whose data are neither local nor reachable."""
    dataset = task.metadata.dataset
    why = f"offline mode is set ({offline_mode()})" if offline_mode() else "the Hub is unreachable"
    return TaskUnavailable(f"mteb task {task.metadata.name} needs {dataset['path']}@{dataset.get('revision')} from the "
                      f"Hugging Face Hub: {why} and it is not in the datasets cache{copy_hint}; run once where the Hub "
                      f"is reachable, or set dataset.path (or dataset.mirror) to a local copy (hf download "
                      f"--repo-type dataset {dataset['path']} --revision {dataset.get('revision')} --local-dir DIR) "
                      f"({type(error).__name__})")


def loaded_task(task, copy: Path | None, mirror: str | None, hf_subsets: Sequence[str] | None):
    """The task with its data loaded by mteb: from the local copy (its Hub path replaced, no revision) or from the
    cache or Hub at the pinned revision."""
    task.hf_subsets = chosen_subsets(task, hf_subsets)
    if copy is not None:
        task.metadata = task.metadata.model_copy(
            update={"dataset": {**task.metadata.dataset, "path": str(copy), "revision": None}})
    try:
        with cache_only_unless_reachable():
            task.load_data()
    except OSError as error:  # datasets' ConnectionError and FileNotFoundError: neither cached nor reachable
        if copy is not None:
            raise UserError(f"cannot read mteb task {task.metadata.name} from the local copy {copy}: "
                            f"{type(error).__name__}: {str(error).splitlines()[0]}; it must hold the files of the "
                            "task's Hub repository (data/*.parquet, README.md)") from error
        raise absent(task, f" nor in dataset.mirror={mirror}" if mirror else "", error) from error
    if hasattr(task, "convert_v1_dataset_format_to_v2"):  # retrieval tasks built as queries/corpus/qrels
        task.convert_v1_dataset_format_to_v2(num_proc=None)
    return task


def load_mteb_task(name: str, task_name: str | None, path: str | None = None, mirror: str | None = None,
                   hf_subsets: Sequence[str] | None = None, benchmark: str | None = None, label_column: str = "auto",
                   task: str | None = None, caption_column: str | None = None, **selection: Any) -> AudioDataset:
    """The items of an mteb task (see the module's docstring) in the table of its zsa-eval task; `label_column`
    auto: the task's own label column; `benchmark`: take the task as that mteb benchmark defines it (suite=maeb:
    MAEB(v1), which keeps FSD2019Kaggle's curated subset only). The dataset records the mteb task (`mteb_task`),
    its Hub path (or the local copy) and revision."""
    mteb_task = named_task(task_name, benchmark)
    kind = mteb_kind(mteb_task.metadata)
    if task is not None and task != TASK_OF_KIND[kind]:
        raise UserError(f"mteb task {task_name} is evaluated as task {TASK_OF_KIND[kind]} ({kind}), not {task}: "
                        "drop dataset.task (dataset=mteb sets it from the mteb task)")
    hub = dict(mteb_task.metadata.dataset)
    copy = local_copy(hub["path"], path, mirror)
    loaded_task(mteb_task, copy, mirror, hf_subsets)
    dataset = items_of_kind(kind, name, mteb_task, None if label_column == "auto" else label_column,
                            caption_column or "captions", selection)
    return replace(dataset, source=str(copy) if copy else hub["path"],
                   revision=None if copy else hub.get("revision"), mteb_task=mteb_task.metadata.name)
