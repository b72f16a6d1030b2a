"""One evaluation: dataset -> model -> engine -> metrics -> report. Everything comes from the Hydra config."""

from __future__ import annotations

import json
import os
import string
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zsa_eval import multilabel
from zsa_eval.cache import EmbeddingCache, model_fingerprint
from zsa_eval.config import checked
from zsa_eval.distributed import Ranks, agree, main_rank_value, process_group, ranks_from_env, shard
from zsa_eval.data import (
    CLASSIFICATION,
    MULTILABEL,
    RETRIEVAL,
    AudioDataset,
    Selection,
    candidate_labels,
    joined_labels_hint,
    limit_items,
)
from zsa_eval.engine import BatchScores, check_engine_family, check_engine_settings, score_clips, text_embeddings
from zsa_eval.errors import GateFailed, RunInterrupted, TooManySkips, UserError
from zsa_eval.interrupts import stop_if_interrupted
from zsa_eval.metrics import (
    confusion_table,
    gate_failures,
    per_class_table,
    per_fold_table,
    predictions_table,
    summary_metrics,
)
from zsa_eval.models import LoadedModel, resolve_device
from zsa_eval.provenance import environment, files_fingerprint, items_fingerprint
from zsa_eval.report import ProgressLog, atomic_write, open_run_dir, write_csv, write_run
from zsa_eval.report.embeddings import (
    remove_embedding_parts,
    store_embedding_part,
    stored_positions,
    write_embeddings,
)
from zsa_eval.report.leaderboard import identity_hash, prompts_hash, write_leaderboard
from zsa_eval.report.plots import ap_bars_png, confusion_png
from zsa_eval.retrieval import format_retrieval_summary

# Settings that do not change a run's results: a run may be resumed with other values of these.
RESULT_NEUTRAL_KEYS = ("output_dir", "results_dir", "resume", "overwrite", "progress", "verbose", "debug",
                       "batch_size", "num_workers", "cache", "cache_dir", "on_error", "max_skip_fraction", "gate")
SCORE_COLUMNS = {"softmax": "prob", "sigmoid": "sigmoid"}  # scores.parquet column prefix per family score kind


def check_prompts(prompts: Sequence[str], template_name: str) -> list[str]:
    """Each prompt must hold exactly one `{}` where the label goes (literal braces written `{{` and `}}`)."""
    if not prompts:
        raise UserError(f"template {template_name} has no prompts: add template.prompts=['This is a sound of {{}}.']")
    for prompt in prompts:
        try:
            places = [name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None]
        except ValueError as error:
            raise UserError(f"prompt {prompt!r} is not a valid template ({error}): write the label's place as {{}} "
                            "and a literal brace as {{ or }}") from error
        if places != [""]:
            found = ("no place for the label" if not places else f"{len(places)} places for the label"
                     if len(places) > 1 else f"its label's place marked {{{places[0]}}}")
            raise UserError(f"prompt {prompt!r} has {found}: it needs exactly one {{}} where the label goes, e.g. "
                            "'This is a sound of {}.'")
    return list(prompts)


def resolve_num_workers(num_workers: int | str, device: torch.device) -> int:
    """`auto`: no worker processes on CPU, where they contend with the model's own threads (measured on 2 cores:
    the embed engine at 0.67 of encoder speed with workers, 0.89 without), else up to 8, one core kept free."""
    if num_workers == "auto":
        return 0 if device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))
    return num_workers


def read_baseline(baseline: str | None) -> dict | None:
    """The metrics.json of the earlier run that gate.baseline names, if any (read before the run), with its
    accuracy."""
    if baseline is None:
        return None
    try:
        metrics = json.loads(Path(baseline).read_text())
        float(metrics["accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"gate.baseline={baseline} is not a readable metrics.json with an accuracy "
                        f"({type(error).__name__}); point it at an earlier run's metrics.json") from error
    return metrics


BASELINE_DATASET_FIELDS = ("dataset", "items_fingerprint", "dataset_revision")  # what makes accuracies comparable


def check_baseline_dataset(baseline: dict | None, path: str | None, identity: dict) -> None:
    """A baseline's accuracy bounds this run's only when both evaluated the same items: the same dataset, the
    same items with the same labels and folds (the items fingerprint; a local folder may lie at another path),
    the same Hub revision. Fields a baseline lacks (a hand-written one, an older run) are not compared."""
    if baseline is None:
        return
    recorded = {"dataset": baseline.get("dataset")} | (baseline.get("identity") or {})
    differing = [name for name in BASELINE_DATASET_FIELDS
                 if recorded.get(name) is not None and identity.get(name) is not None
                 and recorded[name] != identity[name]]
    if differing:
        shown = ", ".join(f"{name} {recorded[name]!r} there, {identity[name]!r} here" for name in differing)
        raise UserError(f"gate.baseline={path} evaluated other data ({shown}): its accuracy does not bound this "
                        "run's; point gate.baseline at a run of the same dataset and selection")


def check_task_settings(cfg: DictConfig) -> None:
    """What task multilabel cannot do: rank by the pipeline's softmax (it needs the embed engine's logits), or gate
    on an accuracy it does not have."""
    if cfg.dataset.get("task") != MULTILABEL:
        return
    if cfg.engine == "pipeline":
        raise UserError(f"dataset={cfg.dataset.name} is multi-label: its metrics rank clips by the model's logits, "
                        "which only engine=embed gives; use engine=embed")
    if cfg.gate.min_accuracy is not None or cfg.gate.baseline is not None:
        raise UserError(f"dataset={cfg.dataset.name} is multi-label and has no accuracy for gate.min_accuracy or "
                        "gate.baseline to check; drop the gate settings")


def build(node: DictConfig, **kwargs):
    """Instantiate a config group's `_target_`, letting our own UserError through unwrapped."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise


def loader_config(dataset: DictConfig) -> DictConfig:
    """The dataset config as its loader takes it: without the recommended prompts (template=auto reads those)."""
    return OmegaConf.masked_copy(dataset, [key for key in dataset if key != "prompts"])


def run_identity(resolved: dict) -> dict:
    """The settings that determine a run's results (a resumed run must match them)."""
    return {key: value for key, value in resolved.items() if key not in RESULT_NEUTRAL_KEYS}


def check_and_compact(log: ProgressLog, item_ids: list[str]) -> None:
    """Check what an earlier, interrupted run finished against the dataset as it is now; merge its log parts."""
    records = log.read()
    for index, record in records.items():
        if index >= len(item_ids) or item_ids[index] != record["item_id"]:
            raise UserError(f"the dataset changed since the interrupted run (item {index} was {record['item_id']!r}); "
                            "use overwrite=true to start again")
    log.compact(records)


def open_run(output_dir: Path, identity: dict, cfg: DictConfig, item_ids: list[str], ranks: Ranks,
             keeps_embeddings: bool = False) -> set[int]:
    """Rank 0 creates or reopens the run directory; every rank learns which items are already done: logged, and,
    for a run that keeps its audio embeddings (`keeps_embeddings`), with its embedding still stored (a finished
    run removed them) or skipped."""
    failure = None
    if ranks.is_main:
        try:
            open_run_dir(output_dir, identity, cfg.resume, cfg.overwrite)
            check_and_compact(ProgressLog(output_dir), item_ids)
        except UserError as error:
            failure = str(error)
    agree(ranks, failure)
    records = ProgressLog(output_dir).read()
    if not keeps_embeddings:
        return set(records)
    stored = stored_positions(output_dir)
    return {index for index, record in records.items() if index in stored or "reason" in record}


@dataclass(frozen=True)
class ProcessedItems:
    """Where a run's outcomes are logged, which items an earlier, interrupted run had finished (`done`), which
    were processed now (`remaining`), and how long that took."""

    output_dir: Path
    done: set[int]
    remaining: list[int]
    seconds: float

    def outcomes(self, finished_key: str) -> tuple[dict[int, dict], int, int]:
        """Every logged outcome by item position; of the items processed now and finished (their record holds
        `finished_key`), how many came from the embedding cache and how many went through the encoder."""
        records = ProgressLog(self.output_dir).read()
        finished = [records[index] for index in self.remaining if finished_key in records.get(index, {})]
        cache_hits = sum(bool(record.get("cached")) for record in finished)
        return records, cache_hits, len(finished) - cache_hits


def process_items(cfg: DictConfig, ranks: Ranks, device: torch.device, identity: dict, item_ids: list[str],
                  output_dir: Path, work: Callable[[ProgressLog, list[int]], None],
                  keeps_embeddings: bool) -> ProcessedItems | None:
    """Open (or reopen) the run directory, then let every process `work` on its share of the unfinished items,
    logging outcomes to its progress log (and storing their audio embeddings, when `keeps_embeddings`); a UserError
    on any process stops them all. Returns None on the processes other than rank 0 (which writes the results)."""
    with process_group(ranks, device.type):
        output_dir = Path(main_rank_value(ranks, str(output_dir)))
        done = open_run(output_dir, identity, cfg, item_ids, ranks, keeps_embeddings)
        remaining = [index for index in range(len(item_ids)) if index not in done]
        start, failure = time.perf_counter(), None
        try:
            work(ProgressLog(output_dir, ranks.progress_part), shard(remaining, ranks))
        except UserError as error:
            failure = str(error)
        agree(ranks, failure)
        seconds = time.perf_counter() - start
    return ProcessedItems(output_dir, done, remaining, seconds) if ranks.is_main else None


def run_facts(device: torch.device, batch_size: int, num_workers: int, ranks: Ranks, work: ProcessedItems,
              started_at: datetime, start: float, cache_hits: int, encoded: int) -> dict:
    """metrics.json's account of how the run went: where and how batched, how many processes, what was resumed,
    times (`start`: perf_counter at the run's start), the cache hits and the encoder's speed."""
    return {
        "device": str(device),
        "batch_size": batch_size,
        "num_workers": num_workers,
        "resumed_items": len(work.done),
        "processes": ranks.world_size,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scoring_s": round(work.seconds, 3),
        "elapsed_s": round(time.perf_counter() - start, 3),
        "cache_hits": cache_hits,
        "encoded_clips_per_s": round(encoded / work.seconds, 3) if encoded and work.seconds > 0 else None,
        "output_dir": str(work.output_dir),
    }


def load_scorer(cfg: DictConfig, device: torch.device) -> tuple[LoadedModel, str, EmbeddingCache | None]:
    """The model on its device, the fingerprint of its weights, and its audio-embedding cache unless cache=false."""
    loaded = build(cfg.model, device=device, precision=cfg.precision)
    check_engine_family(cfg.engine, loaded.family, str(cfg.model.name_or_path))
    weights = loaded.family.weight_fingerprint
    cache = (EmbeddingCache(Path(cfg.cache_dir) / "audio_embeddings",
                            model_fingerprint(loaded.model, loaded.feature_extractor, device, weights,
                                              loaded.family.embedding_settings()))
             if cfg.cache else None)
    return loaded, weights, cache


def result_identity(cfg: DictConfig, dataset: AudioDataset, loaded: LoadedModel, weights: str,
                    prompts: list[str]) -> dict:
    """What determines a run's results, in the terms a reader compares runs by (the leaderboard's row key)."""
    selection = cfg.dataset
    family_settings = loaded.family.settings()
    return {
        "family": loaded.family.name,
        **({"family_settings": family_settings} if family_settings else {}),
        "model_name_or_path": str(cfg.model.name_or_path),
        "model_revision": model_revision(loaded, cfg.model.get("revision")),
        "weight_fingerprint": weights,
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "dataset_revision": dataset.revision,
        "items_fingerprint": items_fingerprint(dataset.items),
        "selection": {key: OmegaConf.to_container(selection[key]) if OmegaConf.is_config(selection[key])
                      else selection[key]
                      for key in ("label_column", "label_names", "label_delimiter", "classes", "folds", "subset",
                                  "split_folder")
                      if key in selection} | {"limit": cfg.limit, "limit_mode": cfg.limit_mode, "seed": cfg.seed},
        "template": cfg.template.name,
        "prompts": prompts,
        "engine": cfg.engine,
        "precision": cfg.precision,
    }


def model_revision(loaded: LoadedModel, requested: str | None) -> str | None:
    """The commit a Hub model was loaded at (transformers records it), else the requested revision."""
    return getattr(loaded.model.config, "_commit_hash", None) or requested


def run_provenance(cfg: DictConfig, dataset: AudioDataset, loaded: LoadedModel, weights: str, prompts: list[str],
                   device: torch.device) -> dict:
    """metrics.json's identity (and its hash) and provenance: software, machine, data fingerprints."""
    identity = result_identity(cfg, dataset, loaded, weights, prompts)
    return {
        "identity": identity,
        "identity_hash": identity_hash(identity),
        "provenance": {
            **environment(device),
            "files_fingerprint": files_fingerprint(dataset.items["path"].tolist()),
        },
    }


def score_items(cfg: DictConfig, loaded: LoadedModel, cache: EmbeddingCache | None, dataset: AudioDataset,
                labels: list[str], prompts: list[str], log: ProgressLog, todo: list[int], batch_size: int,
                num_workers: int, progress: bool) -> None:
    """Score the items at positions `todo`, appending each batch's outcomes to the log as it finishes (and its
    audio embeddings, with save_embeddings, before that)."""
    if not todo:
        return
    item_ids = dataset.items["item_id"].tolist()
    batches = score_clips(loaded, Selection(dataset.clips, todo), [item_ids[i] for i in todo], labels, prompts,
                          cfg.engine, batch_size, num_workers, cfg.seed, progress, cache, cfg.featurizer)
    try:
        for batch in batches:
            positions = [todo[row] for row in batch.indices]
            if cfg.save_embeddings and positions:
                store_embedding_part(log.directory, positions, batch.audio_embeddings)
            skipped = [(todo[row], reason, detail) for row, reason, detail in batch.skipped]
            log.append(outcome_records(batch, positions, [position for position, _, _ in skipped], item_ids))
            raise_on_skip(cfg.on_error, skipped, item_ids)
            stop_if_interrupted()
    except KeyboardInterrupt:
        raise interruption(log, len(dataset)) from None


def raise_on_skip(on_error: str, skipped: list[tuple[int, str, str]], item_ids: list[str]) -> None:
    """on_error=raise: stop at a batch's first bad item (position, reason, detail), naming it."""
    if skipped and on_error == "raise":
        position, reason, detail = skipped[0]
        raise UserError(f"item {item_ids[position]!r}: {reason}: {detail}; fix or remove it, "
                        "or set on_error=skip to record bad items and go on")


def interruption(log: ProgressLog, n_items: int) -> RunInterrupted:
    """Ctrl-C: what was kept and how to go on."""
    finished = len(log.read())
    return RunInterrupted(f"interrupted after {finished} of {n_items} items; their results are kept in {log.directory}",
                          str(log.directory))


def outcome_records(batch: BatchScores, positions: list[int], skipped_positions: list[int],
                    item_ids: list[str]) -> list[dict]:
    """Progress-log records of one batch: probabilities (and logits, when the engine has them; whether the audio
    embedding came from the cache) or the skip."""
    scored = [{"index": position, "item_id": item_ids[position], "probabilities": batch.probabilities[row].tolist()}
              for row, position in enumerate(positions)]
    if batch.logits is not None:
        for record, logits in zip(scored, batch.logits):
            record["logits"] = logits.tolist()
    for row in batch.cached_rows:
        scored[row]["cached"] = True
    skipped = [{"index": position, "item_id": item_ids[position], "reason": reason, "detail": detail}
               for position, (_, reason, detail) in zip(skipped_positions, batch.skipped)]
    return scored + skipped


def skipped_table(dataset: AudioDataset, records: dict[int, dict]) -> pd.DataFrame:
    """Every item that could not be evaluated (bad audio), from the log."""
    bad = [{"item_id": record["item_id"], "path": dataset.items["path"].iat[index], "reason": record["reason"],
            "detail": record["detail"]} for index, record in sorted(records.items()) if "reason" in record]
    return pd.DataFrame(bad, columns=["item_id", "path", "reason", "detail"])


def write_skips(dataset: AudioDataset, records: dict[int, dict], output_dir: Path) -> pd.DataFrame:
    """errors.csv (the items that could not be evaluated) and ignored_files.csv (a folder's files that are not
    items); returns the skipped items."""
    errors = skipped_table(dataset, records)
    write_csv(errors, output_dir / "errors.csv")
    write_csv(dataset.ignored_files, output_dir / "ignored_files.csv")
    return errors


@dataclass(frozen=True)
class Evaluation:
    """The evaluated items (dataset positions, rows of the item table), their true classes and scores."""

    positions: list[int]
    items: pd.DataFrame
    y_true: np.ndarray
    probabilities: np.ndarray
    logits: np.ndarray | None


def evaluation(dataset: AudioDataset, records: dict[int, dict], output_dir: Path) -> Evaluation:
    positions = [index for index, record in sorted(records.items()) if "probabilities" in record]
    if not positions:
        raise UserError(f"none of the {len(dataset)} items could be evaluated; see {output_dir / 'errors.csv'}")
    evaluated = dataset.items.iloc[positions].reset_index(drop=True)
    has_logits = all("logits" in records[index] for index in positions)
    return Evaluation(
        positions, evaluated,
        multilabel.label_matrix(evaluated["labels"], dataset.class_names) if dataset.task == MULTILABEL
        else evaluated["label"].map({name: i for i, name in enumerate(dataset.class_names)}).to_numpy(),
        np.asarray([records[index]["probabilities"] for index in positions], dtype=np.float32),
        np.asarray([records[index]["logits"] for index in positions], dtype=np.float32) if has_logits else None,
    )


@dataclass(frozen=True)
class TaskResults:
    """What a task makes of the evaluated items: its metrics (for metrics.json), CSV tables and figures (PNG)."""

    summary: dict
    tables: dict[str, pd.DataFrame]
    figures: dict[str, bytes]


def classification_results(dataset: AudioDataset, evaluated: Evaluation, score_kind: str, seed: int) -> TaskResults:
    """Accuracy and its kin with intervals; predictions, per-class, per-fold and confusion tables; the confusion
    matrix figure."""
    n_classes = len(dataset.class_names)
    confusion = confusion_table(evaluated.y_true, evaluated.probabilities.argmax(axis=1), dataset.class_names)
    summary = summary_metrics(evaluated.y_true, evaluated.probabilities, n_classes, seed=seed)
    return TaskResults(summary | {"chance_accuracy": 1 / n_classes},
                       result_tables(dataset, evaluated, score_kind) | {"confusion_matrix": confusion.reset_index()},
                       {"confusion_matrix.png": confusion_png(confusion)})


def multilabel_results(dataset: AudioDataset, evaluated: Evaluation, seed: int) -> TaskResults:
    """mAP and its kin with intervals, ranked by the logits; predictions and per-class AP tables; the AP bars."""
    scores = evaluated.logits
    per_class = multilabel.per_class_table(evaluated.y_true, scores, dataset.class_names)
    return TaskResults(
        multilabel.summary_metrics(evaluated.y_true, scores, per_class, seed=seed)
        | {"ranking_scores": "logits (the family's scaled audio-text similarity, before softmax or sigmoid)"},
        {"predictions": multilabel.predictions_table(evaluated.items, evaluated.y_true, scores, dataset.class_names),
         "per_class": per_class},
        {"per_class_ap.png": ap_bars_png(per_class)})


def result_tables(dataset: AudioDataset, evaluated: Evaluation, score_kind: str) -> dict[str, pd.DataFrame]:
    """predictions (its scores of `score_kind`: softmax or sigmoid, said in a column), per-class and per-fold
    (datasets with folds) tables."""
    y_pred = evaluated.probabilities.argmax(axis=1)
    predictions = predictions_table(evaluated.items, evaluated.y_true, evaluated.probabilities, dataset.class_names)
    predictions.insert(predictions.columns.get_loc("score") + 1, "score_kind", score_kind)
    tables = {
        "predictions": predictions,
        "per_class": per_class_table(evaluated.y_true, y_pred, dataset.class_names),
    }
    if dataset.has_folds:
        tables["per_fold"] = per_fold_table(evaluated.y_true, y_pred, evaluated.items["fold"].to_numpy())
    return tables


def scores_table(evaluated: Evaluation, class_names: list[str], score_kind: str) -> pd.DataFrame:
    """scores.parquet: item_id, true_label, then every class's score, `prob:<class>` (softmax probabilities) or
    `sigmoid:<class>` (sigmoid scores), and, from the embed engine, `logit:<class>` (the family's audio-text logit
    the scores are taken from)."""
    columns = {"item_id": evaluated.items["item_id"].to_numpy(), "true_label": evaluated.items["label"].to_numpy()}
    prefix = SCORE_COLUMNS[score_kind]
    columns |= {f"{prefix}:{name}": evaluated.probabilities[:, column] for column, name in enumerate(class_names)}
    if evaluated.logits is not None:
        columns |= {f"logit:{name}": evaluated.logits[:, column] for column, name in enumerate(class_names)}
    return pd.DataFrame(columns)


def classes_without_items(dataset: AudioDataset) -> list[str]:
    """Candidate classes (dataset.classes) that no item of the selection carries."""
    present = dataset.present_labels()
    return [name for name in dataset.class_names if name not in present]


def selection_warnings(dataset: AudioDataset) -> list[str]:
    """What a user should know about the selection before its results: classes without clips, and single labels
    that look like joined label sets."""
    warnings = []
    empty = classes_without_items(dataset)
    if empty:
        warnings.append(f"{len(empty)} of the {len(dataset.class_names)} candidate classes have no clips in this "
                        f"selection ({', '.join(map(repr, empty[:5]))}{', ...' if len(empty) > 5 else ''}): they stay "
                        f"candidates but have no {'AP (left out of mAP)' if dataset.task == MULTILABEL else 'recall'} "
                        "(metrics.json: classes_without_items)")
    joined = joined_labels_hint(dataset.class_names) if dataset.task == CLASSIFICATION else None
    return warnings + ([joined] if joined else [])


def run(cfg: DictConfig) -> dict | None:
    """Evaluate cfg.model with cfg.template on cfg.dataset; write the run directory; return metrics.json's content.

    Every finished batch is logged first, so an interrupted run resumes (resume=true) where it stopped and ends
    with the same results as an uninterrupted one. Under torchrun or accelerate launch each process scores its
    share of the items; rank 0 writes the results and returns the metrics, the other ranks return None."""
    started_at = datetime.now(timezone.utc)
    start = time.perf_counter()
    cfg = checked(cfg)
    if cfg.dataset.get("task") == RETRIEVAL:
        from zsa_eval.retrieval_run import run_retrieval  # here: it builds on this module's steps

        return run_retrieval(cfg, started_at, start)
    ranks = ranks_from_env()
    prompts = check_prompts(list(cfg.template.prompts), cfg.template.name)
    batch_size = cfg.batch_size
    check_task_settings(cfg)
    baseline = read_baseline(cfg.gate.baseline)
    check_engine_settings(cfg.engine, prompts)
    if cfg.save_embeddings and cfg.engine == "pipeline":
        raise UserError("save_embeddings=true needs engine=embed (the pipeline engine exposes no embeddings)")
    device = resolve_device(cfg.device, ranks.local_rank if ranks.distributed else None)
    num_workers = resolve_num_workers(cfg.num_workers, device)
    dataset = limit_items(build(loader_config(cfg.dataset)), cfg.limit, cfg.limit_mode, cfg.seed)
    labels = candidate_labels(dataset.class_names)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    output_dir = Path(cfg.output_dir)
    loaded, weights, cache = load_scorer(cfg, device)  # before the run directory exists: a model that fails leaves none
    provenance = run_provenance(cfg, dataset, loaded, weights, prompts, device)
    check_baseline_dataset(baseline, cfg.gate.baseline, provenance["identity"])
    for warning in selection_warnings(dataset) if ranks.is_main else []:
        print(f"zsa-eval: warning: {warning}", file=sys.stderr)
    work = process_items(cfg, ranks, device, run_identity(resolved), dataset.items["item_id"].tolist(), output_dir,
                         lambda log, todo: score_items(cfg, loaded, cache, dataset, labels, prompts, log, todo,
                                                       batch_size, num_workers, cfg.progress and ranks.is_main),
                         cfg.save_embeddings)
    if work is None:
        return None
    output_dir = work.output_dir
    records, cache_hits, encoded = work.outcomes("probabilities")
    errors = write_skips(dataset, records, output_dir)
    write_csv(dataset.excluded, output_dir / "excluded.csv")
    evaluated = evaluation(dataset, records, output_dir)
    results = (multilabel_results(dataset, evaluated, cfg.seed) if dataset.task == MULTILABEL
               else classification_results(dataset, evaluated, loaded.family.score_kind, cfg.seed))
    baseline_accuracy = None if baseline is None else float(baseline["accuracy"])
    failures = ([] if dataset.task == MULTILABEL  # refused up front (check_task_settings): no accuracy to gate on
                else gate_failures(results.summary["accuracy"], cfg.gate.min_accuracy, baseline_accuracy,
                                   cfg.gate.max_drop))
    scores = scores_table(evaluated, dataset.class_names, loaded.family.score_kind)
    atomic_write(output_dir / "scores.parquet", scores.to_parquet(index=False))
    if cfg.save_embeddings:
        write_embeddings(output_dir, evaluated.items, evaluated.positions,
                         text_embeddings(loaded, labels, prompts).cpu().numpy(), dataset.class_names, labels)
    metrics = {
        "task": dataset.task,
        **results.summary,
        "n_classes": len(labels),
        "metrics_cover": "evaluated items only (skipped items are listed in errors.csv)",
        "family": loaded.family.name,
        "score_kind": loaded.family.score_kind,
        "score_kind_description": loaded.family.score_description,
        "n_items": len(dataset),
        "n_evaluated": len(evaluated.positions),
        "n_skipped": len(errors),
        "skipped_by_reason": errors["reason"].value_counts().to_dict(),
        "n_excluded": len(dataset.excluded),
        "classes_without_items": classes_without_items(dataset),
        "n_ignored_files": len(dataset.ignored_files),
        "status": skip_status(len(errors), len(dataset), cfg.max_skip_fraction),
        "dataset": dataset.name,
        "model": cfg.model.name,
        "model_name_or_path": cfg.model.name_or_path,
        "template": cfg.template.name,
        "prompts": prompts,
        "prompts_hash": prompts_hash(prompts),
        "engine": cfg.engine,
        "precision": cfg.precision,
        "labels": dataset.class_names,
        "candidate_labels": labels,
        **provenance,
        **run_facts(device, batch_size, num_workers, ranks, work, started_at, start, cache_hits, encoded),
        "gate": {"passed": not failures, "failures": failures, "baseline_accuracy": baseline_accuracy},
        "leaderboard": leaderboard_of(output_dir, Path(cfg.results_dir)),
        "config": resolved,
    }
    write_run(output_dir, metrics, results.tables, results.figures, OmegaConf.to_yaml(resolved))
    remove_embedding_parts(output_dir)
    update_leaderboard(metrics)
    check_skip_fraction(metrics, cfg.max_skip_fraction, output_dir)
    if failures:
        raise GateFailed(f"gate failed: {'; '.join(failures)} (results in {output_dir})", metrics)
    return metrics


def leaderboard_of(output_dir: Path, results_dir: Path) -> str | None:
    """The results directory whose leaderboard lists this run: results_dir when output_dir lies inside it, else
    none (metrics.json "leaderboard")."""
    return str(results_dir) if results_dir.resolve() in output_dir.resolve().parents else None


def update_leaderboard(metrics: dict) -> None:
    """Rebuild the leaderboard that lists this run, if one does."""
    if metrics["leaderboard"] is not None:
        write_leaderboard(Path(metrics["leaderboard"]))


def leaderboard_note(metrics: dict) -> str | None:
    """For a run no leaderboard lists (its output_dir lies outside results_dir): say so, and how to build one."""
    if metrics["leaderboard"] is not None:
        return None
    parent = Path(metrics["output_dir"]).parent
    return (f"zsa-eval: note: output_dir lies outside results_dir ({metrics['config']['results_dir']}), so no "
            f"leaderboard lists this run; python -m zsa_eval.report leaderboard {parent} builds one beside it")


SKIP_RATE_CONFIDENCE = 0.975  # one-sided: the skip rate's lower bound a run is judged by


def skip_rate_lower_bound(n_skipped: int, n_items: int) -> float:
    """The one-sided 97.5% Clopper-Pearson lower bound of the rate at which this dataset's items are bad, from
    `n_skipped` of `n_items`: what the skips show beyond chance (0 when nothing was skipped)."""
    from scipy.stats import beta

    return float(beta.ppf(1 - SKIP_RATE_CONFIDENCE, n_skipped, n_items - n_skipped + 1)) if n_skipped else 0.0


def too_many_skips(n_skipped: int, n_items: int, max_skip_fraction: float) -> bool:
    """Whether the items are bad at a rate above max_skip_fraction beyond chance (the lower bound above it): one bad
    file of 20 (5%, bound 0.1%) or 3 of 20 (bound 3.2%) pass at 0.05, 4 of 20 (bound 5.7%) or 3 of 6 fail; at scale
    the bound nears the share itself (60 of 1000: 4.6%; 100 of 1000: 8.2%). max_skip_fraction=0 fails on any skip."""
    return n_skipped > 0 and skip_rate_lower_bound(n_skipped, n_items) > max_skip_fraction


def skip_status(n_skipped: int, n_items: int, max_skip_fraction: float) -> str:
    """metrics.json's status: too_many_skips when the items are bad above max_skip_fraction, else complete."""
    return "too_many_skips" if too_many_skips(n_skipped, n_items, max_skip_fraction) else "complete"


def check_skip_fraction(metrics: dict, max_skip_fraction: float, output_dir: Path) -> None:
    """After everything is written: items bad at a rate above max_skip_fraction fail the run (exit 2), pointing at
    the list."""
    n_skipped, n_items = metrics["n_skipped"], metrics["n_items"]
    if too_many_skips(n_skipped, n_items, max_skip_fraction):
        raise TooManySkips(f"{n_skipped} of {n_items} items ({n_skipped / n_items:.1%}) were skipped: items are bad "
                        f"at a rate above max_skip_fraction={max_skip_fraction} (at least "
                        f"{skip_rate_lower_bound(n_skipped, n_items):.1%}, 97.5% lower bound); the list is in "
                        f"{output_dir / 'errors.csv'} (results were written for the rest)", metrics)


def interval(bounds: list[float] | None) -> str:
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "[undefined]"


def number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def headline(metrics: dict) -> str:
    """The run's main figures: mAP and its kin for a multi-label run, else accuracy and its kin."""
    if metrics.get("task") == MULTILABEL:
        return (f"mAP {number(metrics['map'])} {interval(metrics['map_ci95'])} over the "
                f"{metrics['n_classes_counted']} of {metrics['n_classes']} classes with clips "
                f"(mAUC {number(metrics['mauc'])}, d' {number(metrics['d_prime'])}, LRAP {number(metrics['lrap'])}, "
                f"chance mAP {metrics['chance_map']:.4f})")
    top_k = (f"top-{metrics['top_k']} {metrics['top_k_accuracy']:.4f}, "
             if metrics["top_k"] < metrics["n_classes"] else "")  # with k = every class it is always 1
    return (f"accuracy {metrics['accuracy']:.4f} {interval(metrics['accuracy_ci95'])} "
            f"({top_k}balanced {metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f})")


def format_summary(metrics: dict, wall_s: float) -> str:
    """The run in one line; `wall_s` counts from the process start (imports, config, model load included)."""
    if metrics.get("task") == RETRIEVAL:
        return format_retrieval_summary(metrics, wall_s)
    skipped = f", {metrics['n_skipped']} skipped (see errors.csv)" if metrics["n_skipped"] else ""
    excluded = f", {metrics['n_excluded']} outside dataset.classes" if metrics["n_excluded"] else ""
    speed = (f"{metrics['encoded_clips_per_s']} clips/s encoded" if metrics["encoded_clips_per_s"] is not None
             else "nothing encoded")
    return (
        f"{metrics['dataset']} | {metrics['model']} | {metrics['template']}: {headline(metrics)} "
        f"on {metrics['n_evaluated']} of {metrics['n_items']} clips{skipped}{excluded} in {wall_s:.1f} s "
        f"({metrics['scoring_s']:.1f} s scoring, {speed}, {metrics['cache_hits']} from the cache) "
        f"-> {metrics['output_dir']}"
    )
